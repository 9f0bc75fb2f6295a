/**
 * One source for each decision: the TypeScript decision functions of src/domain/ordering.ts are
 * the specification, and the Lua scripts of the Redis store are tested against them. fast-check
 * generates a group (mode, roster, epoch, seq, maybe a lease) and a sequence of submissions
 * (commits with roster changes, Welcomes and GroupInfo, external joins, messages, proposals, of
 * members and strangers, at stale, current and future epochs, with right, wrong or no lease
 * tokens, and exact retries), lease acquisitions and releases; after every step the Redis store's
 * answer, group record and stored GroupInfo (with the ratchet tree stored beside it, if any) must
 * equal what the decision functions give, and at the end so must its log, commit log and every
 * client's group feed (the spans SUBMIT keeps, read by READ_FEED).
 */
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { decideLease, decideRelease, decideSubmit, senderRefusal } from "../../src/domain/ordering.js";
import {
  applySpanStep,
  closeSpan,
  openSpan,
  replicaSpanSteps,
  readFeedWith,
  settlesInAccept,
  spanChange,
  type FeedRead,
  type Span,
} from "../../src/domain/feeds.js";
import { createRedisStore, type RedisStore } from "../../src/store/redis.js";
import type { StoredGroupInfo } from "../../src/mls/group-info.js";
import type { CommitLogEntry, GroupRecord, LeaseOutcome, LogEntry, Submission, SubmitOutcome } from "../../src/store/port.js";
import { testTopology } from "../helpers/providers.js";
import { hubLog, hubOpArb } from "../helpers/replica-logs.js";

const CLIENTS = ["ann@a.example/1", "ann@a.example/2", "bob@a.example/1", "cy@b.example/1"];
const TOKENS = ["t1", "t2", "t3"];

/** The specification as a state machine: nothing but the decision functions and their effects. */
class Spec {
  answers = new Map<string, { seq: number; epoch: number }>();
  commitLog: CommitLogEntry[] = [];
  log: LogEntry[] = [];
  groupInfo: StoredGroupInfo | undefined;
  /** Feed spans per member (domain/feeds.ts), as the accepts leave them. */
  spans = new Map<string, Span[]>();
  /** The dispatch mark: only accepts that settle move it here (nothing else fans out in this test). */
  dispatched: number;
  constructor(public record: GroupRecord) {
    this.dispatched = record.nextSeq - 1;
    for (const m of record.members) this.spans.set(m, openSpan([], record.nextSeq - 1));
  }

  /** What a member's feed read from the start gives, by the specification. */
  feed(member: string): Promise<FeedRead> {
    return readFeedWith(this.record.mode, member, this.spans.get(member), 0, async (after) =>
      this.log.filter((e) => e.seq > after).slice(0, 100),
    );
  }

  submit(sub: Submission, nowMs: number): SubmitOutcome {
    // Who may submit is checked before a retry is answered from the dedupe record.
    const refusal = senderRefusal(this.record, sub);
    if (refusal) return refusal;
    const previous = this.answers.get(sub.sha256);
    if (previous) return { ok: true, ...previous, duplicate: true, entries: [] };
    const d = decideSubmit(this.record, sub, nowMs, (e) => this.commitLog.find((c) => c.epoch === e)?.sha256);
    if (!d.ok) return d;
    const { lease, ...rest } = d.group;
    const settled = settlesInAccept(this.record, rest.members, d.entries, this.dispatched);
    if (settled) this.dispatched = d.entries.at(-1)!.seq;
    if (sub.kind === "commit") {
      const change = spanChange(this.record.members, rest.members, d.entries[0]!.seq);
      for (const c of change.joined) this.spans.set(c, openSpan(this.spans.get(c) ?? [], change.commitSeq));
      for (const c of change.left) this.spans.set(c, closeSpan(this.spans.get(c) ?? [], change.commitSeq));
    }
    this.record = lease ? { ...rest, lease } : rest;
    this.answers.set(sub.sha256, d.answer);
    if (d.commitLog) this.commitLog.push(d.commitLog);
    if (d.groupInfo) this.groupInfo = d.groupInfo;
    this.log.push(...d.entries);
    return { ok: true, ...d.answer, duplicate: false, entries: d.entries, ...(settled ? { settled: true as const } : {}) };
  }

  lease(holder: string, ttlMs: number, token: string, nowMs: number): LeaseOutcome {
    const d = decideLease(this.record, holder, ttlMs, token, nowMs);
    if (!d.ok) return d;
    this.record = { ...this.record, lease: d.lease };
    return d.outcome;
  }

  release(token: string): boolean {
    if (!decideRelease(this.record, token)) return false;
    const { lease: _dropped, ...rest } = this.record;
    this.record = rest;
    return true;
  }
}

const subset = fc.subarray(CLIENTS);
const client = fc.constantFrom(...CLIENTS);

