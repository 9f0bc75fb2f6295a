/**
 * The memory store stays bounded under churn (issue 8): log entries go once every recipient has
 * acknowledged them (after a grace period) or after the retention period; answers, dedupe ids and
 * the commit log expire after the retention period, as Redis's dedupe sets do. Time is a fake
 * clock, so hours of traffic take no wall time. The figures are printed and recorded in
 * docs/SECURITY.md ("Store: telling the truth").
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { MemoryStore } from "../../src/store/memory.js";
import type { GroupRecord, InboxItem, LogEntry } from "../../src/store/port.js";
import { FeedReader } from "../../src/domain/feed-reader.js";
import { FakeClock } from "../helpers/clock.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const RETENTION_MS = 60_000;
const GRACE_MS = 5_000;
const STEP_MS = 10;
const WARM_UP = 8_000;
const alice = "alice@a.example/phone";
const bob = "bob@a.example/laptop";
const carol = "carol@a.example/tablet";

/** Members read their group feeds into their inboxes, as an inbox read does. */
async function pullAll(store: MemoryStore, clients: string[]): Promise<void> {
  for (const c of clients) await new FeedReader(store).pull(c);
}

function group(groupId: string, members: string[], hub = "a.example"): GroupRecord {
  return { groupId, hub, mode: "ordered", cipherSuite: 1, epoch: 0, nextSeq: 1, members, owner: members[0]!, createdAt: 0 };
}

/**
 * What the DS does for one application message: order it, fan it out, let the recipients read and
 * acknowledge. With `peer`, the group also has members there: each entry goes to that peer's
 * outbox too, and the peer receives (the outbox is acknowledged) in the same batches.
 */
async function churn(
  store: MemoryStore,
  clock: FakeClock,
  groupId: string,
  from: number,
  to: number,
  peer?: string,
): Promise<void> {
  const payload = "x".repeat(600);
  for (let i = from; i < to; i++) {
    clock.advance(STEP_MS);
    const outcome = await store.submit(
      groupId,
      { kind: "application", sender: alice, epoch: 0, sha256: `sha-${i}`, message: `${payload}${i}` },
      clock.nowMs(),
    );
    if (!outcome.ok) throw new Error(`submission ${i} refused: ${outcome.code}`);
    if (peer)
      await store.enqueueOutbox(
        peer,
        outcome.entries.map((e) => ({ id: `${groupId}:${e.seq}`, groupId, seq: e.seq })),
      );
    await store.markDispatched(groupId, outcome.seq);
    if (i % 10 === 9) {
      // Every member reads (alice too: her feed mark says she has seen her own messages).
      for (const client of [alice, bob, carol]) {
        await new FeedReader(store).pull(client);
        const page = await store.readInbox(client, 0, 100);
        if (page.length > 0) await store.ackInbox(client, page[page.length - 1]!.cursor);
      }
      if (peer) {
        const sent = await store.peekOutbox(peer, 100);
        await store.ackOutbox(peer, sent[sent.length - 1]!.cursor);
      }
    }
  }
}

