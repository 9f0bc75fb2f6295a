import { LUA_HELPERS, luaScript } from "./script.js";

/**
 * Inboxes ({c:<client>}) and outboxes ({p:<peer>}) share one shape: a cursor counter, a ZSET
 * id → cursor, a HASH id → item JSON and a `seen` ZSET id → appended-at for dedupe that survives
 * the ack (pruned by age, with the time passed in).
 */

/**
 * The append body shared by both scripts: items are id, JSON pairs from ARGV[first]; with
 * `channel`, PUBLISHes "1" on ARGV[channel] when something was added.
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
  ${channel === undefined ? "" : `redis.call('PUBLISH', ARGV[${channel}], '1')`}
end
return added
`;
}

/**
 * KEYS: counter, queue, items, seen. ARGV: nowMs, dedupeTtlMs, then id, JSON pairs.
 * Returns how many items were added.
 */
export const QUEUE_APPEND = luaScript("queueAppend", appendScript(3));

/**
 * QUEUE_APPEND for inboxes, plus the wake-up: KEYS as QUEUE_APPEND; ARGV: nowMs, dedupeTtlMs,
 * pub/sub channel, then id, JSON pairs (one command per recipient instead of an append and a
 * separate PUBLISH).
 */
export const INBOX_APPEND = luaScript("inboxAppend", appendScript(4, 3));

/**
 * KEYS: queue, items. ARGV: min score (e.g. "(12" or "-inf"), limit.
 * Returns flat {cursor, JSON, …} in cursor order.
 */
export const QUEUE_READ = luaScript(
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
);

/** KEYS: queue, items. ARGV: upToCursor. Deletes entries with cursor <= upToCursor; returns how many. */
export const QUEUE_ACK = luaScript(
  "queueAck",
  `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
-- HDEL in chunks: unpack() of a huge list would overflow the Lua stack.
for i = 1, #ids, 500 do
  redis.call('HDEL', KEYS[2], unpack(ids, i, math.min(i + 499, #ids)))
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return #ids
`,
);

/** KEYS: queue, items. Returns {depth, JSON of the oldest entry or false}. */
export const QUEUE_STATS = luaScript(
  "queueStats",
  `
local first = redis.call('ZRANGE', KEYS[1], 0, 0)
local json = false
if first[1] then json = redis.call('HGET', KEYS[2], first[1]) end
return { redis.call('ZCARD', KEYS[1]), json }
`,
);