const groupArb = fc
  .record({
    mode: fc.constantFrom("ordered" as const, "send-group" as const),
    members: fc.subarray(CLIENTS, { minLength: 1 }),
    ownerIndex: fc.nat(),
    epoch: fc.integer({ min: 0, max: 3 }),
    nextSeq: fc.integer({ min: 1, max: 5 }),
    lease: fc.option(
      fc.record({ token: fc.constantFrom(...TOKENS), holder: client, expiresAt: fc.integer({ min: 0, max: 2000 }) }),
      { nil: undefined },
    ),
  })
  .map(({ ownerIndex, lease, ...g }) => ({ ...g, owner: g.members[ownerIndex % g.members.length]!, lease }));

const submitOp = fc.record({
  op: fc.constant("submit" as const),
  kind: fc.constantFrom("commit" as const, "commit" as const, "application" as const, "proposal" as const),
  sender: client,
  epochDelta: fc.integer({ min: -1, max: 1 }),
  external: fc.boolean(),
  added: subset,
  removed: subset,
  welcome: fc.boolean(),
  /** A GroupInfo embedding its tree, or one with the tree stored beside it (MIMI). */
  groupInfo: fc.constantFrom("none" as const, "embedded" as const, "tree-beside" as const),
  leaseToken: fc.option(fc.constantFrom(...TOKENS), { nil: undefined }),
  now: fc.integer({ min: 0, max: 3000 }),
  /** Resend an earlier submission with the same bytes instead (its index among the earlier ones). */
  retry: fc.option(fc.nat(), { freq: 4, nil: undefined }),
});
const leaseOp = fc.record({
  op: fc.constant("lease" as const),
  holder: client,
  token: fc.constantFrom(...TOKENS),
  ttl: fc.integer({ min: 1, max: 2000 }),
  now: fc.integer({ min: 0, max: 3000 }),
});
const releaseOp = fc.record({ op: fc.constant("release" as const), token: fc.constantFrom(...TOKENS) });
const opsArb = fc.array(fc.oneof({ weight: 6, arbitrary: submitOp }, leaseOp, releaseOp), { minLength: 1, maxLength: 12 });

describe("the Lua scripts of the Redis store decide as the TypeScript specification", () => {
  let store: RedisStore;
  beforeAll(async () => {
    store = await createRedisStore({ topology: testTopology("single"), prefix: `t${randomBytes(6).toString("hex")}` });
  });
  afterAll(() => store?.close());

  it("submit, acquireLease and releaseLease: same answers, same group, same log, for generated cases", async () => {
    await fc.assert(
      fc.asyncProperty(groupArb, opsArb, async (g, ops) => {
        const record: GroupRecord = {
          groupId: `g${randomBytes(6).toString("hex")}`,
          hub: "a.example",
          mode: g.mode,
          cipherSuite: 1,
          epoch: g.epoch,
          nextSeq: g.nextSeq,
          members: g.members,
          owner: g.owner,
          createdAt: 1,
          ...(g.lease ? { lease: g.lease } : {}),
        };
        const spec = new Spec(structuredClone(record));
        expect(await store.createGroup(record)).toBe(true);
        const sent: Submission[] = [];
        for (const [i, op] of ops.entries()) {
          if (op.op === "lease") {
            const token = `${op.token}-${i}`;
            expect(await store.acquireLease(record.groupId, op.holder, op.ttl, token, op.now)).toEqual(
              spec.lease(op.holder, op.ttl, token, op.now),
            );
          } else if (op.op === "release") {
            const token = spec.record.lease?.token.startsWith(op.token) ? spec.record.lease.token : op.token;
            expect(await store.releaseLease(record.groupId, token)).toBe(spec.release(token));
          } else {
            const sub = op.retry !== undefined && sent.length > 0 ? sent[op.retry % sent.length]! : submission(op, spec, i);
            sent.push(sub);
            expect(await store.submit(record.groupId, sub, op.now)).toEqual(spec.submit(sub, op.now));
          }
          expect(await store.getGroup(record.groupId)).toEqual(spec.record);
          expect(await store.getGroupInfo(record.groupId)).toEqual(spec.groupInfo);
        }
        expect(await store.readLog(record.groupId, 0, 100)).toEqual(spec.log);
        expect(await store.commitLog(record.groupId, -1)).toEqual(spec.commitLog);
        // Every client's feed (READ_FEED over the spans SUBMIT wrote) is the specification's.
        for (const c of CLIENTS) expect(await store.readFeed(record.groupId, c, 0, 100)).toEqual(await spec.feed(c));
      }),
      {
        numRuns: Number(process.env.MLSFEDGATE_PROPERTY_RUNS ?? 150),
        // Rare among random cases, so always tried: a GroupInfo embedding its tree after one with the
        // tree stored beside it must drop the stored tree.
        examples: [
          [
            { mode: "ordered", members: [CLIENTS[0]!, CLIENTS[3]!], epoch: 0, nextSeq: 1, owner: CLIENTS[0]!, lease: undefined },
            treeThenEmbedded(),
          ],
        ],
      },
    );
  });
});

