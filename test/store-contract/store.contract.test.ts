import { randomBytes } from "node:crypto";
import { MemoryStore } from "../../src/store/memory.js";
import { createRedisStore } from "../../src/store/redis.js";
import { REDIS_KINDS, testTopology } from "../helpers/providers.js";
import type { GroupRecord, LogEntry, Store, StoredKeyPackage, Submission } from "../../src/store/port.js";
import { replicaSpanSteps } from "../../src/domain/feeds.js";

/**
 * One contract, two adapters: the memory store, and the Redis store on each real deployment the
 * global setup starts (a single node, a Redis Cluster of 3 masters + 3 replicas, a Sentinel set).
 */
const adapters: [string, () => Promise<Store>][] = [
  ["memory", async () => new MemoryStore()],
  ...REDIS_KINDS.map((kind): [string, () => Promise<Store>] => [
    `redis (${kind})`,
    () => createRedisStore({ topology: testTopology(kind), prefix: `t${randomBytes(6).toString("hex")}` }),
  ]),
];

// The store keeps KeyPackage bytes as opaque text; these tests need no MLS, only distinct values.
function kp(client: string, n: number, over: Partial<StoredKeyPackage> = {}): StoredKeyPackage {
  return {
    ref: `ref-${client}-${n}-${over.cipherSuite ?? 1}${over.lastResort ? "-lr" : ""}`,
    client,
    cipherSuite: 1,
    notAfter: 4_000_000_000,
    lastResort: false,
    identityKey: `ik-${client}`,
    keyPackage: `opaque-${client}-${n}`,
    ...over,
  };
}

function group(over: Partial<GroupRecord> = {}): GroupRecord {
  return {
    groupId: `g${randomBytes(4).toString("hex")}`,
    hub: "a.example",
    mode: "ordered",
    cipherSuite: 1,
    epoch: 0,
    nextSeq: 1,
    members: ["alice@a.example/1"],
    owner: "alice@a.example/1",
    createdAt: 1,
    ...over,
  };
}

function commit(sender: string, epoch: number, over: Partial<Extract<Submission, { kind: "commit" }>> = {}): Submission {
  const sha256 = `h-${sender}-${epoch}-${randomBytes(4).toString("hex")}`;
  return { kind: "commit", sender, epoch, sha256, message: `m-${sha256}`, added: [], removed: [], ...over };
}

