import type { QueueKeys } from "./keys.js";
import { LUA_HELPERS, typedScript } from "./script.js";

/**
 * Inboxes ({c:<client>}) and outboxes ({p:<peer>}) share one shape: a cursor counter, a ZSET
 * id → cursor, a HASH id → item JSON and a `seen` ZSET id → appended-at for dedupe that survives
 * the ack (pruned by age, with the time passed in).
 */

/**
 * The append body shared by both scripts: items are id, JSON pairs from ARGV[first]; with
 * `channel`, publishes "1" on ARGV[channel] with the command ARGV[channel + 1] (PUBLISH, or
 * SPUBLISH in a cluster) when something was added.
 */
function appendScript(first: number, channel?: number): string {
  return `${LUA_HELPERS}
local ctrK, qK, itemsK, seenK = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local added = 0
for i = ${first}, #ARGV, 2 do
  local id = ARGV[i]
  if not redis.call('ZSCORE', qK, id) and not redis.call('ZSCORE', seenK, id) then
    local cursor = redis.call('INCR', ctrK)
    redis.call('ZADD', qK, istr(cursor), id)
    redis.call('HSET', itemsK, id, ARGV[i + 1])
    redis.call('ZADD', seenK, ARGV[1], id)
    added = added + 1
  end
end
redis.call('ZREMRANGEBYSCORE', seenK, '-inf', '(' .. istr(now - ttl))
if added > 0 then
  redis.call('PEXPIRE', seenK, ARGV[2])
  ${channel === undefined ? "" : `redis.call(ARGV[${channel + 1}], ARGV[${channel}], '1')`}
end
return added
`;
}

/** One item: its dedupe id and its JSON. */
export interface QueueItem {
  id: string;
  json: string;
}

const appendKeys = (q: QueueKeys) => [q.counter, q.queue, q.items, q.seen];
const flatItems = (items: QueueItem[]) => items.flatMap((i) => [i.id, i.json]);

/**
 * KEYS: counter, queue, items, seen. ARGV: nowMs, dedupeTtlMs, then id, JSON pairs.
 * Returns how many items were added.
 */
export const QUEUE_APPEND = typedScript<{ keys: QueueKeys; nowMs: number; dedupeTtlMs: number; items: QueueItem[] }, number>(
  "queueAppend",
  appendScript(3),
  ({ keys, nowMs, dedupeTtlMs, items }) => ({
    keys: appendKeys(keys),
    args: [String(nowMs), String(dedupeTtlMs), ...flatItems(items)],
  }),
  (added) => Number(added),
);

/**
 * QUEUE_APPEND for inboxes, plus the wake-up: KEYS as QUEUE_APPEND; ARGV: nowMs, dedupeTtlMs,
 * pub/sub channel, "PUBLISH" | "SPUBLISH", then id, JSON pairs (one command per recipient instead
 * of an append and a separate publish).
 */
export const INBOX_APPEND = typedScript<
  {
    keys: QueueKeys;
    nowMs: number;
    dedupeTtlMs: number;
    channel: string;
    publish: "PUBLISH" | "SPUBLISH";
    items: QueueItem[];
  },
  number
>(
  "inboxAppend",
  appendScript(5, 3),
  ({ keys, nowMs, dedupeTtlMs, channel, publish, items }) => ({
    keys: appendKeys(keys),
    args: [String(nowMs), String(dedupeTtlMs), channel, publish, ...flatItems(items)],
  }),
  (added) => Number(added),
);

/**
 * KEYS: queue, items. ARGV: min score (e.g. "(12" or "-inf"), limit.
 * Returns flat {cursor, JSON, …} in cursor order.
 */
export const QUEUE_READ = typedScript<{ keys: QueueKeys; min: string; limit: number }, { cursor: number; json: string }[]>(
  "queueRead",
  `
local r = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, ARGV[2])
local out = {}
for i = 1, #r, 2 do
  local json = redis.call('HGET', KEYS[2], r[i])
  if json then
    out[#out + 1] = r[i + 1]
    out[#out + 1] = json
  end
end
return out
`,
  ({ keys, min, limit }) => ({ keys: [keys.queue, keys.items], args: [min, String(limit)] }),
  (reply) => {
    const flat = reply as string[];
    const out: { cursor: number; json: string }[] = [];
    for (let i = 0; i < flat.length; i += 2) out.push({ cursor: Number(flat[i]), json: flat[i + 1]! });
    return out;
  },
);

/**
 * KEYS: queue, items. ARGV: upToCursor. Deletes entries with cursor <= upToCursor; returns how many.
 * A feed page (an inbox item "f:…" holding references on consecutive cursors, lua/feed.ts) that
 * the cursor falls inside loses the references up to it: an acknowledged entry never reappears.
 */
export const QUEUE_ACK = typedScript<{ keys: QueueKeys; upToCursor: number }, number>(
  "queueAck",
  `${LUA_HELPERS}
local upTo = tonumber(ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
-- HDEL in chunks: unpack() of a huge list would overflow the Lua stack.
for i = 1, #ids, 500 do
  redis.call('HDEL', KEYS[2], unpack(ids, i, math.min(i + 499, #ids)))
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local removed = #ids
-- Cursors are unique and a page's are consecutive: only the next item can straddle upTo.
local nxt = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'LIMIT', 0, 1)
if nxt[1] and string.sub(nxt[1], 1, 2) == 'f:' then
  local item = cjson.decode(redis.call('HGET', KEYS[2], nxt[1]))
  if item.first <= upTo then
    local keep = {}
    for i = 1, #item.seqs do
      if item.first + i - 1 > upTo then keep[#keep + 1] = istr(item.seqs[i]) else removed = removed + 1 end
    end
    redis.call('HSET', KEYS[2], nxt[1], '{"kind":"refs","groupId":' .. jstr(item.groupId) .. ',"first":' ..
      istr(upTo + 1) .. ',"seqs":[' .. table.concat(keep, ',') .. ']}')
  end
end
return removed
`,
  ({ keys, upToCursor }) => ({ keys: [keys.queue, keys.items], args: [String(upToCursor)] }),
  (removed) => Number(removed),
);

/** KEYS: queue, items. Returns {depth, JSON of the oldest entry or false}. */
export const QUEUE_STATS = typedScript<{ keys: QueueKeys }, { depth: number; oldest?: string }>(
  "queueStats",
  `
local first = redis.call('ZRANGE', KEYS[1], 0, 0)
local json = false
if first[1] then json = redis.call('HGET', KEYS[2], first[1]) end
return { redis.call('ZCARD', KEYS[1]), json }
`,
  ({ keys }) => ({ keys: [keys.queue, keys.items], args: [] }),
  (reply) => {
    const [depth, oldest] = reply as [number, string | null];
    return { depth: Number(depth), ...(oldest ? { oldest } : {}) };
  },
);
