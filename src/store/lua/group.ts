import type { GroupRecord, LeaseOutcome, LogEntry, ReplicaWrite } from "../port.js";
import type { GroupKeys } from "./keys.js";
import { formatSpans, openSpan } from "../../domain/feeds.js";
import { decodeRecipients, LUA_HELPERS, typedScript } from "./script.js";

/**
 * The other group scripts, each with its typed encoder and decoder; all over keys of one group
 * ({g:<groupId>}). See submit.ts for the ordering step.
 */

/** GroupRecord as HASH field/value pairs (numbers as decimal text; optional fields only when present). */
export function recordFields(r: Omit<GroupRecord, "nextSeq">): string[] {
  const f = ["groupId", r.groupId, "hub", r.hub, "mode", r.mode, "cipherSuite", String(r.cipherSuite), "epoch", String(r.epoch)];
  f.push("members", JSON.stringify(r.members), "owner", r.owner, "createdAt", String(r.createdAt));
  if (r.replyTo !== undefined) f.push("replyTo", r.replyTo);
  if (r.lease) f.push("leaseToken", r.lease.token, "leaseHolder", r.lease.holder, "leaseExpiresAt", String(r.lease.expiresAt));
  return f;
}

/**
 * KEYS: record, groupInfo, spans. ARGV: hasGroupInfo, giEpoch, giInfo, the number n of span
 * arguments, n member/spans pairs' items, then field/value pairs of the record.
 * Returns 1 if created, 0 if the id is taken (by a group or a replica).
 */
export const CREATE_GROUP = typedScript<
  { keys: GroupKeys; record: GroupRecord; groupInfo?: { epoch: number; groupInfo: string } },
  boolean
>(
  "createGroup",
  `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local spanArgs = tonumber(ARGV[4])
if spanArgs > 0 then redis.call('HSET', KEYS[3], unpack(ARGV, 5, 4 + spanArgs)) end
redis.call('HSET', KEYS[1], unpack(ARGV, 5 + spanArgs))
if ARGV[1] == '1' then redis.call('HSET', KEYS[2], 'epoch', ARGV[2], 'info', ARGV[3]) end
return 1
`,
  ({ keys, record, groupInfo }) => {
    const fields = [...recordFields(record), "nextSeq", String(record.nextSeq), "replica", "0", "feeds", "1"];
    fields.push("dispatched", String(record.nextSeq - 1), "contig", "0");
    const gi = groupInfo ? ["1", String(groupInfo.epoch), groupInfo.groupInfo] : ["0", "", ""];
    // The first members' feeds open after the last seq (domain/feeds.ts).
    const spans = record.members.flatMap((m) => [m, formatSpans(openSpan([], record.nextSeq - 1))]);
    return { keys: [keys.record, keys.groupInfo, keys.spans], args: [...gi, String(spans.length), ...spans, ...fields] };
  },
  (reply) => reply === 1,
);

/**
 * KEYS: record. ARGV: holder, token, expiresAt, nowMs.
 * Returns JSON LeaseOutcome minus the token ({"ok":true} when granted).
 */
export const ACQUIRE_LEASE = typedScript<
  { keys: GroupKeys; holder: string; ttlMs: number; token: string; nowMs: number },
  LeaseOutcome
>(
  "acquireLease",
  `${LUA_HELPERS}
local f = redis.call('HMGET', KEYS[1], 'replica', 'members', 'leaseHolder', 'leaseExpiresAt')
if f[1] ~= '0' then return '{"ok":false,"code":"unknown_group"}' end
if not contains(cjson.decode(f[2]), ARGV[1]) then return '{"ok":false,"code":"not_a_member"}' end
-- Same rule as the memory store: a live lease of another holder blocks; the holder renews it and
-- keeps its token (a retried acquire must not invalidate the token the client already holds).
local live = f[4] and tonumber(f[4]) > tonumber(ARGV[4])
if live and f[3] ~= ARGV[1] then
  return '{"ok":false,"code":"group_locked","leaseExpiresAt":' .. istr(tonumber(f[4])) .. '}'
end
if live then
  redis.call('HSET', KEYS[1], 'leaseExpiresAt', ARGV[3])
  return cjson.encode({ ok = true, token = redis.call('HGET', KEYS[1], 'leaseToken') })
end
redis.call('HSET', KEYS[1], 'leaseToken', ARGV[2], 'leaseHolder', ARGV[1], 'leaseExpiresAt', ARGV[3])
return '{"ok":true}'
`,
  ({ keys, holder, token, ttlMs, nowMs }) => ({
    keys: [keys.record],
    args: [holder, token, String(nowMs + ttlMs), String(nowMs)],
  }),
  (raw, { token, ttlMs, nowMs }) => {
    const reply = JSON.parse(String(raw)) as LeaseOutcome | { ok: true; token?: string };
    if (!reply.ok) return reply;
    return { ok: true, token: reply.token ?? token, expiresAt: nowMs + ttlMs };
  },
);