function heapMb(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

describe("the memory store under churn", () => {
  it.each([
    ["on a DS without peers", undefined],
    ["on a DS with peers (members on b.example, hub log trimmed by default)", "b.example"],
  ])("holds a bounded amount after warm-up: 20,000 acknowledged messages, %s", async (_, peer) => {
    const clock = new FakeClock();
    // Default options but the windows: trimHubLogs is on by default, as on a DS with peers.
    const store = new MemoryStore({ clock, retentionMs: RETENTION_MS, deliveredGraceMs: GRACE_MS });
    await store.createGroup(group("g1", peer ? [alice, bob, carol, `dave@${peer}/phone`] : [alice, bob, carol]));

    await churn(store, clock, "g1", 0, WARM_UP, peer); // longer than the retention period (80 s of fake time)
    // Heap first, then a use of the store: it must still be alive when the heap is measured.
    const warm = { heap: heapMb(), sizes: store.sizes(), rssMb: process.memoryUsage().rss / 2 ** 20 };
    await churn(store, clock, "g1", WARM_UP, 20_000, peer);
    const done = { heap: heapMb(), sizes: store.sizes(), rssMb: process.memoryUsage().rss / 2 ** 20 };
    console.log(
      `memory store churn${peer ? " (with peers)" : ""}: after ${WARM_UP} messages ${JSON.stringify(warm.sizes)} heap ${warm.heap.toFixed(1)} MB; ` +
        `after 20,000 ${JSON.stringify(done.sizes)} heap ${done.heap.toFixed(1)} MB (growth ${(done.heap - warm.heap).toFixed(1)} MB), rss ${warm.rssMb.toFixed(0)} → ${done.rssMb.toFixed(0)} MB`,
    );

    // Delivered entries stay for the grace period (plus one unacknowledged batch), answers and
    // dedupe ids for the retention period: rate × window, however long the churn runs.
    const perWindow = (ms: number) => ms / STEP_MS;
    expect(done.sizes.logEntries).toBeLessThanOrEqual(perWindow(GRACE_MS) + 20);
    expect(done.sizes.answers).toBeLessThanOrEqual(perWindow(RETENTION_MS) + 1);
    // Inbox dedupe ids for bob and carol, outbox ones for the peer.
    expect(done.sizes.dedupeIds).toBeLessThanOrEqual((peer ? 3 : 2) * (perWindow(RETENTION_MS) + 1));
    expect(done.sizes.queued).toBeLessThanOrEqual((peer ? 3 : 2) * 10);
    expect(await store.logStart("g1")).toBeGreaterThan(20_000 - perWindow(GRACE_MS) - 20);
    // The 12,000 messages after warm-up (≈7 MB of payload alone) leave the heap where it was.
    expect(done.heap - warm.heap).toBeLessThan(2);
  });

  it("keeps what a member has not acknowledged until the retention period, then drops it", async () => {
    const clock = new FakeClock();
    const store = new MemoryStore({ clock, retentionMs: RETENTION_MS, deliveredGraceMs: GRACE_MS, trimHubLogs: true });
    await store.createGroup(group("g1", [alice, bob]));
    const sent = await store.submit(
      "g1",
      { kind: "application", sender: alice, epoch: 0, sha256: "s1", message: "m1" },
      clock.nowMs(),
    );
    expect(sent).toMatchObject({ ok: true, seq: 1 });
    await pullAll(store, [alice, bob]);
    await store.markDispatched("g1", 1);

    clock.advance(RETENTION_MS - 1);
    await store.markDispatched("g1", 1); // any write to the group runs the trim
    expect(await store.readEntries("g1", [1])).toEqual([expect.objectContaining({ seq: 1 })]);
    // A retry within the retention period gets the original answer.
    expect(
      await store.submit("g1", { kind: "application", sender: alice, epoch: 0, sha256: "s1", message: "m1" }, clock.nowMs()),
    ).toMatchObject({
      ok: true,
      seq: 1,
      duplicate: true,
    });

    clock.advance(2);
    await store.markDispatched("g1", 1);
    expect(await store.readEntries("g1", [1])).toEqual([undefined]);
    expect(await store.readLog("g1", 0, 10)).toEqual([]);
    expect(store.sizes()).toMatchObject({ logEntries: 0, answers: 0 });
  });

  it("keeps an acknowledged entry readable for the grace period", async () => {
    const clock = new FakeClock();
    const store = new MemoryStore({ clock, retentionMs: RETENTION_MS, deliveredGraceMs: GRACE_MS, trimHubLogs: true });
    await store.createGroup(group("g1", [alice, bob]));
    await store.submit("g1", { kind: "application", sender: alice, epoch: 0, sha256: "s1", message: "m1" }, clock.nowMs());
    await pullAll(store, [alice, bob]);
    await store.markDispatched("g1", 1);
    await store.ackInbox(bob, 1);
    clock.advance(GRACE_MS - 1);
    await store.markDispatched("g1", 1);
    expect((await store.readLog("g1", 0, 10)).map((e) => e.seq)).toEqual([1]);
    clock.advance(2);
    await store.markDispatched("g1", 1);
    expect(await store.readLog("g1", 0, 10)).toEqual([]);
  });

  it("keeps hub logs whole with trimHubLogs off, and still expires answers", async () => {
    const clock = new FakeClock();
    const store = new MemoryStore({ clock, retentionMs: RETENTION_MS, deliveredGraceMs: GRACE_MS, trimHubLogs: false });
    await store.createGroup(group("g1", [alice, bob]));
    await store.submit("g1", { kind: "application", sender: alice, epoch: 0, sha256: "s1", message: "m1" }, clock.nowMs());
    await pullAll(store, [alice, bob]);
    await store.markDispatched("g1", 1);
    await store.ackInbox(bob, 1);
    clock.advance(2 * RETENTION_MS);
    await store.markDispatched("g1", 1);
    expect((await store.readLog("g1", 0, 10)).map((e) => e.seq)).toEqual([1]);
    expect(store.sizes()).toMatchObject({ logEntries: 1, answers: 0 });
  });

  it("trims a hub log with members on other providers only once the peer received the entry, and says where it starts", async () => {
    const clock = new FakeClock();
    const store = new MemoryStore({ clock, retentionMs: RETENTION_MS, deliveredGraceMs: GRACE_MS });
    await store.createGroup(group("g1", [alice, "dave@b.example/phone"]));
    await store.submit("g1", { kind: "application", sender: alice, epoch: 0, sha256: "s1", message: "m1" }, clock.nowMs());
    await store.enqueueOutbox("b.example", [{ id: "g1:1", groupId: "g1", seq: 1 }]);
    await store.markDispatched("g1", 1);
    clock.advance(GRACE_MS + 1);
    await store.markDispatched("g1", 1);
    // Not received by b.example yet: kept.
    expect((await store.readLog("g1", 0, 10)).map((e) => e.seq)).toEqual([1]);
    expect(await store.logStart("g1")).toBe(1);
    await store.ackOutbox("b.example", 1);
    // alice, the one local member, has read her feed too (her own message: nothing for her inbox).
    await pullAll(store, [alice]);
    clock.advance(GRACE_MS + 1);
    await store.markDispatched("g1", 1);
    expect(await store.readLog("g1", 0, 10)).toEqual([]);
    expect(await store.logStart("g1")).toBe(2);
  });

  it("on a replica, skips a gap the hub trimmed, never past a held entry, and refuses the skipped seqs later", async () => {
    const clock = new FakeClock();
    const store = new MemoryStore({ clock, retentionMs: RETENTION_MS, deliveredGraceMs: GRACE_MS });
    const record = group("g3", [bob, "erin@b.example/phone"], "b.example");
    const entry = (seq: number): LogEntry => ({
      seq,
      kind: "application",
      epoch: 0,
      sender: "erin@b.example/phone",
      message: `m${seq}`,
      sha256: `h${seq}`,
      recipients: [bob],
    });
    // Nothing held above the contiguous point: no evidence, no skip.
    await store.putReplicaEntries(record, [entry(1)]);
    expect(await store.skipReplicaGap("g3", 40)).toBe(1);
    // Held 10 and 50: a skip to 40 stops before 10 (held entries are never skipped) ...
    await store.putReplicaEntries(record, [entry(10), entry(50)]);
    expect(await store.skipReplicaGap("g3", 40)).toBe(10);
    // ... and the next one goes from 10 to 40; it never moves backwards.
    expect(await store.skipReplicaGap("g3", 40)).toBe(40);
    expect(await store.skipReplicaGap("g3", 5)).toBe(40);
    // A skipped seq arriving late is not stored; the held ones stay readable in order.
    const late = await store.putReplicaEntries(record, [entry(3), entry(20), entry(41)]);
    expect(late).toEqual({ ok: true, fresh: [entry(41)] });
    expect(await store.contiguousSeq("g3")).toBe(41);
    expect((await store.readLog("g3", 0, 10)).map((e) => e.seq)).toEqual([1, 10, 41, 50]);
    // Once everything is delivered (or retention passed), the replica trims across the skipped ranges.
    clock.advance(RETENTION_MS + 1);
    await store.putReplicaEntries(record, [entry(51)]);
    // 1, 10 and 41 are gone; 50 and 51 wait behind the real gap at 42.
    expect((await store.readLog("g3", 0, 10)).map((e) => e.seq)).toEqual([50, 51]);
    expect(await store.contiguousSeq("g3")).toBe(41);
  });

  it("on a replica, counts trimmed entries as held: a redelivery is not new and the log stays contiguous", async () => {
    const clock = new FakeClock();
    const store = new MemoryStore({ clock, retentionMs: RETENTION_MS, deliveredGraceMs: GRACE_MS, trimHubLogs: true });
    const record = { ...group("g2", [bob, "erin@b.example/phone"], "b.example") };
    const entry = (seq: number): LogEntry => ({
      seq,
      kind: "application",
      epoch: 0,
      sender: "erin@b.example/phone",
      message: `m${seq}`,
      sha256: `h${seq}`,
      recipients: [bob],
    });
    const fresh = async (entries: LogEntry[]) => {
      const written = await store.putReplicaEntries(record, entries);
      if (!written.ok) throw new Error(`replica write refused: ${written.code}`);
      return written.fresh;
    };
    expect(await fresh([entry(1), entry(2)])).toHaveLength(2);
    await store.appendInbox(
      bob,
      [1, 2].map((seq) => ({ kind: "ref" as const, groupId: "g2", seq })),
    );
    await store.ackInbox(bob, 2);
    clock.advance(GRACE_MS + 1);
    expect(await fresh([entry(3)])).toHaveLength(1);
    expect((await store.readLog("g2", 0, 10)).map((e) => e.seq)).toEqual([3]);
    expect(await fresh([entry(1), entry(2)])).toEqual([]);
    expect(await store.contiguousSeq("g2")).toBe(3);
  });

  it("forgets inbox dedupe ids after the retention period, as Redis prunes its seen set", async () => {
    const clock = new FakeClock();
    const store = new MemoryStore({ clock, retentionMs: RETENTION_MS, deliveredGraceMs: GRACE_MS, trimHubLogs: true });
    const notice: InboxItem = { kind: "notice", id: "n1", type: "device_update", body: {} };
    await store.appendInbox(bob, [notice]);
    await store.ackInbox(bob, 1);
    await store.appendInbox(bob, [notice]);
    expect(await store.inboxDepth(bob)).toBe(0); // acknowledged, and a retry does not bring it back
    clock.advance(RETENTION_MS + 1);
    await store.appendInbox(bob, [notice]);
    expect(await store.inboxDepth(bob)).toBe(1);
    expect(store.sizes().dedupeIds).toBe(1);
  });
});
