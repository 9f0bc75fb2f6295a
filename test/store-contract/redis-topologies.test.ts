/**
 * What the contract suite cannot show by passing: that the test cluster would catch a script
 * leaving its slot, and that store.waitReplicas really waits for replicas (refused where there are
 * none, acknowledged where each master has one).
 */
import { randomBytes } from "node:crypto";
import { createCluster } from "redis";
import { KeySchema } from "../../src/store/lua/keys.js";
import { callScript, type EvalCapable } from "../../src/store/lua/script.js";
import { SUBMIT } from "../../src/store/lua/submit.js";
import { connectRedis } from "../../src/store/redis-connection.js";
import { createRedisStore } from "../../src/store/redis.js";
import { StoreUnavailableError } from "../../src/store/errors.js";
import { acknowledgeStoreReset, StoreIntegrity } from "../../src/store/integrity.js";
import type { GroupRecord, Submission } from "../../src/store/port.js";
import { pino } from "pino";
import { systemClock } from "../../src/domain/types.js";
import { REDIS_KINDS, testTopology } from "../helpers/providers.js";

function group(): GroupRecord {
  return {
    groupId: `g${randomBytes(4).toString("hex")}`,
    hub: "a.example",
    mode: "ordered",
    cipherSuite: 1,
    epoch: 0,
    nextSeq: 1,
    members: ["a@a.example/1", "b@a.example/1"],
    owner: "a@a.example/1",
    createdAt: 1,
  };
}

const message = (n: number): Submission => ({
  kind: "application",
  sender: "a@a.example/1",
  epoch: 0,
  sha256: `h${n}-${randomBytes(4).toString("hex")}`,
  message: `m${n}`,
});

describe("the test Redis Cluster keeps every script in one slot", () => {
  it("refuses a script whose declared keys, or the keys it touches, span two slots", async () => {
    const topology = testTopology("cluster");
    if (topology.kind !== "cluster") throw new Error("expected a cluster");
    const cluster = createCluster({ rootNodes: topology.rootNodes.map((url) => ({ url })) });
    await cluster.connect();
    try {
      await expect(cluster.eval("return 1", { keys: ["{a}:x", "{b}:y"], arguments: [] })).rejects.toThrow(/CROSSSLOT/);
      await expect(cluster.eval("return redis.call('GET', ARGV[1])", { keys: ["{a}:x"], arguments: ["{b}:y"] })).rejects.toThrow(
        /slot|non local key/i,
      );
      // The same script inside its hash tag runs.
      expect(await cluster.eval("return redis.call('GET', ARGV[1])", { keys: ["{a}:x"], arguments: ["{a}:y"] })).toBeNull();
    } finally {
      await cluster.close();
    }
  });
});

describe.each(REDIS_KINDS)("store.waitReplicas on %s", (kind) => {
  const replicated = kind !== "single"; // the test cluster and sentinel set give every master one replica

  it(
    replicated
      ? "acknowledges an accepted message once one replica holds it"
      : "refuses to acknowledge without replicas, keeps the write, and answers the retry with the original seq",
    async () => {
      const prefix = `t${randomBytes(6).toString("hex")}`;
      const durable = await createRedisStore({ topology: testTopology(kind), prefix, waitReplicas: 1, waitTimeoutMs: 200 });
      const plain = await createRedisStore({ topology: testTopology(kind), prefix });
      try {
        const g = group();
        expect(await plain.createGroup(g)).toBe(true);
        const sub = message(1);
        if (replicated) {
          expect(await durable.submit(g.groupId, sub, 1)).toMatchObject({ ok: true, seq: 1, duplicate: false });
        } else {
          await expect(durable.submit(g.groupId, sub, 1)).rejects.toBeInstanceOf(StoreUnavailableError);
          // The write itself happened: a retry gets the original answer, exactly once in the log.
          expect(await plain.submit(g.groupId, sub, 1)).toMatchObject({ ok: true, seq: 1, duplicate: true });
          await expect(durable.submit(g.groupId, sub, 1)).rejects.toBeInstanceOf(StoreUnavailableError);
        }
        expect((await plain.readLog(g.groupId, 0, 10)).map((e) => e.sha256)).toEqual([sub.sha256]);
      } finally {
        await Promise.all([durable.close(), plain.close()]);
      }
    },
  );

  it("WAITs on the master that made the write (the replica count it reports)", async () => {
    const conn = await connectRedis(testTopology(kind));
    try {
      await conn.commands.set(`t${randomBytes(6).toString("hex")}:{w}:k`, "1");
      expect(await conn.wait([`t:{w}:k`], 1, 200)).toBe(replicated ? 1 : 0);
    } finally {
      await conn.close();
    }
  });
});