/** KEYS: record. ARGV: token. Compare-and-delete so only the token's holder releases. */
export const RELEASE_LEASE = typedScript<{ keys: GroupKeys; token: string }, boolean>(
  "releaseLease",
  `
if redis.call('HGET', KEYS[1], 'leaseToken') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'leaseToken', 'leaseHolder', 'leaseExpiresAt')
return 1
`,
  ({ keys, token }) => ({ keys: [keys.record], args: [token] }),
  (reply) => reply === 1,
);

/** KEYS: record. ARGV: seq. Monotonic: dispatch progress never moves back. */
export const MARK_DISPATCHED = typedScript<{ keys: GroupKeys; seq: number }, void>(
  "markDispatched",
  `
local d = redis.call('HGET', KEYS[1], 'dispatched')
if d and tonumber(ARGV[1]) > tonumber(d) then redis.call('HSET', KEYS[1], 'dispatched', ARGV[1]) end
return 0
`,
  ({ keys, seq }) => ({ keys: [keys.record], args: [String(seq)] }),
  () => undefined,
);

/**
 * Follower copy of a remote hub's log. KEYS: record, log, seqs, commitLog.
 * ARGV: 1 the record's epoch, 2 its hub, 3 number of record field/value pairs n, 4..2n+3 the pairs
 * (the whole record replaces the previous one unless it is older, as in the memory store), then 6
 * per entry, in seq order: seq (or "auto": numbered here from nextSeq, the JSONs carrying the
 * placeholder "seq":-1), isCommit, entry JSON without its recipients, commit-log JSON, feed meta
 * "kind||sender", recipients JSON (stored as 'r<seq>').
 * Returns {-1} when the group is ordered here (not a replica), {-2, recorded hub} when the record
 * names another hub than the one recorded at first sight (nothing written), else {1, fresh indices…}
 * ("index:seq" for an entry numbered here).
 */
export const PUT_REPLICA = typedScript<
  { keys: GroupKeys; record: Omit<GroupRecord, "nextSeq">; entries: LogEntry[]; numberHere?: boolean },
  ReplicaWrite
