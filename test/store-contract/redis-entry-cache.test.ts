/**
 * The Redis store serves members' inbox reads of an entry from its process cache
 * (store/entry-cache.ts), and forgets that cache when its connection comes back: the Redis it
 * reconnects to may have lost writes, so a seq may name other bytes there.
 */
import { createClient } from "redis";
import { createRedisStore, type RedisStore } from "../../src/store/redis.js";
import { KeySchema } from "../../src/store/lua/keys.js";
import type { GroupRecord } from "../../src/store/port.js";
import { redisUrl, uniquePrefix } from "../helpers/providers.js";

const members = ["a@a.example/1", "b@a.example/1"];

function record(groupId: string): GroupRecord {
  return {
    groupId,
    hub: "a.example",
    mode: "ordered",
    cipherSuite: 1,
    epoch: 0,
    nextSeq: 1,
    members,
    owner: members[0]!,
    createdAt: 1,
  };
}

async function until(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("RedisStore entry cache", () => {
  let store: RedisStore;
  const admin = createClient({ url: redisUrl() });
  const prefix = uniquePrefix();
  const keys = new KeySchema(prefix);

  beforeAll(async () => {
    await admin.connect();
    store = await createRedisStore({ url: redisUrl(), prefix });
  });
  afterAll(async () => {
    await store.close();
    await admin.close();
  });

  it("reads an accepted entry without Redis, until a reconnect, then reads what Redis holds", async () => {
    const groupId = "cache-g1";
    expect(await store.createGroup(record(groupId))).toBe(true);
    const sub = { kind: "application" as const, sender: members[0]!, epoch: 0, sha256: "s1", message: "first" };
    const accepted = await store.submit(groupId, sub, 1000);
    if (!accepted.ok) throw new Error("not accepted");
    expect((await store.readEntryBodies(groupId, [accepted.seq]))[0]?.message).toBe("first");

    // Another writer changes the stored bytes (as a Redis that lost the write and numbered the seq
    // again would hold): the cache still answers — no Redis read was made.
    const log = keys.group(groupId).log;
    const stored = JSON.parse(String(await admin.hGet(log, String(accepted.seq))));
    await admin.hSet(log, String(accepted.seq), JSON.stringify({ ...stored, message: "other" }));
    expect((await store.readEntryBodies(groupId, [accepted.seq]))[0]?.message).toBe("first");

    // The store's connection is dropped; node-redis reconnects and the store forgets its cache.
    const raw = store.connection.commands as unknown as { sendCommand(args: string[]): Promise<unknown> };
    const id = Number(await raw.sendCommand(["CLIENT", "ID"]));
    await admin.sendCommand(["CLIENT", "KILL", "ID", String(id)]);
    await until(async () => {
      try {
        return (await store.readEntryBodies(groupId, [accepted.seq]))[0]?.message === "other";
      } catch {
        return false; // the read that met the closed connection
      }
    });
  });

  it("fills from one HMGET what it does not hold, and answers undefined for seqs the log lacks", async () => {
    const groupId = "cache-g2";
    expect(await store.createGroup(record(groupId))).toBe(true);
    for (const n of [1, 2]) {
      const r = await store.submit(
        groupId,
        { kind: "application", sender: members[0]!, epoch: 0, sha256: `s${n}`, message: `m${n}` },
        1000,
      );
      expect(r.ok).toBe(true);
    }
    // A second process (its own cache) reads both from Redis, then from its cache.
    const other = await createRedisStore({ url: redisUrl(), prefix });
    try {
      const read = await other.readEntryBodies(groupId, [2, 9, 1]);
      expect(read.map((e) => e?.message)).toEqual(["m2", undefined, "m1"]);
      await admin.hDel(keys.group(groupId).log, "1");
      expect((await other.readEntryBodies(groupId, [1]))[0]?.message).toBe("m1");
      expect(await other.readEntryBodies(groupId, [])).toEqual([]);
    } finally {
      await other.close();
    }
  });
});