describe("a follower's replica feed on Redis decides as the TypeScript specification", () => {
  let store: RedisStore;
  beforeAll(async () => {
    store = await createRedisStore({ topology: testTopology("single"), prefix: `t${randomBytes(6).toString("hex")}` });
  });
  afterAll(() => store?.close());

  const LOCAL = ["l1@f.example/1", "l2@f.example/1", "l3@f.example/1", "l4@f.example/1"];
  const REMOTE = ["r1@h.example/1", "r2@h.example/1"];
  const isLocal = (c: string) => c.endsWith("@f.example/1");

  it("PUT_REPLICA, ADVANCE_REPLICA_FEED and READ_FEED give what replicaSpanSteps and readFeedWith give, in any delivery order", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(hubOpArb, { minLength: 1, maxLength: 30 }),
        fc.array(fc.nat(40), { maxLength: 4 }),
        fc.boolean(),
        fc.nat(40),
        async (ops, cuts, reversed, readAfter) => {
          const log = hubLog(ops, LOCAL, REMOTE);
          const record: Omit<GroupRecord, "nextSeq"> = {
            groupId: `r${randomBytes(6).toString("hex")}`,
            hub: "h.example",
            mode: "ordered",
            cipherSuite: 1,
            epoch: 0,
            members: [...LOCAL, ...REMOTE],
            owner: REMOTE[0]!,
            createdAt: 0,
          };
          const bounds = [...new Set([0, ...cuts.map((c) => c % (log.length + 1)), log.length])].sort((a, b) => a - b);
          const batches = bounds.slice(1).map((b, i) => log.slice(bounds[i], b));
          if (reversed) batches.reverse();
          // As ReplicaSync does after each delivery: derive from where the feed stands to the contiguous seq.
          for (const batch of batches) {
            if (batch.length === 0) continue;
            expect((await store.putReplicaEntries(record, batch)).ok).toBe(true);
            const feed = await store.replicaFeed(record.groupId);
            const from = feed.through ?? 0;
            const to = await store.contiguousSeq(record.groupId);
            if (to <= from) continue;
            const entries = await store.readLog(record.groupId, from, to - from);
            const steps = replicaSpanSteps("ordered", new Set(feed.open), entries, isLocal);
            expect(await store.advanceReplicaFeed(record.groupId, from, to, steps)).toBe(true);
          }
          // The specification: the same steps over the whole log, applied in TypeScript.
          const open = new Set<string>();
          const spans = new Map<string, Span[]>();
          for (const step of replicaSpanSteps("ordered", open, log, isLocal))
            spans.set(step.client, applySpanStep(spans.get(step.client) ?? [], step));
          const feed = await store.replicaFeed(record.groupId);
          expect({ open: [...feed.open].sort(), through: feed.through }).toEqual({ open: [...open].sort(), through: log.length });
          const after = readAfter % (log.length + 1);
          for (const c of LOCAL) {
            const want = await readFeedWith("ordered", c, spans.get(c), after, async (a) =>
              log.filter((e) => e.seq > a).slice(0, 50),
            );
            expect([c, await store.readFeed(record.groupId, c, after, 50)]).toEqual([c, want]);
          }
        },
      ),
      { numRuns: Number(process.env.MLSFEDGATE_PROPERTY_RUNS ?? 100) },
    );
  });
});

function submission(op: SubmitOp, spec: Spec, i: number): Submission {
  const epoch = Math.max(0, spec.record.epoch + op.epochDelta);
  const sha256 = `h${i}-${randomBytes(4).toString("hex")}`;
  const base = { sender: op.sender, epoch, sha256, message: `m-${sha256}` };
  if (op.kind !== "commit") return { kind: op.kind, ...base };
  // A lease token the group actually holds, when the generated one names it.
  const held = spec.record.lease?.token;
  const leaseToken = op.leaseToken && held?.startsWith(op.leaseToken) ? held : op.leaseToken;
  return {
    kind: "commit",
    ...base,
    added: op.added,
    removed: op.removed,
    ...(op.external ? { external: true } : {}),
    ...(op.welcome ? { welcome: { message: `w-${sha256}`, sha256: `wh-${sha256}` } } : {}),
    ...(op.groupInfo !== "none" ? { groupInfo: `gi-${sha256}` } : {}),
    ...(op.groupInfo === "tree-beside" ? { ratchetTree: `rt-${sha256}` } : {}),
    ...(leaseToken !== undefined ? { leaseToken } : {}),
  };
}

function treeThenEmbedded(): SubmitOp[] {
  const commit = (groupInfo: SubmitOp["groupInfo"]): SubmitOp => ({
    op: "submit",
    kind: "commit",
    sender: CLIENTS[0]!,
    epochDelta: 0,
    external: false,
    added: [],
    removed: [],
    welcome: false,
    groupInfo,
    leaseToken: undefined,
    now: 0,
    retry: undefined,
  });
  return [commit("tree-beside"), commit("embedded")];
}

type SubmitOp = typeof submitOp extends fc.Arbitrary<infer T> ? T : never;