>(
  "putReplicaEntries",
  `${LUA_HELPERS}
local recK, logK, seqsK, clogK = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
-- Replaces the placeholder "seq":-1 of an entry JSON (written by the caller) with the given seq.
local function withSeq(json, seqS)
  local at = string.find(json, '"seq":-1', 1, true)
  return string.sub(json, 1, at - 1) .. '"seq":' .. seqS .. string.sub(json, at + 8)
end
local f0 = redis.call('HMGET', recK, 'replica', 'hub')
local replica = f0[1]
if replica == '0' then return { -1 } end
-- The hub is fixed at first sight: a peer's answer can never move the group to another hub.
if replica and f0[2] ~= ARGV[2] then return { -2, f0[2] or '' } end
local nextSeq, contig, replace = 1, 0, true
if replica then
  local f = redis.call('HMGET', recK, 'nextSeq', 'contig', 'epoch')
  nextSeq, contig = tonumber(f[1]), tonumber(f[2]) or 0
  -- A late delivery may carry an older view of the group: never move the replica backwards.
  replace = tonumber(ARGV[1]) >= tonumber(f[3])
else
  -- A new replica's feed starts at 0 (one without the field predates feeds: see ADVANCE_REPLICA_FEED).
  redis.call('HSET', recK, 'replica', '1', 'dispatched', '0', 'feedThrough', '0')
end
local n = tonumber(ARGV[3])
if replace then
  redis.call('HDEL', recK, 'replyTo', 'leaseToken', 'leaseHolder', 'leaseExpiresAt')
  redis.call('HSET', recK, unpack(ARGV, 4, 3 + 2 * n))
end
local out = { 1 }
local index = 0
for i = 4 + 2 * n, #ARGV, 6 do
  index = index + 1
  local seqS, entry, clog = ARGV[i], ARGV[i + 2], ARGV[i + 3]
  local auto = seqS == 'auto'
  if auto then
    -- Numbered here, in this atomic step (MIMI: several follower replicas on one store).
    seqS = istr(nextSeq)
    entry = withSeq(entry, seqS)
    if clog ~= '' then clog = withSeq(clog, seqS) end
  end
  -- Up to 'contig' every seq is held or was skipped (skipReplicaGap): never stored later.
  if tonumber(seqS) > contig and redis.call('HSETNX', logK, seqS, entry) == 1 then
    redis.call('ZADD', seqsK, seqS, seqS)
    -- What a feed read needs of the entry (lua/feed.ts READ_FEED): "kind||sender" (no time: replica
    -- logs are not trimmed by age).
    -- The recipient list beside the body, as on a hub ('r<seq>'): a member's read fetches the body
    -- alone (readEntryBodies), not a list that grows with the group.
    redis.call('HSET', logK, 'm' .. seqS, ARGV[i + 4], 'r' .. seqS, ARGV[i + 5])
    if ARGV[i + 1] == '1' then
      local e = cjson.decode(clog)
      redis.call('ZADD', clogK, istr(e.epoch), clog)
    end
    out[#out + 1] = auto and (istr(index) .. ':' .. seqS) or index
    local seq = tonumber(seqS)
    if seq + 1 > nextSeq then nextSeq = seq + 1 end
  end
end
while redis.call('HEXISTS', logK, istr(contig + 1)) == 1 do contig = contig + 1 end
redis.call('HSET', recK, 'nextSeq', istr(nextSeq), 'contig', istr(contig))
return out
`,
  ({ keys, record, entries, numberHere }) => {
    const fields = recordFields(record);
    const args = [String(record.epoch), record.hub, String(fields.length / 2), ...fields];
    for (const e of encodedEntries(entries, numberHere)) {
      const commit = e.kind === "commit";
      const clog = commit ? JSON.stringify({ epoch: e.epoch, seq: e.seq, sender: e.sender, sha256: e.sha256 }) : "";
      const { recipients, ...body } = e;
      args.push(
        numberHere ? "auto" : String(e.seq),
        commit ? "1" : "0",
        JSON.stringify(body),
        clog,
        `${e.kind}||${e.sender}`,
        JSON.stringify(recipients),
      );
    }
    return { keys: [keys.record, keys.log, keys.seqs, keys.commitLog], args };
  },
  // The fresh entries, named by their position in the encoded list, or "index:seq" when the script numbered them.
  (raw, { entries, numberHere }) => {
    const reply = raw as (number | string)[];
    if (reply[0] === -1) return { ok: false, code: "ordered_here" };
    if (reply[0] === -2) return { ok: false, code: "hub_mismatch", hub: String(reply[1]) };
    const encoded = encodedEntries(entries, numberHere);
    const fresh = reply.slice(1).map((r) => {
      const [index, seq] = String(r).split(":");
      const e = encoded[Number(index) - 1]!;
      return seq === undefined ? e : { ...e, seq: Number(seq) };
    });
    return { ok: true, fresh };
  },
);

/** In seq order; or, numbered by the script, in arrival order with the placeholder seq -1 it rewrites. */
function encodedEntries(entries: LogEntry[], numberHere: boolean | undefined): LogEntry[] {
  return numberHere ? entries.map((e) => ({ ...e, seq: -1 })) : [...entries].sort((a, b) => a.seq - b.seq);
}

/** KEYS: record, log. Highest seq held contiguously from 1 (read-only; writers keep 'contig' current). */
export const CONTIGUOUS_SEQ = typedScript<{ keys: GroupKeys }, number>(
  "contiguousSeq",
  `${LUA_HELPERS}
local c = redis.call('HGET', KEYS[1], 'contig')
if not c then return 0 end
c = tonumber(c)
while redis.call('HEXISTS', KEYS[2], istr(c + 1)) == 1 do c = c + 1 end
return c
`,
  ({ keys }) => ({ keys: [keys.record, keys.log], args: [] }),
  (reply) => Number(reply),
);

/**
 * KEYS: record, log, seqs. ARGV: throughSeq. Moves a replica's 'contig' up to throughSeq (the hub
 * trimmed its log before throughSeq + 1), never past the lowest held seq above it, and only when
 * one is held. Returns the contiguous point.
 */
export const SKIP_REPLICA_GAP = typedScript<{ keys: GroupKeys; throughSeq: number }, number>(
  "skipReplicaGap",
  `${LUA_HELPERS}
if redis.call('HGET', KEYS[1], 'replica') ~= '1' then return 0 end
local c = tonumber(redis.call('HGET', KEYS[1], 'contig') or '0')
while redis.call('HEXISTS', KEYS[2], istr(c + 1)) == 1 do c = c + 1 end
local low = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. istr(c), '+inf', 'LIMIT', 0, 1)
if #low == 1 then
  local to = math.min(tonumber(ARGV[1]), tonumber(low[1]) - 1)
  if to > c then
    c = to
    while redis.call('HEXISTS', KEYS[2], istr(c + 1)) == 1 do c = c + 1 end
  end
end
redis.call('HSET', KEYS[1], 'contig', istr(c))
return c
`,
  ({ keys, throughSeq }) => ({ keys: [keys.record, keys.log, keys.seqs], args: [String(throughSeq)] }),
  (reply) => Number(reply),
);