describe.each(REDIS_KINDS)("store integrity on %s", (kind) => {
  it("reports every master's persistence (the test servers persist nothing)", async () => {
    const store = await createRedisStore({ topology: testTopology(kind), prefix: `t${randomBytes(6).toString("hex")}` });
    try {
      const report = await store.persistence();
      expect(report).toMatchObject({ persistent: false, aof: false, rdb: false });
      const masters = kind === "cluster" ? 3 : 1;
      expect(report.detail.split("appendonly no")).toHaveLength(masters + 1);
      if (kind === "cluster") expect(report.detail).toMatch(/^master 1\/3: .*; master 2\/3: .*; master 3\/3: /);
    } finally {
      await store.close();
    }
  });

  it("flags a vanished marker as a reset, and the acknowledgement clears it in one step", async () => {
    const prefix = `t${randomBytes(6).toString("hex")}`;
    const store = await createRedisStore({ topology: testTopology(kind), prefix });
    const integrity = new StoreIntegrity(store, systemClock, pino({ level: "silent" }));
    try {
      const first = await integrity.check();
      expect(first.kind).toBe("ok");
      // The data set lost: the marker key is gone.
      await store.connection.commands.del(new KeySchema(prefix).storeMarker());
      expect((await integrity.check()).kind).toBe("reset");
      expect((await store.readIntegrity()).reset?.reason).toMatch(/is gone/);
      const { marker } = await acknowledgeStoreReset(store, systemClock);
      expect(await store.readIntegrity()).toEqual({ marker });
      expect(await integrity.check()).toEqual({ kind: "ok", marker });
    } finally {
      integrity.stop();
      await store.close();
    }
  });
});

describe("the membership index on the Redis store", () => {
  it("is owed atomically with the accept: an update the process never wrote is finished by crash recovery", async () => {
    const prefix = `t${randomBytes(6).toString("hex")}`;
    const store = await createRedisStore({ topology: testTopology("cluster"), prefix });
    try {
      const g = group();
      expect(await store.createGroup(g)).toBe(true);
      const adds: Submission = {
        kind: "commit",
        sender: "a@a.example/1",
        epoch: 0,
        sha256: "c1",
        message: "m1",
        added: ["c@a.example/1"],
        removed: ["b@a.example/1"],
      };
      // The accept alone, as if the process died right after the script (before writing the index).
      const keys = new KeySchema(prefix).group(g.groupId);
      const client = store.connection.commands as unknown as EvalCapable;
      const wake = { channel: new KeySchema(prefix).groupChannel(g.groupId), publish: "SPUBLISH" as const };
      const accepted = await callScript(client, SUBMIT, { keys, submission: adds, nowMs: 1, wake });
      expect(accepted).toMatchObject({
        ok: true,
        index: { members: ["a@a.example/1", "c@a.example/1"], removed: ["b@a.example/1"] },
      });
      expect(await store.groupsOf("c@a.example/1")).toEqual([]);
      expect(await store.groupsOf("b@a.example/1")).toEqual([g.groupId]);
      await store.undispatched(); // crash recovery's scan
      expect(await store.groupsOf("c@a.example/1")).toEqual([g.groupId]);
      // b left, but keeps the group in its index until it has read its feed to the end: the commit
      // that removed it (domain/feeds.ts); that read drops it.
      expect(await store.groupsOf("b@a.example/1")).toEqual([g.groupId]);
      const last = await store.readFeed(g.groupId, "b@a.example/1", 0, 10);
      expect(last).toEqual({ kind: "page", seqs: [1], through: 1, ended: true });
      if (last.kind !== "page") throw new Error("unreachable");
      await store.advanceFeed("b@a.example/1", { key: g.groupId, groupId: g.groupId, ...last, dropIndex: true });
      expect(await store.groupsOf("b@a.example/1")).toEqual([]);
      expect((await store.readInbox("b@a.example/1", 0, 10)).map((r) => r.item)).toEqual([
        { kind: "ref", groupId: g.groupId, seq: 1 },
      ]);
      // Written once, the debt is cleared: a commit without roster change owes nothing.
      const plain = await store.submit(g.groupId, { ...adds, sha256: "c2", epoch: 1, added: [], removed: [] }, 1);
      expect(plain).toMatchObject({ ok: true, epoch: 2 });
      expect(await store.connection.commands.hGetAll(keys.record)).not.toHaveProperty("pendingIndex");
    } finally {
      await store.close();
    }
  });
});
