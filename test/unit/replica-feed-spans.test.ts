import fc from "fast-check";
import { applySpanStep, reaches, replicaSpanSteps, type Span } from "../../src/domain/feeds.js";
import type { LogEntry } from "../../src/store/port.js";
import { hubLog, hubOpArb } from "../helpers/replica-logs.js";

/**
 * A follower's spans (replicaSpanSteps) must give each local client exactly the entries whose
 * recipient list names it — the per-recipient inbox rule they replace — for any honest hub log,
 * however the log is cut into deliveries.
 */
const LOCAL = ["l1", "l2", "l3", "l4"];
const REMOTE = ["r1", "r2"];
const isLocal = (c: string) => LOCAL.includes(c);

describe("a follower's feed spans (replicaSpanSteps)", () => {
  it("reach exactly the recipients each entry names, whatever the delivery batches", () => {
    fc.assert(
      fc.property(fc.array(hubOpArb, { maxLength: 40 }), fc.array(fc.nat(40), { maxLength: 5 }), (ops, cuts) => {
        const log = hubLog(ops, LOCAL, REMOTE);
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
