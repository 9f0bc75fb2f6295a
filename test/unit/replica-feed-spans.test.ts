import fc from "fast-check";
import { applySpanStep, reaches, replicaSpanSteps, type Span } from "../../src/domain/feeds.js";
import type { LogEntry } from "../../src/store/port.js";

/**
 * A follower's spans (replicaSpanSteps) must give each local client exactly the entries whose
 * recipient list names it — the per-recipient inbox rule they replace — for any honest hub log,
 * however the log is cut into deliveries.
 */
const LOCAL = ["l1", "l2", "l3", "l4"];
const REMOTE = ["r1", "r2"];
const isLocal = (c: string) => LOCAL.includes(c);

type Op =
  | { kind: "application"; sender: number }
  | { kind: "commit"; sender: number; add: string[]; remove: number[] }
  | { kind: "placeholder" };

/** Builds the log a hub would send this follower: recipients are the local members except the sender. */
function hubLog(ops: Op[]): LogEntry[] {
  let roster = ["r1", "l1"];
  let epoch = 0;
  const log: LogEntry[] = [];
  const push = (kind: LogEntry["kind"], sender: string, recipients: string[]) =>
    log.push({ seq: log.length + 1, kind, epoch, sender, message: "", sha256: "", recipients });
  for (const op of ops) {
    if (op.kind === "placeholder") {
      // An unknown sender: the follower keeps the entry for nobody.
      push("application", "x9", []);
      continue;
    }
    const sender = roster[op.sender % roster.length]!;
    const others = roster.filter((c) => c !== sender && isLocal(c));
    if (op.kind === "application") {
      push("application", sender, others);
      continue;
    }
    const removed = new Set(op.remove.map((i) => roster[i % roster.length]!).filter((c) => c !== sender));
    const added = [...new Set(op.add)].filter((c) => !roster.includes(c));
    push("commit", sender, others);
    if (added.some(isLocal)) push("welcome", sender, added.filter(isLocal));
    roster = [...roster.filter((c) => !removed.has(c)), ...added];
    epoch += 1;
  }
  return log;
}

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("application" as const), sender: fc.nat(8) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("commit" as const),
      sender: fc.nat(8),
      add: fc.array(fc.constantFrom(...LOCAL, ...REMOTE), { maxLength: 2 }),
      remove: fc.array(fc.nat(8), { maxLength: 2 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "placeholder" as const }) },
);

describe("a follower's feed spans (replicaSpanSteps)", () => {
  it("reach exactly the recipients each entry names, whatever the delivery batches", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), fc.array(fc.nat(40), { maxLength: 5 }), (ops, cuts) => {
        const log = hubLog(ops);
        const open = new Set<string>();
        const spans = new Map<string, Span[]>();
        const bounds = [...new Set([0, ...cuts.map((c) => c % (log.length + 1)), log.length])].sort((a, b) => a - b);
        for (let i = 1; i < bounds.length; i++) {
          for (const step of replicaSpanSteps("ordered", open, log.slice(bounds[i - 1], bounds[i]), isLocal))
            spans.set(step.client, applySpanStep(spans.get(step.client) ?? [], step));
        }
        for (const e of log)
          for (const c of LOCAL)
            expect([e.seq, c, reaches("ordered", c, spans.get(c) ?? [], e)]).toEqual([e.seq, c, e.recipients.includes(c)]);
      }),
      { numRuns: 300 },
    );
  });

  it("compares one entry per epoch: a roster of 500 costs steps only where it changes", () => {
    const members = Array.from({ length: 500 }, (_, i) => `l${i}`);
    const log: LogEntry[] = Array.from({ length: 1000 }, (_, i) => ({
      seq: i + 1,
      kind: "application",
      epoch: 0,
      sender: "r1",
      message: "",
      sha256: "",
      recipients: members,
    }));
    const open = new Set<string>();
    expect(replicaSpanSteps("ordered", open, log, (c) => c.startsWith("l"))).toHaveLength(500);
    expect(
      replicaSpanSteps(
        "ordered",
        open,
        log.map((e) => ({ ...e, seq: e.seq + 1000 })),
        (c) => c.startsWith("l"),
      ),
    ).toEqual([]);
  });
});
