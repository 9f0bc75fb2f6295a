import { LUA_HELPERS, luaScript } from "./script.js";

/**
 * The ordering step: the line-by-line twin of decideSubmit (src/domain/ordering.ts), plus the
 * memory store's bookkeeping around it (replica/unknown check, answer dedupe, storing the effect).
 * One script over the keys of one group ({g:<groupId>}), so the decision and its effect are atomic.
 *
 * KEYS: record, log, seqs, answers, commitLog, groupInfo
 * ARGV: 1 nowMs, 2 kind, 3 sender, 4 epoch, 5 sha256, 6 message, 7 hasLeaseToken, 8 leaseToken,
 *       9 external, 10 added JSON, 11 removed JSON, 12 hasWelcome, 13 welcome message,
 *       14 welcome sha256, 15 hasGroupInfo, 16 groupInfo
 * Returns JSON: a refusal (SubmitOutcome shape), {"ok":true,"duplicate":true,"answer":{seq,epoch}},
 * or {"ok":true,"duplicate":false,"answer":…,"entries":[{seq,epoch,recipients}],"members":[…],"removed":[…]}
 * (entries carry no payload: the caller has it; the stored log entries carry everything).
 */
export const SUBMIT = luaScript(
  "submit",
  `${LUA_HELPERS}
local recK, logK, seqsK, ansK, clogK, giK = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local now = tonumber(ARGV[1])
local kind, sender, subEpochS, sha, message = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local subEpoch = tonumber(subEpochS)

local f = redis.call('HMGET', recK, 'replica', 'epoch', 'nextSeq', 'members', 'owner', 'mode', 'leaseToken', 'leaseExpiresAt', 'contig')
-- A replica of a remote hub's group is not ordered here.
if f[1] ~= '0' then return '{"ok":false,"code":"unknown_group"}' end
local epoch, nextSeq = tonumber(f[2]), tonumber(f[3])
local members = cjson.decode(f[4])
local owner, mode = f[5], f[6]
local leaseToken = f[7]
local leaseExpiresAt = nil
if f[8] then leaseExpiresAt = tonumber(f[8]) end
local contig = tonumber(f[9]) or 0

local isMember = contains(members, sender)
local external = kind == 'commit' and ARGV[9] == '1'
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
-- non-member re-posting a member's exact bytes is refused, not answered.
local previous = redis.call('HGET', ansK, sha)
if previous then return '{"ok":true,"duplicate":true,"answer":' .. previous .. '}' end
if mode == 'send-group' and kind ~= 'proposal' and sender ~= owner then
  return '{"ok":false,"code":"not_designated_sender"}'
end

local others = {}
for i = 1, #members do if members[i] ~= sender then others[#others + 1] = members[i] end end

local function storeEntry(seq, entryKind, entryEpoch, entryMessage, entrySha, recipients)
  local json = '{"seq":' .. istr(seq) .. ',"kind":' .. jstr(entryKind) .. ',"epoch":' .. istr(entryEpoch) ..
    ',"sender":' .. jstr(sender) .. ',"message":' .. jstr(entryMessage) .. ',"sha256":' .. jstr(entrySha) ..
    ',"recipients":' .. jarr(recipients) .. '}'
  redis.call('HSET', logK, istr(seq), json)
  redis.call('ZADD', seqsK, istr(seq), istr(seq))
  return '{"seq":' .. istr(seq) .. ',"epoch":' .. istr(entryEpoch) .. ',"recipients":' .. jarr(recipients) .. '}'
end
local function answer(seq, answerEpoch)
  local a = '{"seq":' .. istr(seq) .. ',"epoch":' .. istr(answerEpoch) .. '}'
  redis.call('HSET', ansK, sha, a)
  return a
end
-- contig (highest seq held contiguously from 1) only advances if the log had no gap before.
local function advance(newNextSeq)
  redis.call('HSET', recK, 'nextSeq', istr(newNextSeq))
  if contig == nextSeq - 1 then redis.call('HSET', recK, 'contig', istr(newNextSeq - 1)) end
end

if kind ~= 'commit' then
  if subEpoch > epoch then
    return '{"ok":false,"code":"stale_epoch","expectedEpoch":' .. istr(epoch) .. '}'
  end
  local recipients = others
  if mode == 'send-group' and kind == 'proposal' then recipients = { owner } end
  local meta = storeEntry(nextSeq, kind, subEpoch, message, sha, recipients)
  local a = answer(nextSeq, epoch)
  advance(nextSeq + 1)
  return '{"ok":true,"duplicate":false,"answer":' .. a .. ',"entries":[' .. meta .. ']}'
end

if subEpoch ~= epoch then
  local out = '{"ok":false,"code":"stale_epoch","expectedEpoch":' .. istr(epoch)
  local w = redis.call('ZRANGEBYSCORE', clogK, subEpochS, subEpochS, 'LIMIT', 0, 1)
  if w[1] then
    local winner = cjson.decode(w[1]).sha256
    if winner ~= '' then out = out .. ',"winner":' .. jstr(winner) end
  end
  return out .. '}'
end
local leaseActive = leaseExpiresAt ~= nil and leaseExpiresAt > now
if mode == 'ordered' and leaseActive and (ARGV[7] ~= '1' or ARGV[8] ~= leaseToken) then
  return '{"ok":false,"code":"group_locked","leaseExpiresAt":' .. istr(leaseExpiresAt) .. '}'
end

local newEpoch = epoch + 1
local removed = {}
for _, r in ipairs(cjson.decode(ARGV[11])) do removed[r] = true end
local newMembers, inNew = {}, {}
for i = 1, #members do
  if not removed[members[i]] then
    newMembers[#newMembers + 1] = members[i]
    inNew[members[i]] = true
  end
end
local added = cjson.decode(ARGV[10])
local joining = {}
for i = 1, #added do joining[#joining + 1] = added[i] end
if external then joining[#joining + 1] = sender end
for i = 1, #joining do
  if not inNew[joining[i]] then
    newMembers[#newMembers + 1] = joining[i]
    inNew[joining[i]] = true
  end
end

local metas = { storeEntry(nextSeq, 'commit', epoch, message, sha, others) }
if ARGV[12] == '1' then
  metas[2] = storeEntry(nextSeq + 1, 'welcome', newEpoch, ARGV[13], ARGV[14], added)
end
local a = answer(nextSeq, newEpoch)
if ARGV[15] == '1' then redis.call('HSET', giK, 'epoch', istr(newEpoch), 'info', ARGV[16]) end
redis.call('ZADD', clogK, istr(epoch), '{"epoch":' .. istr(epoch) .. ',"seq":' .. istr(nextSeq) ..
  ',"sender":' .. jstr(sender) .. ',"sha256":' .. jstr(sha) .. '}')
local membersJson = jarr(newMembers)
redis.call('HSET', recK, 'epoch', istr(newEpoch), 'members', membersJson)
-- An expired lease is dropped by an accepted commit (an active one is kept for its holder).
if not leaseActive then redis.call('HDEL', recK, 'leaseToken', 'leaseHolder', 'leaseExpiresAt') end
advance(nextSeq + #metas)

local gone = {}
for i = 1, #members do if not inNew[members[i]] then gone[#gone + 1] = members[i] end end
return '{"ok":true,"duplicate":false,"answer":' .. a .. ',"entries":[' .. table.concat(metas, ',') ..
  '],"members":' .. membersJson .. ',"removed":' .. jarr(gone) .. '}'
`,
);