describe.each(adapters)("store contract on %s", (_name, make) => {
  let store: Store;
  beforeEach(async () => {
    store = await make();
  });
  afterEach(async () => {
    await store.close();
  });

  describe("key directory", () => {
    it("stores KeyPackages up to the per-client limit and reports the rest", async () => {
      await store.registerDevice("bob@a.example/1");
      const res = await store.putKeyPackages(
        "bob@a.example/1",
        [kp("bob@a.example/1", 1), kp("bob@a.example/1", 2), kp("bob@a.example/1", 3)],
        2,
      );
      expect(res.stored).toHaveLength(2);
      expect(res.overLimit).toEqual(["ref-bob@a.example/1-3-1"]);
      expect(await store.listKeyPackages("bob@a.example/1")).toHaveLength(2);
    });

    it("deletes only the owner's KeyPackage", async () => {
      await store.putKeyPackages("bob@a.example/1", [kp("bob@a.example/1", 1)], 10);
      expect(await store.deleteKeyPackage("eve@a.example/1", "ref-bob@a.example/1-1-1")).toBe(false);
      expect(await store.deleteKeyPackage("bob@a.example/1", "ref-bob@a.example/1-1-1")).toBe(true);
      expect(await store.listKeyPackages("bob@a.example/1")).toEqual([]);
    });

    it("claims one KeyPackage per device and falls back to last resort, which is never consumed", async () => {
      const d1 = "bob@a.example/1";
      const d2 = "bob@a.example/2";
      await store.registerDevice(d1);
      await store.registerDevice(d2);
      await store.putKeyPackages(d1, [kp(d1, 1), kp(d1, 9, { lastResort: true })], 10);
      await store.putKeyPackages(d2, [kp(d2, 1)], 10);
      const first = await store.claim("bob@a.example", [1], 1000);
      expect(first.kind).toBe("ok");
      if (first.kind !== "ok") return;
      expect(first.bundles.map((b) => b.keyPackage).sort()).toEqual([`opaque-${d1}-1`, `opaque-${d2}-1`]);
      const second = await store.claim("bob@a.example", [1], 1000);
      if (second.kind !== "ok") throw new Error(second.kind);
      expect(second.bundles.map((b) => [b.client, b.lastResort])).toEqual([[d1, true]]);
      expect(second.missing).toEqual([{ client: d2, reason: "exhausted" }]);
      const third = await store.claim("bob@a.example", [1], 1000);
      if (third.kind !== "ok") throw new Error(third.kind);
      expect(third.bundles[0]?.ref).toBe(second.bundles[0]?.ref);
    });

    it("negotiates the first suite in the requester's order that a device has", async () => {
      const d = "bob@a.example/1";
      await store.registerDevice(d);
      await store.putKeyPackages(d, [kp(d, 1, { cipherSuite: 3 }), kp(d, 2, { cipherSuite: 1 })], 10);
      const r = await store.claim("bob@a.example", [2, 3, 1], 1000);
      expect(r.kind === "ok" && r.cipherSuite).toBe(3);
      const none = await store.claim("bob@a.example", [2], 1000);
      expect(none).toEqual({ kind: "no_common_suite", available: [1] });
    });

    it("skips expired KeyPackages, and tells unknown users from exhausted ones", async () => {
      const d = "bob@a.example/1";
      await store.registerDevice(d);
      await store.putKeyPackages(d, [kp(d, 1, { notAfter: 10 })], 10);
      expect(await store.claim("bob@a.example", [1], 1000)).toEqual({ kind: "no_key_package" });
      expect(await store.claim("nobody@a.example", [1], 1000)).toEqual({ kind: "unknown_user" });
    });

    it("serves only the virtual client in single-client mode", async () => {
      await store.registerDevice("dan@a.example/1");
      await store.registerDevice("dan@a.example/2");
      await store.putKeyPackages("dan@a.example/1", [kp("dan@a.example/1", 1)], 10);
      await store.registerDevice("dan@a.example/*");
      await store.putKeyPackages("dan@a.example/*", [kp("dan@a.example/*", 1)], 10);
      const r = await store.claim("dan@a.example", [1], 1000);
      expect(r).toEqual({
        kind: "ok",
        cipherSuite: 1,
        bundles: [expect.objectContaining({ client: "dan@a.example/*" })],
        missing: [],
      });
    });

    it("never hands the same KeyPackage to two concurrent claims", async () => {
      const d = "bob@a.example/1";
      await store.registerDevice(d);
      await store.putKeyPackages(
        d,
        Array.from({ length: 10 }, (_, i) => kp(d, i)),
        100,
      );
      const results = await Promise.all(Array.from({ length: 20 }, () => store.claim("bob@a.example", [1], 1000)));
      const got = results.flatMap((r) => (r.kind === "ok" ? r.bundles.map((b) => b.ref) : []));
      expect(got).toHaveLength(10);
      expect(new Set(got).size).toBe(10);
      expect(results.filter((r) => r.kind === "no_key_package")).toHaveLength(10);
    });

    it("keeps a versioned device registry and resolves refs to clients", async () => {
      expect(await store.registerDevice("carol@a.example/1")).toEqual({ version: 1, added: true });
      expect(await store.registerDevice("carol@a.example/1")).toEqual({ version: 1, added: false });
      await store.registerDevice("carol@a.example/2");
      await store.putKeyPackages("carol@a.example/2", [kp("carol@a.example/2", 1, { cipherSuite: 3 })], 10);
      const list = await store.listDevices("carol@a.example");
      expect(list).toEqual({
        user: "carol@a.example",
        version: 2,
        devices: [
          { client: "carol@a.example/1", cipherSuites: [] },
          { client: "carol@a.example/2", cipherSuites: [3] },
        ],
      });
      expect(await store.resolveRef("ref-carol@a.example/2-1-3")).toBe("carol@a.example/2");
      expect(await store.removeDevice("carol@a.example/2")).toEqual({ version: 3, removed: true });
      expect((await store.listDevices("carol@a.example")).devices).toHaveLength(1);
      await store.rememberRefs([{ ref: "remote-ref", client: "dan@b.example/1" }], 60);
      expect(await store.resolveRef("remote-ref")).toBe("dan@b.example/1");
    });
  });

  describe("groups and ordering", () => {
    it("creates a group once", async () => {
      const g = group();
      expect(await store.createGroup(g)).toBe(true);
      expect(await store.createGroup(g)).toBe(false);
      expect(await store.getGroup(g.groupId)).toEqual(g);
    });

    it("accepts a commit only at the current epoch and advances the epoch", async () => {
      const g = group({ members: ["a/1", "b/1"] });
      await store.createGroup(g);
      const ok = await store.submit(g.groupId, commit("a/1", 0, { added: ["c/1"], welcome: { message: "w", sha256: "wh" } }), 1);
      expect(ok).toMatchObject({ ok: true, seq: 1, epoch: 1, duplicate: false });
      if (!ok.ok) return;
      expect(ok.entries.map((e) => [e.seq, e.kind, e.recipients])).toEqual([
        [1, "commit", ["b/1"]],
        [2, "welcome", ["c/1"]],
      ]);
      const stale = await store.submit(g.groupId, commit("b/1", 0), 1);
      expect(stale).toEqual({ ok: false, code: "stale_epoch", expectedEpoch: 1, winner: ok.entries[0]!.sha256 });
      const after = await store.getGroup(g.groupId);
      expect(after).toMatchObject({ epoch: 1, nextSeq: 3, members: ["a/1", "b/1", "c/1"] });
      expect(await store.commitLog(g.groupId, -1)).toEqual([{ epoch: 0, seq: 1, sender: "a/1", sha256: ok.entries[0]!.sha256 }]);
    });

    it("returns the original answer for a retried submission and stores nothing twice", async () => {
      const g = group({ members: ["a/1", "b/1"] });
      await store.createGroup(g);
      const sub = commit("a/1", 0);
      const first = await store.submit(g.groupId, sub, 1);
      const again = await store.submit(g.groupId, sub, 1);
      expect(again).toEqual({ ok: true, seq: 1, epoch: 1, duplicate: true, entries: [] });
      expect(first.ok && first.seq).toBe(1);
      expect(await store.readLog(g.groupId, 0, 10)).toHaveLength(1);
    });

    it("refuses non-members, and strangers' external commits, without changing state", async () => {
      const g = group({ members: ["alice@a.example/1"] });
      await store.createGroup(g);
      expect(
        await store.submit(g.groupId, { kind: "application", sender: "eve@a.example/1", epoch: 0, sha256: "x", message: "m" }, 1),
      ).toEqual({
        ok: false,
        code: "not_a_member",
      });
      expect(await store.submit(g.groupId, commit("eve@a.example/1", 0, { external: true }), 1)).toEqual({
        ok: false,
        code: "not_a_member",
      });
      const ext = await store.submit(g.groupId, commit("alice@a.example/2", 0, { external: true }), 1);
      expect(ext).toMatchObject({ ok: true, epoch: 1 });
      expect((await store.getGroup(g.groupId))?.members).toEqual(["alice@a.example/1", "alice@a.example/2"]);
      expect(await store.submit("nope", commit("a/1", 0), 1)).toEqual({ ok: false, code: "unknown_group" });
    });

    it("resolves a device to the member it acts as when asked (resolveActor), and refuses strangers still", async () => {
      const g = group({ members: ["alice@a.example/1", "bob@a.example/*"] });
      await store.createGroup(g);
      const from = (sender: string, n: number, resolveActor?: true) =>
        store.submit(
          g.groupId,
          { kind: "application", sender, epoch: 0, sha256: `r${n}`, message: `m${n}`, ...(resolveActor ? { resolveActor } : {}) },
          1,
        );
      // Bob's phone is not a member itself: only as bob's virtual client.
      expect(await from("bob@a.example/phone", 1)).toEqual({ ok: false, code: "not_a_member" });
      const asBob = await from("bob@a.example/phone", 2, true);
      expect(asBob).toMatchObject({ ok: true, seq: 1 });
      if (asBob.ok)
        expect(asBob.entries.map((e) => [e.sender, e.recipients])).toEqual([["bob@a.example/*", ["alice@a.example/1"]]]);
      // A member device stays itself; a stranger stays a stranger.
      const asAlice = await from("alice@a.example/1", 3, true);
      if (asAlice.ok) expect(asAlice.entries[0]!.sender).toBe("alice@a.example/1");
      else throw new Error("alice's message refused");
      expect(await from("eve@a.example/1", 4, true)).toEqual({ ok: false, code: "not_a_member" });
      expect(await from("alice@a.example/2", 5, true)).toEqual({ ok: false, code: "not_a_member" });
      expect((await store.readLog(g.groupId, 0, 10)).map((e) => e.sender)).toEqual(["bob@a.example/*", "alice@a.example/1"]);
    });

    it("applies removals and stops delivering to removed members", async () => {
      const g = group({ members: ["a/1", "b/1", "c/1"] });
      await store.createGroup(g);
      await store.submit(g.groupId, commit("a/1", 0, { removed: ["c/1"] }), 1);
      const app = await store.submit(
        g.groupId,
        { kind: "application", sender: "a/1", epoch: 1, sha256: "app1", message: "m" },
        1,
      );
      expect(app.ok && app.entries[0]?.recipients).toEqual(["b/1"]);
      expect(await store.groupsOf("b/1")).toEqual([g.groupId]);
      // c keeps the group in its index until it has read its feed to the end (the commit that
      // removed it, nothing after): that read drops it.
      expect(await store.groupsOf("c/1")).toEqual([g.groupId]);
      // A page reads on past the removal (`through` is the last seq looked at) but carries nothing after it.
      expect(await store.readFeed(g.groupId, "c/1", 0, 10)).toEqual({ kind: "page", seqs: [1], through: 2, ended: true });
      await store.advanceFeed("c/1", { key: g.groupId, groupId: g.groupId, through: 2, seqs: [1], ended: true, dropIndex: true });
      expect(await store.groupsOf("c/1")).toEqual([]);
      expect(await store.readFeed(g.groupId, "b/1", 0, 10)).toEqual({ kind: "page", seqs: [1, 2], through: 2, ended: false });
      expect(await store.readFeed(g.groupId, "a/1", 0, 10)).toEqual({ kind: "page", seqs: [], through: 2, ended: false });
    });
  });

  describe("log retention", () => {
    it("trims a hub log from the front, by acceptance time, only what was fanned out, and says where it starts", async () => {
      // Clients of the hub's provider (a.example) only: each accept settles its fan-out itself.
      const g = group({ members: ["a@a.example/1", "b@a.example/1"] });
      await store.createGroup(g);
      const remote = group({ members: ["a@a.example/1", "z@z.example/1"] });
      await store.createGroup(remote);
      for (let i = 0; i < 3; i++) {
        await store.submit(
          g.groupId,
          { kind: "application", sender: "a@a.example/1", epoch: 0, sha256: `t${i}`, message: "x" },
          1,
        );
        // A member on another provider: the fan-out (outbox) is owed, so nothing is trimmed there.
        await store.submit(
          remote.groupId,
          { kind: "application", sender: "a@a.example/1", epoch: 0, sha256: `r${i}`, message: "x" },
          1,
        );
      }
      const later = Date.now() + 60_000;
      expect(await store.trimExpiredLogs(later, 2)).toBe(2);
      expect(await store.logStart(g.groupId)).toBe(3);
      expect((await store.readLog(g.groupId, 0, 10)).map((e) => e.seq)).toEqual([3]);
      expect(await store.trimExpiredLogs(later, 10)).toBe(1);
      expect(await store.readLog(g.groupId, 0, 10)).toEqual([]);
      expect(await store.logStart(remote.groupId)).toBe(1);
      // The next accept goes on after the trimmed part; a feed read skips it.
      await store.submit(g.groupId, { kind: "application", sender: "a@a.example/1", epoch: 0, sha256: "t3", message: "x" }, 1);
      expect(await store.readFeed(g.groupId, "b@a.example/1", 0, 10)).toMatchObject({ kind: "page", seqs: [4], through: 4 });
    });
  });

  describe("group feeds (domain/feeds.ts)", () => {
    it("serves an entry with its recipients, or its body alone (what an inbox read needs), on a hub and on a replica", async () => {
      const g = group({ members: ["a/1", "b/1", "c/1"] });
      await store.createGroup(g);
      await store.submit(g.groupId, { kind: "application", sender: "a/1", epoch: 0, sha256: "e1", message: "x" }, 1);
      const body = { seq: 1, kind: "application" as const, epoch: 0, sender: "a/1", message: "x", sha256: "e1" };
      expect(await store.readEntries(g.groupId, [1, 2])).toEqual([{ ...body, recipients: ["b/1", "c/1"] }, undefined]);
      expect(await store.readEntryBodies(g.groupId, [1, 2])).toEqual([body, undefined]);
      expect(await store.readLog(g.groupId, 0, 10)).toEqual([{ ...body, recipients: ["b/1", "c/1"] }]);
      const replica = group({ hub: "b.example", members: ["a/1", "b@b.example/1"] });
      const entry = { ...body, sender: "b@b.example/1", recipients: ["a/1"] };
      await store.putReplicaEntries(replica, [entry]);
      expect(await store.readEntries(replica.groupId, [1])).toEqual([entry]);
      expect(await store.readEntryBodies(replica.groupId, [1])).toEqual([{ ...body, sender: "b@b.example/1" }]);
    });

    const feed = (groupId: string, through: number, seqs: number[], ended = false) => ({
      key: groupId,
      groupId,
      through,
      seqs,
      ended,
      dropIndex: true,
    });

    it("gives a member what reached it after its mark, pages by limit, and moves the mark atomically with the inbox", async () => {
      const g = group({ members: ["a/1", "b/1"] });
      await store.createGroup(g);
      for (let i = 0; i < 5; i++)
        await store.submit(
          g.groupId,
          { kind: "application", sender: i % 2 ? "b/1" : "a/1", epoch: 0, sha256: `m${i}`, message: "x" },
          1,
        );
      expect(await store.readFeed(g.groupId, "b/1", 0, 3)).toEqual({ kind: "page", seqs: [1, 3], through: 3, ended: false });
      expect(await store.advanceFeed("b/1", feed(g.groupId, 3, [1, 3]))).toBe(2);
      // A second reader of the same client with the same page adds nothing; a mark never goes back.
      expect(await store.advanceFeed("b/1", feed(g.groupId, 3, [1, 3]))).toBe(0);
      expect(await store.advanceFeed("b/1", feed(g.groupId, 1, [1]))).toBe(0);
      expect((await store.feedMarks("b/1")).get(g.groupId)).toBe(3);
      expect(await store.readFeed(g.groupId, "b/1", 3, 3)).toEqual({ kind: "page", seqs: [5], through: 5, ended: false });
      expect(await store.advanceFeed("b/1", feed(g.groupId, 5, [5]))).toBe(1);
      expect((await store.readInbox("b/1", 0, 10)).map((r) => r.item)).toEqual(
        [1, 3, 5].map((seq) => ({ kind: "ref", groupId: g.groupId, seq })),
      );
      // One reference per seq on consecutive cursors, paged by limit and acknowledged one by one.
      const page = await store.readInbox("b/1", 0, 2);
      expect(page.map((r) => r.item)).toEqual([1, 3].map((seq) => ({ kind: "ref", groupId: g.groupId, seq })));
      expect(page[1]!.cursor).toBe(page[0]!.cursor + 1);
      await store.ackInbox("b/1", page[0]!.cursor);
      // Read from the start: the acknowledged reference is gone, the rest of its page is not.
      const rest = await store.readInbox("b/1", 0, 10);
      expect(rest.map((r) => [r.cursor, r.item])).toEqual([
        [page[1]!.cursor, { kind: "ref", groupId: g.groupId, seq: 3 }],
        [page[1]!.cursor + 1, { kind: "ref", groupId: g.groupId, seq: 5 }],
      ]);
      // Nothing new: the page is empty and the mark stays.
      expect(await store.readFeed(g.groupId, "b/1", 5, 3)).toEqual({ kind: "page", seqs: [], through: 5, ended: false });
    });

    it("starts a joiner after its Welcome, ends a leaver at its removal, and resumes a member added again", async () => {
      const g = group({ members: ["a/1"] });
      await store.createGroup(g);
      await store.submit(g.groupId, { kind: "application", sender: "a/1", epoch: 0, sha256: "before", message: "x" }, 1); // 1
      const welcome = { message: "w", sha256: "w1" };
      await store.submit(g.groupId, commit("a/1", 0, { added: ["b/1"], welcome }), 1); // 2 commit, 3 welcome
      await store.submit(g.groupId, { kind: "application", sender: "a/1", epoch: 1, sha256: "in", message: "x" }, 1); // 4
      await store.submit(g.groupId, commit("a/1", 1, { removed: ["b/1"] }), 1); // 5
      await store.submit(g.groupId, { kind: "application", sender: "a/1", epoch: 2, sha256: "out", message: "x" }, 1); // 6
      await store.submit(g.groupId, commit("a/1", 2, { added: ["b/1"], welcome: { message: "w", sha256: "w2" } }), 1); // 7, 8
      await store.submit(g.groupId, { kind: "application", sender: "a/1", epoch: 3, sha256: "back", message: "x" }, 1); // 9
      // Each span starts with its Welcome (3, 8: a joiner sees nothing of the group before it); 1 and
      // 6 came while b was out, 2 and 7 are the commits that added it.
      expect(await store.readFeed(g.groupId, "b/1", 0, 100)).toEqual({
        kind: "page",
        seqs: [3, 4, 5, 8, 9],
        through: 9,
        ended: false,
      });
      // Pages start at the span (after the commit at 2), not at seq 1; the second span after 7.
      expect(await store.readFeed(g.groupId, "b/1", 0, 3)).toEqual({ kind: "page", seqs: [3, 4, 5], through: 5, ended: false });
      expect(await store.readFeed(g.groupId, "b/1", 5, 1)).toEqual({ kind: "page", seqs: [8], through: 8, ended: false });
      // A client that never was a member has no feed there.
      expect(await store.readFeed(g.groupId, "z/1", 0, 100)).toEqual({ kind: "none" });
    });

    it("leaves a send-group's proposals to its owner's inbox and keeps no feed for a replica", async () => {
      const g = group({ members: ["o/1", "m/1"], owner: "o/1", mode: "send-group" });
      await store.createGroup(g);
      await store.submit(g.groupId, { kind: "proposal", sender: "m/1", epoch: 0, sha256: "p", message: "x" }, 1);
      await store.submit(g.groupId, { kind: "application", sender: "o/1", epoch: 0, sha256: "a", message: "x" }, 1);
      expect(await store.readFeed(g.groupId, "o/1", 0, 10)).toEqual({ kind: "page", seqs: [], through: 2, ended: false });
      expect(await store.readFeed(g.groupId, "m/1", 0, 10)).toEqual({ kind: "page", seqs: [2], through: 2, ended: false });
      const replica = group({ hub: "b.example", members: ["a/1", "b@b.example/1"] });
      const entry = {
        seq: 1,
        kind: "application" as const,
        epoch: 0,
        sender: "b@b.example/1",
        message: "x",
        sha256: "r",
        recipients: ["a/1"],
      };
      await store.putReplicaEntries(replica, [entry]);
      expect(await store.readFeed(replica.groupId, "a/1", 0, 10)).toEqual({ kind: "none" });
    });

    it("derives a replica's feed from its entries' recipients, in one step that another writer cannot repeat", async () => {
      const replica = group({ hub: "b.example", members: ["a/1", "b@b.example/1"] });
      const remote = "b@b.example/1";
      const e = (seq: number, kind: LogEntry["kind"], epoch: number, recipients: string[], sender = remote): LogEntry => ({
        seq,
        kind,
        epoch,
        sender,
        message: `m${seq}`,
        sha256: `s${seq}`,
        recipients,
      });
      // a/1 reads epochs 0 and 1; the commit at 5 removes it; c/1 joins with the commit at 2 (Welcome at 3).
      const entries = [
        e(1, "application", 0, ["a/1"]),
        e(2, "commit", 0, ["a/1"]),
        e(3, "welcome", 0, ["c/1"]),
        e(4, "application", 1, ["a/1", "c/1"]),
        e(5, "commit", 1, ["a/1", "c/1"]),
        e(6, "application", 2, ["c/1"]),
        e(8, "application", 2, ["c/1"]),
      ];
      await store.putReplicaEntries(replica, entries);
      expect(await store.replicaFeed(replica.groupId)).toEqual({ open: [], through: 0 });
      const steps = replicaSpanSteps("ordered", new Set(), entries.slice(0, 6), (c) => !c.includes("@b.example"));
      // A new replica's feed stands at 0: a writer that saw a later start derives nothing
      // (two DS replicas delivering concurrently cannot skip the first entries).
      expect(await store.advanceReplicaFeed(replica.groupId, 2, 6, [])).toBe(false);
      // Never past the contiguous seq (7 is missing), and only from where the feed stands.
      expect(await store.advanceReplicaFeed(replica.groupId, 0, 8, steps)).toBe(true);
      expect(await store.advanceReplicaFeed(replica.groupId, 0, 8, steps)).toBe(false);
      expect(await store.replicaFeed(replica.groupId)).toEqual({ open: ["c/1"], through: 6 });
      expect(await store.readFeed(replica.groupId, "a/1", 0, 100)).toEqual({
        kind: "page",
        seqs: [1, 2, 4, 5],
        through: 6,
        ended: true,
      });
      expect(await store.readFeed(replica.groupId, "c/1", 0, 100)).toEqual({
        kind: "page",
        seqs: [3, 4, 5, 6],
        through: 6,
        ended: false,
      });
      expect(await store.groupsOf("c/1")).toContain(replica.groupId);
    });

    it("blocks other committers while a lease is held and lets the holder commit with its token", async () => {
      const g = group({ members: ["a/1", "b/1"] });
      await store.createGroup(g);
      const lease = await store.acquireLease(g.groupId, "a/1", 1000, "tok-a", 100);
      expect(lease).toEqual({ ok: true, token: "tok-a", expiresAt: 1100 });
      expect(await store.acquireLease(g.groupId, "b/1", 1000, "tok-b", 200)).toEqual({
        ok: false,
        code: "group_locked",
        leaseExpiresAt: 1100,
      });
      expect(await store.submit(g.groupId, commit("b/1", 0), 200)).toEqual({
        ok: false,
        code: "group_locked",
        leaseExpiresAt: 1100,
      });
      expect(await store.submit(g.groupId, commit("a/1", 0, { leaseToken: "tok-a" }), 200)).toMatchObject({ ok: true, epoch: 1 });
      expect(await store.submit(g.groupId, commit("a/1", 1, { leaseToken: "tok-a" }), 300)).toMatchObject({ ok: true, epoch: 2 });
      // After expiry anyone may commit again, and that commit drops the stale lease (decideSubmit).
      expect(await store.submit(g.groupId, commit("b/1", 2), 1200)).toMatchObject({ ok: true, epoch: 3 });
      expect(await store.releaseLease(g.groupId, "tok-a")).toBe(false);
      expect(await store.acquireLease(g.groupId, "b/1", 1000, "tok-b", 1300)).toEqual({
        ok: true,
        token: "tok-b",
        expiresAt: 2300,
      });
      expect(await store.releaseLease(g.groupId, "tok-b")).toBe(true);
      expect(await store.releaseLease(g.groupId, "tok-b")).toBe(false);
    });

    it("renews a lease for its holder without changing the token", async () => {
      const g = group({ members: ["a/1", "b/1"] });
      await store.createGroup(g);
      expect(await store.acquireLease(g.groupId, "a/1", 1000, "tok-1", 100)).toEqual({
        ok: true,
        token: "tok-1",
        expiresAt: 1100,
      });
      expect(await store.acquireLease(g.groupId, "a/1", 1000, "tok-2", 500)).toEqual({
        ok: true,
        token: "tok-1",
        expiresAt: 1500,
      });
      expect(await store.submit(g.groupId, commit("a/1", 0, { leaseToken: "tok-1" }), 600)).toMatchObject({ ok: true, epoch: 1 });
      expect(await store.acquireLease(g.groupId, "a/1", 1000, "tok-3", 2000)).toEqual({
        ok: true,
        token: "tok-3",
        expiresAt: 3000,
      });
    });

    it("lets only the designated sender commit or send in a send group", async () => {
      const g = group({ mode: "send-group", members: ["a/1", "b/1"], owner: "a/1" });
      await store.createGroup(g);
      expect(await store.submit(g.groupId, commit("b/1", 0), 1)).toEqual({ ok: false, code: "not_designated_sender" });
      expect(
        await store.submit(g.groupId, { kind: "application", sender: "b/1", epoch: 0, sha256: "s", message: "m" }, 1),
      ).toEqual({
        ok: false,
        code: "not_designated_sender",
      });
      const prop = await store.submit(g.groupId, { kind: "proposal", sender: "b/1", epoch: 0, sha256: "p", message: "m" }, 1);
      expect(prop.ok && prop.entries[0]?.recipients).toEqual(["a/1"]);
    });

    it("accepts exactly one of many concurrent commits for one epoch", async () => {
      const members = Array.from({ length: 20 }, (_, i) => `m/${i}`);
      const g = group({ members });
      await store.createGroup(g);
      const results = await Promise.all(members.map((m) => store.submit(g.groupId, commit(m, 0), 1)));
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      expect(results.filter((r) => !r.ok && r.code === "stale_epoch")).toHaveLength(19);
    });

    it("stores the GroupInfo of the new epoch and serves log ranges", async () => {
      const g = group({ members: ["a/1", "b/1"] });
      await store.createGroup(g, { epoch: 0, groupInfo: "gi0" });
      expect(await store.getGroupInfo(g.groupId)).toEqual({ epoch: 0, groupInfo: "gi0" });
      await store.submit(g.groupId, commit("a/1", 0, { groupInfo: "gi1" }), 1);
      for (let i = 0; i < 5; i++)
        await store.submit(g.groupId, { kind: "application", sender: "b/1", epoch: 1, sha256: `s${i}`, message: `m${i}` }, 1);
      expect(await store.getGroupInfo(g.groupId)).toEqual({ epoch: 1, groupInfo: "gi1" });
      expect((await store.readLog(g.groupId, 2, 2)).map((e) => e.seq)).toEqual([3, 4]);
      expect((await store.readEntries(g.groupId, [6, 99])).map((e) => e?.message)).toEqual(["m4", undefined]);
    });

    it("stores a ratchet tree beside a GroupInfo that lacks it, with the commit, and drops it with the next GroupInfo", async () => {
      const g = group({ members: ["a/1", "b/1"] });
      await store.createGroup(g, { epoch: 0, groupInfo: "gi0" });
      const refused = await store.submit(g.groupId, commit("eve/1", 0, { groupInfo: "giX", ratchetTree: "treeX" }), 1);
      expect(refused.ok).toBe(false);
      expect(await store.getGroupInfo(g.groupId)).toEqual({ epoch: 0, groupInfo: "gi0" });
      await store.submit(g.groupId, commit("a/1", 0, { groupInfo: "gi1", ratchetTree: "tree1" }), 1);
      expect(await store.getGroupInfo(g.groupId)).toEqual({ epoch: 1, groupInfo: "gi1", ratchetTree: "tree1" });
      // A stale commit changes neither.
      expect((await store.submit(g.groupId, commit("b/1", 0, { groupInfo: "gi1b", ratchetTree: "tree1b" }), 1)).ok).toBe(false);
      expect(await store.getGroupInfo(g.groupId)).toEqual({ epoch: 1, groupInfo: "gi1", ratchetTree: "tree1" });
      await store.submit(g.groupId, commit("b/1", 1, { groupInfo: "gi2" }), 1);
      expect(await store.getGroupInfo(g.groupId)).toEqual({ epoch: 2, groupInfo: "gi2" });
    });

    it("tracks dispatch so a crashed fan-out is found again", async () => {
      const g = group({ members: ["a/1", "b/1"] });
      await store.createGroup(g);
      await store.submit(g.groupId, { kind: "application", sender: "a/1", epoch: 0, sha256: "d1", message: "m" }, 1);
      expect(await store.undispatched()).toContainEqual({ groupId: g.groupId, fromSeq: 1 });
      await store.markDispatched(g.groupId, 1);
      expect((await store.undispatched()).find((u) => u.groupId === g.groupId)).toBeUndefined();
    });

    it("numbers replica entries itself when asked, atomically: concurrent writers never share a seq", async () => {
      const { nextSeq: _n, ...rec } = group({ hub: "b.example" });
      const e = (i: number, kind: "application" | "commit" = "application") => ({
        seq: 0,
        kind,
        epoch: 0,
        sender: "x/1",
        message: `m${i}`,
        sha256: `h${i}`,
        recipients: [] as string[],
      });
      const first = await store.putReplicaEntries(rec, [e(0), e(1, "commit")], true);
      expect(first).toMatchObject({
        ok: true,
        fresh: [
          { seq: 1, message: "m0" },
          { seq: 2, message: "m1" },
        ],
      });
      // Many writers at once (one store connection each for Redis would behave the same: one script each).
      const writes = await Promise.all(Array.from({ length: 10 }, (_, i) => store.putReplicaEntries(rec, [e(10 + i)], true)));
      const seqs = writes.flatMap((w) => (w.ok ? w.fresh.map((f) => f.seq) : []));
      expect(seqs.sort((x, y) => x - y)).toEqual(Array.from({ length: 10 }, (_, i) => 3 + i));
      const log = await store.readLog(rec.groupId, 0, 100);
      expect(log.map((l) => l.seq)).toEqual(Array.from({ length: 12 }, (_, i) => 1 + i));
      expect(log.slice(0, 2).map((l) => l.message)).toEqual(["m0", "m1"]);
      expect(new Set(log.map((l) => l.message)).size).toBe(12);
      expect(await store.contiguousSeq(rec.groupId)).toBe(12);
      expect(await store.commitLog(rec.groupId, -1)).toMatchObject([{ epoch: 0, seq: 2, sha256: "h1" }]);
    });

    it("keeps a follower replica idempotent by seq and reports gaps", async () => {
      const { nextSeq: _n, ...rec } = group({ hub: "b.example" });
      const e = (seq: number) => ({
        seq,
        kind: "application" as const,
        epoch: 0,
        sender: "x/1",
        message: `m${seq}`,
        sha256: `h${seq}`,
        recipients: ["a/1"],
      });
      const fresh = async (entries: ReturnType<typeof e>[]) => {
        const w = await store.putReplicaEntries(rec, entries);
        return w.ok ? w.fresh.map((x) => x.seq) : w;
      };
      expect(await fresh([e(1), e(2)])).toEqual([1, 2]);
      expect(await fresh([e(2), e(4)])).toEqual([4]);
      expect(await store.contiguousSeq(rec.groupId)).toBe(2);
      expect((await store.getGroup(rec.groupId))?.hub).toBe("b.example");
      expect(await store.submit(rec.groupId, commit("a/1", 0), 1)).toEqual({ ok: false, code: "unknown_group" });
    });

    it("fixes a replica's hub at first sight: a record naming another hub writes nothing", async () => {
      const { nextSeq: _n, ...rec } = group({ hub: "b.example", members: ["a/1"] });
      const entry = (seq: number, sender = "b/1") => ({
        seq,
        kind: "application" as const,
        epoch: 0,
        sender,
        message: `m${seq}`,
        sha256: `h${seq}`,
        recipients: ["a/1"],
      });
      expect(await store.putReplicaEntries(rec, [entry(1)])).toMatchObject({ ok: true });
      const hijack = { ...rec, hub: "c.example", epoch: 9, members: ["c/1"], owner: "c/1" };
      expect(await store.putReplicaEntries(hijack, [entry(2, "c/1")])).toEqual({
        ok: false,
        code: "hub_mismatch",
        hub: "b.example",
      });
      expect(await store.getGroup(rec.groupId)).toMatchObject({ hub: "b.example", epoch: 0, members: ["a/1"], nextSeq: 2 });
      expect((await store.readLog(rec.groupId, 0, 10)).map((x) => x.seq)).toEqual([1]);
      // A group ordered here is never a replica.
      const own = group();
      await store.createGroup(own);
      const { nextSeq: _m, ...ownRec } = own;
      expect(await store.putReplicaEntries({ ...ownRec, hub: "c.example" }, [entry(1)])).toEqual({
        ok: false,
        code: "ordered_here",
      });
      expect(await store.readLog(own.groupId, 0, 10)).toEqual([]);
    });

    it("holds a replica entry at a far-off seq without walking every seq in between", async () => {
      const { nextSeq: _n, ...rec } = group({ hub: "b.example" });
      const far = 2 ** 40;
      const w = await store.putReplicaEntries(rec, [
        { seq: far, kind: "application", epoch: 0, sender: "b/1", message: "m", sha256: "h", recipients: [] },
      ]);
      expect(w).toMatchObject({ ok: true });
      expect(await store.contiguousSeq(rec.groupId)).toBe(0);
      expect((await store.getGroup(rec.groupId))?.nextSeq).toBe(far + 1);
    });

    it("refuses a non-member re-posting a member's exact bytes instead of answering from the dedupe record", async () => {
      const g = group({ members: ["a/1", "b/1"] });
      await store.createGroup(g);
      const sub: Submission = { kind: "application", sender: "a/1", epoch: 0, sha256: "same", message: "m" };
      expect(await store.submit(g.groupId, sub, 1)).toMatchObject({ ok: true, seq: 1, duplicate: false });
      expect(await store.submit(g.groupId, { ...sub, sender: "eve/1" }, 1)).toEqual({ ok: false, code: "not_a_member" });
      expect(await store.submit(g.groupId, sub, 1)).toMatchObject({ ok: true, seq: 1, duplicate: true });
      expect(await store.readLog(g.groupId, 0, 10)).toHaveLength(1);
    });
  });

  describe("inboxes, outboxes and replay cache", () => {
    it("appends idempotently, reads after a cursor and deletes on ack", async () => {
      await store.appendInbox("a/1", [
        { kind: "ref", groupId: "g", seq: 1 },
        { kind: "ref", groupId: "g", seq: 2 },
      ]);
      await store.appendInbox("a/1", [{ kind: "ref", groupId: "g", seq: 2 }]);
      const page = await store.readInbox("a/1", 0, 10);
      expect(page.map((p) => p.item)).toEqual([
        { kind: "ref", groupId: "g", seq: 1 },
        { kind: "ref", groupId: "g", seq: 2 },
      ]);
      expect(await store.ackInbox("a/1", page[0]!.cursor)).toBe(1);
      expect(await store.inboxDepth("a/1")).toBe(1);
      await store.appendInbox("a/1", [{ kind: "ref", groupId: "g", seq: 1 }]);
      expect(await store.inboxDepth("a/1")).toBe(1);
    });

    it("wakes a waiting reader when an entry arrives", async () => {
      const started = Date.now();
      const waiting = store.waitInbox("w/1", 0, 5000);
      setTimeout(
        () => void store.appendInbox("w/1", [{ kind: "notice", id: "n1", type: "device_update", body: { user: "x" } }]),
        50,
      );
      await waiting;
      expect(Date.now() - started).toBeLessThan(4000);
      expect((await store.readInbox("w/1", 0, 10))[0]?.item).toEqual({
        kind: "notice",
        id: "n1",
        type: "device_update",
        body: { user: "x" },
      });
    });

    it("appends to many inboxes at once, in order, idempotently, and wakes their readers", async () => {
      const item = (seq: number) => ({ kind: "ref" as const, groupId: "g", seq });
      const started = Date.now();
      const waiting = store.waitInbox("m/2", 0, 5000);
      await new Promise((r) => setTimeout(r, 50));
      await store.appendInboxMany([
        { client: "m/1", items: [item(1), item(2)] },
        { client: "m/2", items: [item(2)] },
        { client: "m/3", items: [] },
      ]);
      await waiting;
      expect(Date.now() - started).toBeLessThan(4000);
      // A retried fan-out adds nothing twice; new items follow in order.
      await store.appendInboxMany([
        { client: "m/1", items: [item(2), item(3)] },
        { client: "m/2", items: [item(2)] },
      ]);
      expect((await store.readInbox("m/1", 0, 10)).map((p) => p.item)).toEqual([item(1), item(2), item(3)]);
      expect((await store.readInbox("m/2", 0, 10)).map((p) => p.item)).toEqual([item(2)]);
      expect(await store.inboxDepth("m/3")).toBe(0);
      const [first] = await store.readInbox("m/1", 0, 1);
      expect(await store.ackInbox("m/1", first!.cursor)).toBe(1);
      await store.appendInboxMany([{ client: "m/1", items: [item(1)] }]);
      expect(await store.inboxDepth("m/1")).toBe(2);
      await store.appendInboxMany([]);
    });

    it("queues outbox items per peer in order, once", async () => {
      await store.enqueueOutbox("b.example", [
        { id: "g:1", groupId: "g", seq: 1 },
        { id: "g:2", groupId: "g", seq: 2 },
        { id: "g:1", groupId: "g", seq: 1 },
      ]);
      const items = await store.peekOutbox("b.example", 10);
      expect(items.map((i) => i.item.seq)).toEqual([1, 2]);
      expect(await store.peersWithOutbox()).toContain("b.example");
      expect((await store.outboxStats("b.example")).depth).toBe(2);
      await store.ackOutbox("b.example", items[0]!.cursor);
      expect((await store.peekOutbox("b.example", 10)).map((i) => i.item.seq)).toEqual([2]);
    });

    it("remembers a token id once until it expires", async () => {
      const exp = Date.now() + 60_000;
      expect(await store.rememberOnce("b.example:jti1", exp)).toBe(true);
      expect(await store.rememberOnce("b.example:jti1", exp)).toBe(false);
      expect(await store.rememberOnce("b.example:jti2", exp)).toBe(true);
    });
  });

  describe("device revocations", () => {
    it("remembers when a device was deleted, per client, the last deletion winning", async () => {
      expect(await store.deviceRevokedAt("alice@a.example/phone")).toBeUndefined();
      await store.revokeDevice("alice@a.example/phone", 1_700_000_000_123, 60_000);
      await store.revokeDevice("alice@a.example/pc", 1_700_000_000_500, 60_000);
      expect(await store.deviceRevokedAt("alice@a.example/phone")).toBe(1_700_000_000_123);
      expect(await store.deviceRevokedAt("alice@a.example/tablet")).toBeUndefined();
      await store.revokeDevice("alice@a.example/phone", 1_700_000_009_000, 60_000);
      expect(await store.deviceRevokedAt("alice@a.example/phone")).toBe(1_700_000_009_000);
    });

    it("forgets a deletion after its ttl (every token issued before it has expired by then)", async () => {
      await store.revokeDevice("bob@a.example/old", 1_700_000_000_000, 30);
      expect(await store.deviceRevokedAt("bob@a.example/old")).toBe(1_700_000_000_000);
      const until = Date.now() + 2000;
      while ((await store.deviceRevokedAt("bob@a.example/old")) !== undefined && Date.now() < until)
        await new Promise((r) => setTimeout(r, 20));
      expect(await store.deviceRevokedAt("bob@a.example/old")).toBeUndefined();
    });
  });
});
