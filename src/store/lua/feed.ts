import type { FeedRead, SpanStep } from "../../domain/feeds.js";
import type { GroupKeys, QueueKeys } from "./keys.js";
import { LUA_HELPERS, typedScript } from "./script.js";

/**
 * Group feeds on Redis (domain/feeds.ts is the specification these follow; the memory store uses
 * it directly). The group side ({g:<groupId>}) keeps each member's spans and, beside each log entry,
 * a field m<seq> = "kind|acceptedAtMs|sender" (a feed read never decodes an entry's recipient list); the client side
 * ({c:<client>}) keeps the read marks and the inbox. Each script touches one slot.
 */

/** Lua twins of parseSpans / formatSpans / openSpan / closeSpan / inSpans / feedStart / feedEnded. */
export const SPAN_HELPERS = `
local function parseSpans(text)
  local out = {}
  if not text or text == '' then return out end
  for item in string.gmatch(text, '[^,]+') do
    local colon = string.find(item, ':', 1, true)
    local e = string.sub(item, colon + 1)
    out[#out + 1] = { start = tonumber(string.sub(item, 1, colon - 1)), finish = (e ~= '' and tonumber(e)) or nil }
  end
  return out
end
local function formatSpans(spans)
  local parts = {}
  for i = 1, #spans do
    parts[i] = istr(spans[i].start) .. ':' .. ((spans[i].finish and istr(spans[i].finish)) or '')
  end
  return table.concat(parts, ',')
end
local function openSpanIn(spansK, member, afterSeq)
  local spans = parseSpans(redis.call('HGET', spansK, member))
  local last = spans[#spans]
  if last and not last.finish then return end
  spans[#spans + 1] = { start = afterSeq }
  redis.call('HSET', spansK, member, formatSpans(spans))
end
local function closeSpanIn(spansK, member, lastSeq)
  local spans = parseSpans(redis.call('HGET', spansK, member))
  local last = spans[#spans]
  if not last or last.finish then return end
  last.finish = lastSeq
  redis.call('HSET', spansK, member, formatSpans(spans))
end
`;

/**
 * KEYS: record, log (whose 'm<seq>' fields hold "kind|acceptedAtMs|sender"), spans. ARGV: member, afterSeq, limit.
 * A hub's log is read up to nextSeq - 1, a replica's up to its 'feedThrough' (ADVANCE_REPLICA_FEED).
 * Returns the FeedRead as JSON.
 */
export const READ_FEED = typedScript<{ keys: GroupKeys; member: string; afterSeq: number; limit: number }, FeedRead>(
  "readFeed",
  `${LUA_HELPERS}${SPAN_HELPERS}
local f = redis.call('HMGET', KEYS[1], 'replica', 'mode', 'nextSeq', 'feedThrough')
-- A hub log is dense up to nextSeq - 1; a replica's feed is read up to where its spans are derived.
local last
if f[1] == '0' then last = tonumber(f[3]) - 1
elseif f[1] == '1' and f[4] then last = tonumber(f[4])
else return '{"kind":"none"}' end
local member, read, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local spans = parseSpans(redis.call('HGET', KEYS[3], member))
if #spans == 0 then return '{"kind":"none"}' end
local from = nil
for i = 1, #spans do
  if not (spans[i].finish and spans[i].finish <= read) then
    from = math.max(read, spans[i].start)
    break
  end
end
if not from then return '{"kind":"page","seqs":[],"through":' .. istr(read) .. ',"ended":true}' end
local seqs = {}
for seq = from + 1, math.min(from + limit, last) do seqs[#seqs + 1] = istr(seq) end
local out, through = {}, from
if #seqs > 0 then
  local fields = {}
  for i = 1, #seqs do fields[i] = 'm' .. seqs[i] end
  -- HMGET in chunks: unpack() of a long list would overflow the Lua stack.
  local metas = {}
  for i = 1, #fields, 500 do
    local part = redis.call('HMGET', KEYS[2], unpack(fields, i, math.min(i + 499, #fields)))
    for j = 1, #part do metas[i + j - 1] = part[j] end
  end
  for i = 1, #seqs do
    local seq = tonumber(seqs[i])
    through = seq
    local meta = metas[i]
    if not meta and f[1] == '1' then
      -- A replica entry stored before feeds (no m<seq>): its JSON says the same.
      local raw = redis.call('HGET', KEYS[2], seqs[i])
      if raw then
        local e = cjson.decode(raw)
        meta = e.kind .. '||' .. e.sender
      end
    end
    if meta then
      local kind, sender = string.match(meta, '^([^|]*)|[^|]*|(.*)$')
      -- reaches() of domain/feeds.ts
      local hit = false
      if sender ~= member then
        if kind == 'welcome' then
          for j = 1, #spans do if seq == spans[j].start + 1 then hit = true end end
        elseif not (f[2] == 'send-group' and kind == 'proposal') then
          for j = 1, #spans do
            if seq > spans[j].start and (not spans[j].finish or seq <= spans[j].finish) then hit = true end
          end
        end
      end
      if hit then out[#out + 1] = istr(seq) end
    end
  end
end
local ended = true
for i = 1, #spans do if not spans[i].finish or spans[i].finish > through then ended = false end end
return '{"kind":"page","seqs":[' .. table.concat(out, ',') .. '],"through":' .. istr(through) .. ',"ended":' .. tostring(ended) .. '}'
`,
  ({ keys, member, afterSeq, limit }) => ({
    keys: [keys.record, keys.log, keys.spans],
    args: [member, String(afterSeq), String(limit)],
  }),
  (raw) => JSON.parse(String(raw)) as FeedRead,
);

