import { createHash, randomBytes } from "node:crypto";
import { createRedisStore } from "../../src/store/redis.js";
import { fmt, type Bench } from "../lib/context.js";
import { redisClient, usedMemory } from "../lib/observe.js";
import { localPair, messagePool } from "../lib/mls.js";
import { startRedis, stopRedis } from "../lib/proc.js";

export interface MemoryResult {
  inbox: { entries: number; clients: number; bytes: number; seconds: number; itemJsonBytes: number };
  log: { entries: number; groups: number; members: number; messageBytes: number; bytes: number; seconds: number };
}

/** Runs `n` tasks with at most `concurrency` in flight (node-redis pipelines what is in flight). */
async function pool(n: number, concurrency: number, task: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) await task(next++);
    }),
  );
}

/**
 * Scenario 5: Redis memory per queued inbox entry and per stored group message, each measured on
 * a fresh redis-server (INFO memory used_memory before/after) filled through the store itself
 * (RedisStore.appendInboxMany and RedisStore.submit, many calls in flight so node-redis pipelines them).
 */
export async function memory(b: Bench): Promise<MemoryResult> {
  // The size of a real application message in a group of 10 (what scenario 1 sends).
  const pair = await localPair("alice@a.example/phone", "bob@a.example/phone");
  const sample = (await messagePool(pair.state, 1, "benchmark message 12345")).messages[0]!;
  const messageBytes = Buffer.from(sample, "base64url").byteLength;
  const redis = await startRedis();
  try {
    const store = await createRedisStore({ url: redis.url, prefix: "mlsfg" });
    const info = await redisClient(redis.url);
    // Inboxes: entries referencing (group, seq), as fan-out writes them; 100 per client.
    const inboxEntries = b.n(1_000_000, 100_000);
    const perClient = 100;
    const clients = inboxEntries / perClient;
    const groupIds = Array.from({ length: 50 }, () => randomBytes(16).toString("base64url"));
    b.log(`s5: ${fmt(inboxEntries)} inbox entries (${fmt(clients)} clients × ${perClient})`);
    const m0 = await usedMemory(info);
    let t = performance.now();
    const batch = 20;
    await pool(clients / batch, 16, (i) =>
      store.appendInboxMany(
        Array.from({ length: batch }, (_, j) => ({
          client: `user${i * batch + j}@a.example/phone`,
          items: Array.from({ length: perClient }, (_, k) => ({
            kind: "ref" as const,
            groupId: groupIds[(i + k) % groupIds.length]!,
            seq: 1000 + k,
          })),
        })),
      ),
    );
    const inboxSeconds = (performance.now() - t) / 1000;
    const m1 = await usedMemory(info);
    const depth = await store.inboxDepth("user0@a.example/phone");
    if (depth !== perClient) throw new Error(`inbox depth ${depth}, expected ${perClient}`);

    // Group logs: application messages of realistic size in groups of 10, 1000 per group.
    const logEntries = b.n(1_000_000, 100_000);
    const perGroup = 1000;
    const groups = logEntries / perGroup;
    const members = Array.from({ length: 10 }, (_, i) => `member${i}@a.example/phone`);
    const gids = Array.from({ length: groups }, () => randomBytes(16).toString("base64url"));
    for (const groupId of gids) {
      await store.createGroup({
        groupId,
        hub: "a.example",
        mode: "ordered",
        cipherSuite: 1,
        epoch: 3,
        nextSeq: 1,
        members,
        owner: members[0]!,
        createdAt: Date.now(),
      });
    }
    b.log(`s5: ${fmt(logEntries)} group messages (${fmt(groups)} groups of ${members.length}, ${messageBytes}-byte messages)`);
    const m2 = await usedMemory(info);
    t = performance.now();
    const payload = Math.ceil((messageBytes * 4) / 3);
    await pool(logEntries, 256, async (i) => {
      const bytes = randomBytes(messageBytes);
      const r = await store.submit(
        gids[i % groups]!,
        {
          kind: "application",
          sender: members[i % members.length]!,
          epoch: 3,
          sha256: createHash("sha256").update(bytes).digest("hex"),
          message: bytes.toString("base64url").slice(0, payload),
        },
        Date.now(),
      );
      if (!r.ok) throw new Error(`submit refused: ${r.code}`);
    });
    const logSeconds = (performance.now() - t) / 1000;
    const m3 = await usedMemory(info);
    await info.close();
    await store.close();
    return {
      inbox: {
        entries: inboxEntries,
        clients,
        bytes: (m1 - m0) / inboxEntries,
        seconds: inboxSeconds,
        itemJsonBytes: JSON.stringify({ kind: "ref", groupId: groupIds[0], seq: 1000 }).length,
      },
      log: {
        entries: logEntries,
        groups,
        members: members.length,
        messageBytes,
        bytes: (m3 - m2) / logEntries,
        seconds: logSeconds,
      },
    };
  } finally {
    await stopRedis(redis);
  }
}

export function memoryReport(r: MemoryResult): { md: string } {
  const md = `
Each measured on a fresh \`redis-server\` (same version and settings) as the difference of INFO \`used_memory\` before and
after filling it through the store's own methods (node-redis pipelining many calls in flight):

| | entries | bytes per entry | fill time |
| --- | ---: | ---: | ---: |
| queued inbox entry (${fmt(r.inbox.clients)} clients × ${fmt(r.inbox.entries / r.inbox.clients)}; item JSON ${r.inbox.itemJsonBytes} bytes) | ${fmt(r.inbox.entries)} | **${fmt(r.inbox.bytes)}** | ${r.inbox.seconds.toFixed(1)} s |
| stored group message (${fmt(r.log.groups)} groups of ${r.log.members}; ${r.log.messageBytes}-byte PrivateMessage, as in scenario 1) | ${fmt(r.log.entries)} | **${fmt(r.log.bytes)}** | ${r.log.seconds.toFixed(1)} s |

An inbox entry is a cursor in a ZSET, the item JSON in a HASH and a dedupe id in a \`seen\` ZSET (kept 7 days after the
ack, so a retried fan-out never redelivers); it never holds the payload. A group message is its log entry (payload as
base64url text, SHA-256, sender and recipient list) in a HASH, its seq in a ZSET and its idempotency answer in a HASH; it is
stored once however many members receive it. So 1M queued references to 10-member-group messages cost about
${fmt((r.inbox.bytes * 1e6) / 2 ** 20)} MiB of inboxes plus ${fmt((r.log.bytes * 1e6) / 9 / 2 ** 20)} MiB of logs (each message referenced 9 times).
`;
  return { md };
}
