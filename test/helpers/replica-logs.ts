import fc from "fast-check";
import type { LogEntry } from "../../src/store/port.js";

/**
 * Honest hub logs as a follower receives them (recipients = its own clients among the members,
 * minus the sender), for the property tests of replica feeds (domain/feeds.ts, replicaSpanSteps).
 */
export type HubOp =
  | { kind: "application"; sender: number }
  | { kind: "commit"; sender: number; add: number[]; remove: number[] }
  | { kind: "placeholder" };

export function hubLog(ops: HubOp[], local: string[], remote: string[]): LogEntry[] {
  const all = [...local, ...remote];
  const isLocal = (c: string) => local.includes(c);
  let roster = [remote[0]!, local[0]!];
  let epoch = 0;
  const log: LogEntry[] = [];
  const push = (kind: LogEntry["kind"], sender: string, recipients: string[]) =>
    log.push({
      seq: log.length + 1,
      kind,
      epoch,
      sender,
      message: `m${log.length + 1}`,
      sha256: `s${log.length + 1}`,
      recipients,
    });
  for (const op of ops) {
    if (op.kind === "placeholder") {
      // An unknown sender: the follower keeps the entry for nobody.
      push("application", "x9@x.example/1", []);
      continue;
    }
    const sender = roster[op.sender % roster.length]!;
    const others = roster.filter((c) => c !== sender && isLocal(c));
    if (op.kind === "application") {
      push("application", sender, others);
      continue;
    }
    const removed = new Set(op.remove.map((i) => roster[i % roster.length]!).filter((c) => c !== sender));
    const added = [...new Set(op.add.map((i) => all[i % all.length]!))].filter((c) => !roster.includes(c));
    push("commit", sender, others);
    if (added.some(isLocal)) push("welcome", sender, added.filter(isLocal));
    roster = [...roster.filter((c) => !removed.has(c)), ...added];
    epoch += 1;
  }
  return log;
}

export const hubOpArb: fc.Arbitrary<HubOp> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("application" as const), sender: fc.nat(8) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("commit" as const),
      sender: fc.nat(8),
      add: fc.array(fc.nat(8), { maxLength: 2 }),
      remove: fc.array(fc.nat(8), { maxLength: 2 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "placeholder" as const }) },
);
