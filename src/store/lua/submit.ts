import type { LogEntry, Submission, SubmitOutcome } from "../port.js";
import type { GroupKeys } from "./keys.js";
import { SPAN_HELPERS } from "./feed.js";
import { decodeRecipients, LUA_HELPERS, typedScript } from "./script.js";

export interface SubmitInput {
  keys: GroupKeys;
  submission: Submission;
  nowMs: number;
  /** The group's wake-up channel and the command that publishes it (PUBLISH, or SPUBLISH in a cluster). */
  wake: { channel: string; publish: "PUBLISH" | "SPUBLISH" };
}

/**
 * What the membership index owes after a roster change, recorded atomically with the accept
 * (field `pendingIndex`): add every member, drop `removed`; `pending` is the field's exact text,
 * cleared (compare-and-delete) once the index is written.
 */
export interface PendingIndex {
  members: string[];
  removed: string[];
  pending: string;
}

export type SubmitResult =
  Exclude<SubmitOutcome, { ok: true }> | (Extract<SubmitOutcome, { ok: true }> & { index?: PendingIndex });

/** The one argument of SUBMIT: the submission by name (cjson-decoded in Lua), never by position. */
function encodeSubmission(sub: Submission, nowMs: number): string {
  const c = sub.kind === "commit" ? sub : undefined;
  return JSON.stringify({
    now: nowMs,
    kind: sub.kind,
    sender: sub.sender,
    epoch: sub.epoch,
    sha256: sub.sha256,
    message: sub.message,
    external: c?.external === true,
    resolveActor: sub.kind !== "commit" && sub.resolveActor === true,
    added: c?.added ?? [],
    removed: c?.removed ?? [],
    ...(c?.leaseToken !== undefined ? { leaseToken: c.leaseToken } : {}),
    ...(c?.welcome ? { welcome: c.welcome } : {}),
    ...(c?.groupInfo !== undefined ? { groupInfo: c.groupInfo } : {}),
    ...(c?.groupInfo !== undefined && c.ratchetTree ? { ratchetTree: c.ratchetTree } : {}),
  });
}

type SubmitReply =
  | Exclude<SubmitOutcome, { ok: true }>
  | { ok: true; duplicate: true; answer: { seq: number; epoch: number } }
  | {
      ok: true;
      duplicate: false;
      answer: { seq: number; epoch: number };
      entries: LogEntry[];
      index?: PendingIndex;
      settled?: true;
    };

/**
 * The ordering step: the Lua twin of decideSubmit (src/domain/ordering.ts, the specification it is
 * tested against), plus the memory store's bookkeeping around it (replica/unknown check, answer
 * dedupe, storing the effect). One script over the keys of one group ({g:<groupId>}), so the
 * decision and its effect are atomic.
 *
 * KEYS: record, log, seqs, answers, commitLog, groupInfo, spans. ARGV[1]: encodeSubmission's
 * JSON; ARGV[2], ARGV[3]: the group's wake-up channel and the publish command (one wake-up per
 * accept, whatever the group size: members read the log through their feeds, domain/feeds.ts).
 * Returns JSON: a refusal (SubmitOutcome shape), {"ok":true,"duplicate":true,"answer":{seq,epoch}},
 * or {"ok":true,"duplicate":false,"answer":…,"entries":[the stored LogEntry JSONs],"index":PendingIndex?}.
 */