/**
 * KEYS: record, seqs, log. ARGV: afterSeq, limit. Entry JSONs after afterSeq in seq order. A hub's
 * log is dense (seqs 1 … nextSeq-1, SUBMIT writes no `seqs` member for it): read by seq directly;
 * a replica's may have gaps: read through `seqs` (gaps skipped).
 */
export const READ_LOG = typedScript<{ keys: GroupKeys; afterSeq: number; limit: number }, LogEntry[]>(
  "readLog",
  `${LUA_HELPERS}
local f = redis.call('HMGET', KEYS[1], 'replica', 'nextSeq', 'logStart')
local after, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
-- Trimmed entries are gone (TRIM_LOG): start at the log's start.
if f[1] == '0' then after = math.max(after, (tonumber(f[3]) or 1) - 1) end
local fields = {}
if f[1] == '0' then
  for seq = after + 1, math.min(after + limit, tonumber(f[2]) - 1) do fields[#fields + 1] = istr(seq) end
else
  fields = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf', 'LIMIT', 0, ARGV[2])
end
local out = {}
-- HMGET in chunks: unpack() of a long list would overflow the Lua stack.
for i = 1, #fields, 250 do
  local want = {}
  for j = i, math.min(i + 249, #fields) do
    want[#want + 1] = fields[j]
    want[#want + 1] = 'r' .. fields[j]
  end
  local rows = redis.call('HMGET', KEYS[3], unpack(want))
  for j = 1, #rows, 2 do
    -- An entry keeps its recipients beside it ('r<seq>'); a replica entry stored by an earlier
    -- version holds them inline.
    if rows[j] and rows[j + 1] then
      out[#out + 1] = withRecipients(rows[j], rows[j + 1])
    elseif rows[j] then
      out[#out + 1] = rows[j]
    end
  end
end
return out
`,
  ({ keys, afterSeq, limit }) => ({ keys: [keys.record, keys.seqs, keys.log], args: [String(afterSeq), String(limit)] }),
  (rows) => (rows as string[]).map((r) => decodeRecipients(JSON.parse(r) as LogEntry)),
);

/**
 * Retention of a hub log. KEYS: record, log. ARGV: beforeMs, max. From the log's start, drops
 * entries accepted before beforeMs that were fanned out (seq <= dispatched), at most max, and
 * moves the record's logStart past them. An entry without its m<seq> time (stored by an earlier
 * version) stops the walk: its age is unknown. Returns how many went.
 */
export const TRIM_LOG = typedScript<{ keys: GroupKeys; beforeMs: number; max: number }, number>(
  "trimLog",
  `${LUA_HELPERS}
local f = redis.call('HMGET', KEYS[1], 'replica', 'logStart', 'dispatched')
if f[1] ~= '0' then return 0 end
local start, dispatched = tonumber(f[2]) or 1, tonumber(f[3]) or 0
local before, max = tonumber(ARGV[1]), tonumber(ARGV[2])
local n = 0
while n < max and start <= dispatched do
  local meta = redis.call('HGET', KEYS[2], 'm' .. istr(start))
  local at = meta and tonumber(string.match(meta, '^[^|]*|(%d+)|'))
  if not at or at >= before then break end
  redis.call('HDEL', KEYS[2], istr(start), 'r' .. istr(start), 'm' .. istr(start))
  start = start + 1
  n = n + 1
end
if n > 0 then redis.call('HSET', KEYS[1], 'logStart', istr(start)) end
return n
`,
  ({ keys, beforeMs, max }) => ({ keys: [keys.record, keys.log], args: [String(beforeMs), String(max)] }),
  (n) => Number(n),
);

/** KEYS: record. ARGV: the pendingIndex text the index was written for. Clears it unless a later accept changed it. */
export const CLEAR_PENDING_INDEX = typedScript<{ keys: GroupKeys; pending: string }, void>(
  "clearPendingIndex",
  `
if redis.call('HGET', KEYS[1], 'pendingIndex') == ARGV[1] then redis.call('HDEL', KEYS[1], 'pendingIndex') end
return 0
`,
  ({ keys, pending }) => ({ keys: [keys.record], args: [pending] }),
  () => undefined,
);
