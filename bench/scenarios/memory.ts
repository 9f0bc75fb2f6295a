import { createHash, randomBytes } from "node:crypto";
import { createRedisStore } from "../../src/store/redis.js";
import { fmt, type Bench } from "../lib/context.js";
import { redisClient, usedMemory } from "../lib/observe.js";
import { localPair, messagePool } from "../lib/mls.js";
import { startRedis, stopRedis } from "../lib/proc.js";

export interface MemoryResult {
  cursors: {
    entries: number;
    clients: number;
    groupsPerClient: number;
    bytes: number;
    seconds: number;
    encoding: string;
    valueBytes: number;
  };
  spans: { entries: number; groups: number; bytes: number; encoding: string };
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
 * Scenario 5: Redis memory per client-group feed cursor and per stored group message, each measured
 * on a fresh redis-server (INFO memory used_memory before/after). Feed cursors are written directly
 * with node-redis in the layout of lazily filled inboxes: one HASH per client,
 * \`<prefix>:{c:<client>}:feeds\`, field = groupId, value = "read:until:next" seqs, and the group side's
 * HASH of member → spans. Group messages go
 * through the store itself (RedisStore.submit, many calls in flight so node-redis pipelines them).
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
    const cursorEntries = b.n(1_000_000, 100_000);
    const groupsPerClient = 10;
    const clients = cursorEntries / groupsPerClient;
    const groupIds = Array.from({ length: 1000 }, () => randomBytes(16).toString("base64url"));
    b.log(`s5: ${fmt(cursorEntries)} feed cursors (${fmt(clients)} clients × ${groupsPerClient} groups)`);
    const m0 = await usedMemory(info);
    let t = performance.now();
    await pool(clients, 64, (i) => {
      const fields: Record<string, string> = {};
      for (let k = 0; k < groupsPerClient; k++) {
        // Seqs of a busy group: read ≤ until < next, in the tens of thousands.
        const read = 10_000 + ((i * 7919 + k * 104_729) % 90_000);
        fields[groupIds[(i + k * 97) % groupIds.length]!] = `${read}:${read + 3}:${read + 4}`;
      }
      return info.hSet(`mlsfg:{c:user${i}@a.example/phone}:feeds`, fields);
    });
    const cursorSeconds = (performance.now() - t) / 1000;
    const m1 = await usedMemory(info);
    const first = "mlsfg:{c:user0@a.example/phone}:feeds";
    if ((await info.hLen(first)) !== groupsPerClient) throw new Error(`${first} does not hold ${groupsPerClient} cursors`);
    const encoding = String(await info.sendCommand(["OBJECT", "ENCODING", first]));
    const valueBytes = Object.values(await info.hGetAll(first))[0]!.length;

    // The group side of the same memberships: each group's HASH of member → feed spans "start:end,…"
    // (\`<prefix>:{g:<groupId>}:spans\`), 1000 groups of cursorEntries / 1000 members, one open span each.
    const spanGroups = groupIds.length;
    const spanMembers = cursorEntries / spanGroups;
    t = performance.now();
    const s0 = await usedMemory(info);
    await pool(spanGroups * (spanMembers / 100), 64, (i) => {
      const g = Math.floor(i / (spanMembers / 100));
      const fields: Record<string, string> = {};
      for (let k = 0; k < 100; k++) fields[`user${(i % (spanMembers / 100)) * 100 + k}@a.example/phone`] = `${1000 + k}:`;
      return info.hSet(`mlsfg:{g:${groupIds[g]!}}:spans`, fields);
    });
    const s1 = await usedMemory(info);
    const spanKey = `mlsfg:{g:${groupIds[0]!}}:spans`;
    if ((await info.hLen(spanKey)) !== spanMembers) throw new Error(`${spanKey} does not hold ${spanMembers} spans`);
    const spanEncoding = String(await info.sendCommand(["OBJECT", "ENCODING", spanKey]));
    b.log(
      `s5: ${fmt(cursorEntries)} feed spans (${spanGroups} groups × ${fmt(spanMembers)}) in ${((performance.now() - t) / 1000).toFixed(1)} s`,
    );

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
      cursors: {
        entries: cursorEntries,
        clients,
        groupsPerClient,
        bytes: (m1 - m0) / cursorEntries,
        seconds: cursorSeconds,
        encoding,
        valueBytes,
      },
      spans: { entries: cursorEntries, groups: spanGroups, bytes: (s1 - s0) / cursorEntries, encoding: spanEncoding },
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
after filling it (node-redis pipelining many calls in flight):

| | entries | bytes per entry | fill time |
| --- | ---: | ---: | ---: |
| client-group feed cursor (${fmt(r.cursors.clients)} clients × ${r.cursors.groupsPerClient} groups; one HASH per client, field = 22-character group id, value ${r.cursors.valueBytes} bytes "read:until:next"; encoding ${r.cursors.encoding}) | ${fmt(r.cursors.entries)} | **${fmt(r.cursors.bytes)}** | ${r.cursors.seconds.toFixed(1)} s |
| group-side feed span (${fmt(r.spans.groups)} groups × ${fmt(r.spans.entries / r.spans.groups)} members; HASH per group, field = client id, value one open span "start:"; encoding ${r.spans.encoding}) | ${fmt(r.spans.entries)} | **${fmt(r.spans.bytes)}** | |
| stored group message (${fmt(r.log.groups)} groups of ${r.log.members}; ${r.log.messageBytes}-byte PrivateMessage, as in scenario 1; through RedisStore.submit) | ${fmt(r.log.entries)} | **${fmt(r.log.bytes)}** | ${r.log.seconds.toFixed(1)} s |

A feed cursor is what a member costs per group when inboxes are filled lazily from the group log: the cursor bytes include
each client's key and HASH overhead spread over its ${r.cursors.groupsPerClient} groups (a client in more groups pays less per cursor; a
client-group pair in a big group costs the same as in a small one). A group message is its log entry (payload as base64url
text, SHA-256, sender) with its seq index and idempotency answer; it is stored once however many members read it. So a
million client-group memberships cost about ${fmt((r.cursors.bytes * 1e6) / 2 ** 20)} MiB of client-side cursors plus
${fmt((r.spans.bytes * 1e6) / 2 ** 20)} MiB of group-side spans (where the design keeps both), and a million stored messages
${fmt((r.log.bytes * 1e6) / 2 ** 20)} MiB of logs until trimmed.
`;
  return { md };
}