export const SUBMIT = typedScript<SubmitInput, SubmitResult>(
  "submit",
  `${LUA_HELPERS}${SPAN_HELPERS}
local recK, logK, seqsK, ansK, clogK, giK, spansK = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local s = cjson.decode(ARGV[1])
local now = s.now
local kind, sender, sha, message = s.kind, s.sender, s.sha256, s.message
local subEpoch = s.epoch
local subEpochS = istr(subEpoch)

local f = redis.call('HMGET', recK, 'replica', 'epoch', 'nextSeq', 'members', 'owner', 'mode', 'leaseToken', 'leaseExpiresAt', 'contig', 'feeds', 'hub', 'dispatched')
-- A replica of a remote hub's group is not ordered here.
if f[1] ~= '0' then return '{"ok":false,"code":"unknown_group"}' end
local epoch, nextSeq = tonumber(f[2]), tonumber(f[3])
local membersRaw = f[4]
local members = cjson.decode(membersRaw)
local owner, mode = f[5], f[6]
local leaseToken = f[7]
local leaseExpiresAt = nil
if f[8] then leaseExpiresAt = tonumber(f[8]) end
local contig = tonumber(f[9]) or 0
local hasFeeds = f[10] == '1'
local hub, dispatched = f[11], tonumber(f[12]) or 0

-- resolveActor (domain/ordering.ts): a device that is not a member acts as its user's virtual client if that is one.
if s.resolveActor == true and not contains(members, sender) then
  local virtual = userOf(sender) .. '/*'
  if contains(members, virtual) then sender = virtual end
end
local isMember = contains(members, sender)
local external = kind == 'commit' and s.external == true
if external then
  -- A new device of a user already in the group may join itself; strangers may not.
  local su = userOf(sender)
  local sameUser = false
  for i = 1, #members do if userOf(members[i]) == su then sameUser = true break end end
  if not sameUser and not isMember then return '{"ok":false,"code":"not_a_member"}' end
elseif not isMember then
  return '{"ok":false,"code":"not_a_member"}'
end
-- The dedupe answer comes only after the sender check (senderRefusal in ordering.ts): a
-- non-member re-posting a member's exact bytes is refused, not answered. It is looked up only when
-- it can matter: before any other refusal, and (HSETNX, claim) when the submission would be
-- accepted — one command on the common path instead of a lookup and a write.
local function duplicate()
  local previous = redis.call('HGET', ansK, sha)
  if previous then return '{"ok":true,"duplicate":true,"answer":' .. previous .. '}' end
  return nil
end
local function refuse(json) return duplicate() or json end
local function claim(seq, answerEpoch)
  local a = '{"seq":' .. istr(seq) .. ',"epoch":' .. istr(answerEpoch) .. '}'
  if redis.call('HSETNX', ansK, sha, a) == 0 then return nil end
  return a
end
if mode == 'send-group' and kind ~= 'proposal' and sender ~= owner then
  return refuse('{"ok":false,"code":"not_designated_sender"}')
end

-- Everybody but the sender (a commit's recipients; built only for commits, it grows with the group).
local function othersOf()
  local others = {}
  for i = 1, #members do if members[i] ~= sender then others[#others + 1] = members[i] end end
  return others
end

-- A group stored before feeds existed: its members' inboxes got every entry so far; from here on
-- they read the log (spans open after the last seq). Once per group, atomically with this accept.
local function ensureFeeds()
  if hasFeeds then return end
  for i = 1, #members do openSpanIn(spansK, members[i], nextSeq - 1) end
  redis.call('HSET', recK, 'feeds', '1')
  hasFeeds = true
end

-- recipients: a list, or MEMBERS_BUT_SENDER (the roster as stored, read back minus the sender:
-- '~' then the members' JSON, see decodeRecipients) — no per-member work in the accept.
local MEMBERS_BUT_SENDER = {}
local function storeEntry(seq, entryKind, entryEpoch, entryMessage, entrySha, recipients)
  local body = '{"seq":' .. istr(seq) .. ',"kind":' .. jstr(entryKind) .. ',"epoch":' .. istr(entryEpoch) ..
    ',"sender":' .. jstr(sender) .. ',"message":' .. jstr(entryMessage) .. ',"sha256":' .. jstr(entrySha) .. '}'
  local list
  if recipients == MEMBERS_BUT_SENDER then list = '~' .. membersRaw else list = jarr(recipients) end
  -- Beside the body (one HSET): 'r<seq>' its recipients, read only where they are needed (outbox,
  -- federation pulls, catch-up), never when a member reads its inbox (they grow with the group);
  -- 'm<seq>' = "kind|acceptedAtMs|sender", all a feed read and the retention trim need. No 'seqs'
  -- member: a hub's log is dense, read by seq (READ_LOG); 'seqs' serves replicas' gaps.
  redis.call('HSET', logK, istr(seq), body, 'r' .. istr(seq), list, 'm' .. istr(seq), entryKind .. '|' .. istr(now) .. '|' .. sender)
  return withRecipients(body, list)
end
-- settlesInAccept (domain/feeds.ts): nothing to fan out — every entry member-wide, every member
-- (before and after) a client of this hub, nothing earlier waiting for its fan-out.
-- user@domain/device: the user holds no '@', the domain no '/' (CLIENT_ID); an id of another shape
-- counts as remote, which only costs a fan-out.
local hubTail = '@' .. (hub or '') .. '/'
local function allLocal(list)
  for i = 1, #list do
    local m = list[i]
    local at = string.find(m, '@', 1, true)
    if not at or string.sub(m, at, at + #hubTail - 1) ~= hubTail then return false end
  end
  return true
end
local function settles(kinds, after)
  if dispatched ~= nextSeq - 1 then return false end
  for i = 1, #kinds do
    if kinds[i] == 'welcome' or (mode == 'send-group' and kinds[i] == 'proposal') then return false end
  end
  return allLocal(members) and (after == members or allLocal(after))
end
-- contig (highest seq held contiguously from 1) only advances if the log had no gap before; with
-- settled, the dispatch mark moves in the same HSET.
local function advance(newNextSeq, settled)
  local fields = { 'nextSeq', istr(newNextSeq) }
  if contig == nextSeq - 1 then fields[#fields + 1] = 'contig' fields[#fields + 1] = istr(newNextSeq - 1) end
  if settled then fields[#fields + 1] = 'dispatched' fields[#fields + 1] = istr(newNextSeq - 1) end
  redis.call('HSET', recK, unpack(fields))
end

if kind ~= 'commit' then
  if subEpoch > epoch then
    return refuse('{"ok":false,"code":"stale_epoch","expectedEpoch":' .. istr(epoch) .. '}')
  end
  local a = claim(nextSeq, epoch)
  if not a then return duplicate() end
  local recipients = MEMBERS_BUT_SENDER
  if mode == 'send-group' and kind == 'proposal' then recipients = { owner } end
  ensureFeeds()
  local meta = storeEntry(nextSeq, kind, subEpoch, message, sha, recipients)
  local settled = settles({ kind }, members)
  advance(nextSeq + 1, settled)
  redis.call(ARGV[3], ARGV[2], '1')
  return '{"ok":true,"duplicate":false,"answer":' .. a .. ',"entries":[' .. meta .. ']' .. (settled and ',"settled":true' or '') .. '}'
end

if subEpoch ~= epoch then
  local out = '{"ok":false,"code":"stale_epoch","expectedEpoch":' .. istr(epoch)
  local w = redis.call('ZRANGEBYSCORE', clogK, subEpochS, subEpochS, 'LIMIT', 0, 1)
  if w[1] then
    local winner = cjson.decode(w[1]).sha256
    if winner ~= '' then out = out .. ',"winner":' .. jstr(winner) end
  end
  return refuse(out .. '}')
end
local leaseActive = leaseExpiresAt ~= nil and leaseExpiresAt > now
if mode == 'ordered' and leaseActive and s.leaseToken ~= leaseToken then
  return refuse('{"ok":false,"code":"group_locked","leaseExpiresAt":' .. istr(leaseExpiresAt) .. '}')
end

local newEpoch = epoch + 1
local removed = {}
for _, r in ipairs(s.removed) do removed[r] = true end
local newMembers, inNew = {}, {}
for i = 1, #members do
  if not removed[members[i]] then
    newMembers[#newMembers + 1] = members[i]
    inNew[members[i]] = true
  end
end
local added = s.added
local joining = {}
for i = 1, #added do joining[#joining + 1] = added[i] end
if external then joining[#joining + 1] = sender end
for i = 1, #joining do
  if not inNew[joining[i]] then
    newMembers[#newMembers + 1] = joining[i]
    inNew[joining[i]] = true
  end
end

local a = claim(nextSeq, newEpoch)
if not a then return duplicate() end
ensureFeeds()
local metas = { storeEntry(nextSeq, 'commit', epoch, message, sha, othersOf()) }
if type(s.welcome) == 'table' then
  metas[2] = storeEntry(nextSeq + 1, 'welcome', newEpoch, s.welcome.message, s.welcome.sha256, added)
end
if type(s.groupInfo) == 'string' then
  redis.call('HSET', giK, 'epoch', istr(newEpoch), 'info', s.groupInfo)
  -- the tree beside a GroupInfo that does not embed it; a GroupInfo with its own tree drops the old one
  if type(s.ratchetTree) == 'string' then redis.call('HSET', giK, 'tree', s.ratchetTree) else redis.call('HDEL', giK, 'tree') end
end
redis.call('ZADD', clogK, istr(epoch), '{"epoch":' .. istr(epoch) .. ',"seq":' .. istr(nextSeq) ..
  ',"sender":' .. jstr(sender) .. ',"sha256":' .. jstr(sha) .. '}')
local membersJson = jarr(newMembers)
redis.call('HSET', recK, 'epoch', istr(newEpoch), 'members', membersJson)
-- An expired lease is dropped by an accepted commit (an active one is kept for its holder).
if not leaseActive then redis.call('HDEL', recK, 'leaseToken', 'leaseHolder', 'leaseExpiresAt') end
local kinds = { 'commit' }
if #metas == 2 then kinds[2] = 'welcome' end
local settled = settles(kinds, newMembers)
advance(nextSeq + #metas, settled)
-- Feed spans (domain/feeds.ts spanChange): who left receives this commit and nothing after it;
-- who joined reads after it (its Welcome first).
for i = 1, #members do if not inNew[members[i]] then closeSpanIn(spansK, members[i], nextSeq) end end
local wasIn = {}
for i = 1, #members do wasIn[members[i]] = true end
for i = 1, #newMembers do
  if not wasIn[newMembers[i]] then openSpanIn(spansK, newMembers[i], nextSeq) end
end
redis.call(ARGV[3], ARGV[2], '1')

-- The membership index ({c:<client>}:groups, other slots) cannot change in this script on a
-- cluster; what it owes is recorded here, atomically with the accept: 'pendingIndex' lists the
-- clients still to drop (earlier pending ones included) and stays until the index is written.
local wasMember, pending, inPending = {}, {}, {}
for i = 1, #members do wasMember[members[i]] = true end
local changed = #newMembers ~= #members
local previous = redis.call('HGET', recK, 'pendingIndex')
if previous then
  changed = true
  for _, c in ipairs(cjson.decode(previous)) do
    if not inNew[c] and not inPending[c] then pending[#pending + 1] = c inPending[c] = true end
  end
end
for i = 1, #members do
  if not inNew[members[i]] then
    changed = true
    if not inPending[members[i]] then pending[#pending + 1] = members[i] inPending[members[i]] = true end
  end
end
for i = 1, #newMembers do if not wasMember[newMembers[i]] then changed = true end end
local index = ''
if changed then
  local pendingJson = jarr(pending)
  redis.call('HSET', recK, 'pendingIndex', pendingJson)
  index = ',"index":{"members":' .. membersJson .. ',"removed":' .. pendingJson .. ',"pending":' .. jstr(pendingJson) .. '}'
end
return '{"ok":true,"duplicate":false,"answer":' .. a .. ',"entries":[' .. table.concat(metas, ',') .. ']' .. index ..
  (settled and ',"settled":true' or '') .. '}'
`,
  ({ keys: k, submission, nowMs, wake }) => ({
    keys: [k.record, k.log, k.seqs, k.answers, k.commitLog, k.groupInfo, k.spans],
    args: [encodeSubmission(submission, nowMs), wake.channel, wake.publish],
  }),
  (raw) => {
    const reply = JSON.parse(String(raw)) as SubmitReply;
    if (!reply.ok) return reply;
    if (reply.duplicate) return { ok: true, ...reply.answer, duplicate: true, entries: [] };
    const { answer, index, settled } = reply;
    const entries = reply.entries.map(decodeRecipients);
    return { ok: true, ...answer, duplicate: false, entries, ...(index ? { index } : {}), ...(settled ? { settled } : {}) };
  },
);