export interface AdvanceFeedInput {
  inbox: QueueKeys;
  marks: string;
  memberships: string;
  nowMs: number;
  dedupeTtlMs: number;
  channel: string;
  publish: "PUBLISH" | "SPUBLISH";
  key: string;
  groupId: string;
  through: number;
  seqs: number[];
  ended: boolean;
  dropIndex: boolean;
}

/**
 * KEYS: inbox counter, queue, items, seen, marks, memberships. ARGV: nowMs, dedupeTtlMs, channel,
 * publish command, feed key, groupId, through, ended ("1"/"0"), dropIndex ("1"/"0"), then seqs.
 * The seqs after the mark go into the inbox as ONE item (`kind: "refs"`) holding them and the
 * first of the consecutive cursors they take (INCRBY): a member's read costs a few commands
 * however many entries it picks up. The item's score is its last cursor, so reads after a cursor
 * and acks up to one work as for single items (RedisStore.readInbox expands it; an item partly
 * acknowledged stays until its last cursor is). The mark makes it idempotent (no `seen` entry).
 * Returns how many references were added.
 */
export const ADVANCE_FEED = typedScript<AdvanceFeedInput, number>(
  "advanceFeed",
  `${LUA_HELPERS}
local ctrK, qK, itemsK, marksK, groupsK = KEYS[1], KEYS[2], KEYS[3], KEYS[5], KEYS[6]
local key, groupId, through = ARGV[5], ARGV[6], tonumber(ARGV[7])
local previous = tonumber(redis.call('HGET', marksK, key) or '0')
if through > previous then redis.call('HSET', marksK, key, istr(through)) end
local fresh = {}
for i = 10, #ARGV do
  local seq = tonumber(ARGV[i])
  if seq > previous then fresh[#fresh + 1] = istr(seq) end
end
if #fresh > 0 then
  local last = redis.call('INCRBY', ctrK, #fresh)
  local first = last - #fresh + 1
  local id = 'f:' .. groupId .. ':' .. fresh[1] .. ':' .. istr(first)
  redis.call('ZADD', qK, istr(last), id)
  redis.call('HSET', itemsK, id, '{"kind":"refs","groupId":' .. jstr(groupId) .. ',"first":' .. istr(first) ..
    ',"seqs":[' .. table.concat(fresh, ',') .. ']}')
  redis.call(ARGV[4], ARGV[3], '1')
end
if ARGV[8] == '1' and ARGV[9] == '1' then redis.call('SREM', groupsK, groupId) end
return #fresh
`,
  (i) => ({
    keys: [i.inbox.counter, i.inbox.queue, i.inbox.items, i.inbox.seen, i.marks, i.memberships],
    args: [
      String(i.nowMs),
      String(i.dedupeTtlMs),
      i.channel,
      i.publish,
      i.key,
      i.groupId,
      String(i.through),
      i.ended ? "1" : "0",
      i.dropIndex ? "1" : "0",
      ...i.seqs.map(String),
    ],
  }),
  (added) => Number(added),
);

/**
 * A follower's replica feed (domain/feeds.ts, replicaSpanSteps). KEYS: record, spans. ARGV: from,
 * through, channel, publish command, then (client, "open"|"close", seq) per step. Applies the steps
 * if the feed is derived through `from` (or never was) and moves 'feedThrough' to
 * min(through, contig); publishes the group's wake-up. Returns 1, or 0 with nothing written.
 */
export const ADVANCE_REPLICA_FEED = typedScript<
  { keys: GroupKeys; from: number; through: number; steps: SpanStep[]; channel: string; publish: "PUBLISH" | "SPUBLISH" },
  boolean
>(
  "advanceReplicaFeed",
  `${LUA_HELPERS}${SPAN_HELPERS}
local f = redis.call('HMGET', KEYS[1], 'replica', 'feedThrough', 'contig')
if f[1] ~= '1' then return 0 end
local from = tonumber(ARGV[1])
if f[2] and tonumber(f[2]) ~= from then return 0 end
local upTo = math.min(tonumber(ARGV[2]), tonumber(f[3]) or 0)
if upTo <= from then return 0 end
for i = 5, #ARGV, 3 do
  if ARGV[i + 1] == 'open' then openSpanIn(KEYS[2], ARGV[i], tonumber(ARGV[i + 2]))
  else closeSpanIn(KEYS[2], ARGV[i], tonumber(ARGV[i + 2])) end
end
redis.call('HSET', KEYS[1], 'feedThrough', istr(upTo))
redis.call(ARGV[4], ARGV[3], '1')
return 1
`,
  ({ keys, from, through, steps, channel, publish }) => ({
    keys: [keys.record, keys.spans],
    args: [String(from), String(through), channel, publish, ...steps.flatMap((s) => [s.client, s.op, String(s.seq)])],
  }),
  (ok) => Number(ok) === 1,
);
