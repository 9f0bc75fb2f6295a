import type { ClaimOutcome, KeyPackageMeta, StoredKeyPackage } from "../port.js";
import { USER_KEYS } from "./keys.js";
import { LUA_HELPERS, typedScript } from "./script.js";

/** Every key directory script works below one user's base key `<prefix>:{u:<user>}:`. */
interface UserInput {
  base: string;
}
interface ClientInput extends UserInput {
  client: string;
}
const kpKey = ({ base, client }: ClientInput) => base + USER_KEYS.kp + client;
const devicesKey = ({ base }: UserInput) => base + USER_KEYS.devices;

/**
 * Key directory scripts. Every one is routed by a key of `{u:<user>}` (KEYS[1]) and builds the
 * per-device key names from ARGV[1], the user's base key, so they stay inside that one slot.
 * Suites travel as decimal strings (String(n) in TypeScript, istr(n) here: the same text).
 */
const PRELUDE = `${LUA_HELPERS}
local BASE = ARGV[1]
local function kpK(c) return BASE .. '${USER_KEYS.kp}' .. c end
local function expK(c) return BASE .. '${USER_KEYS.exp}' .. c end
local function poolK(c) return BASE .. '${USER_KEYS.pool}' .. c end
local function queueK(c, suite) return BASE .. '${USER_KEYS.queue}' .. c .. ':' .. suite end
local function suitesK(c) return BASE .. '${USER_KEYS.suites}' .. c end
local function lrK(c) return BASE .. '${USER_KEYS.lastResort}' .. c end
local function lrsK(c) return BASE .. '${USER_KEYS.lastResortOrder}' .. c end
local devicesK = BASE .. '${USER_KEYS.devices}'
local versionK = BASE .. '${USER_KEYS.version}'

local function suiteOf(json) return istr(cjson.decode(json).cipherSuite) end
-- Removes one pooled KeyPackage from every structure that indexes it.
local function dropPooled(c, ref, suite)
  redis.call('HDEL', kpK(c), ref)
  redis.call('ZREM', expK(c), ref)
  redis.call('LREM', poolK(c), 1, ref)
  if suite then
    redis.call('LREM', queueK(c, suite), 1, ref)
    if redis.call('LLEN', queueK(c, suite)) == 0 then redis.call('SREM', suitesK(c), suite) end
  end
end
`;

/**
 * KEYS: kp key of the client (routing). ARGV: base, client, maxPerClient, then 5 per item:
 * ref, lastResort, suite, notAfter, JSON. Returns per item {status 's'|'o', replaced last-resort ref or ''}.
 */
export const PUT_KEY_PACKAGES = typedScript<
  ClientInput & { maxPerClient: number; items: StoredKeyPackage[] },
  { stored: boolean; replacedRef?: string }[]
>(
  "putKeyPackages",
  `${PRELUDE}
local c, max = ARGV[2], tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV, 5 do
  local ref, lastResort, suite, notAfter, json = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  if lastResort == '1' then
    -- One last-resort package per suite: a new one replaces the previous (keeping its listing slot).
    local previous = redis.call('HGET', lrK(c), suite)
    local replaced = ''
    if previous then replaced = cjson.decode(previous).ref else redis.call('RPUSH', lrsK(c), suite) end
    redis.call('HSET', lrK(c), suite, json)
    out[#out + 1] = { 's', replaced }
  elseif redis.call('ZSCORE', expK(c), ref) then
    out[#out + 1] = { 's', '' } -- same bytes again: already stored
  elseif redis.call('ZCARD', expK(c)) >= max then
    out[#out + 1] = { 'o', '' }
  else
    redis.call('HSET', kpK(c), ref, json)
    redis.call('ZADD', expK(c), notAfter, ref)
    redis.call('RPUSH', poolK(c), ref)
    redis.call('RPUSH', queueK(c, suite), ref)
    redis.call('SADD', suitesK(c), suite)
    out[#out + 1] = { 's', '' }
  end
end
return out
`,
  (i) => {
    const args = [i.base, i.client, String(i.maxPerClient)];
    for (const it of i.items) {
      args.push(it.ref, it.lastResort ? "1" : "0", String(it.cipherSuite), String(it.notAfter), JSON.stringify(it));
    }
    return { keys: [kpKey(i)], args };
  },
  (rows) =>
    (rows as [string, string][]).map(([status, replaced]) => ({
      stored: status === "s",
      ...(replaced ? { replacedRef: replaced } : {}),
    })),
);

/** KEYS: kp key of the client. ARGV: base, client. Returns {ref, suite, notAfter, lastResort 0|1} rows, pool then last resort. */
export const LIST_KEY_PACKAGES = typedScript<ClientInput, KeyPackageMeta[]>(
  "listKeyPackages",
  `${PRELUDE}
local c = ARGV[2]
local out = {}
local function row(json, lastResort)
  local kp = cjson.decode(json)
  out[#out + 1] = { kp.ref, istr(kp.cipherSuite), istr(kp.notAfter), lastResort }
end
for _, ref in ipairs(redis.call('LRANGE', poolK(c), 0, -1)) do
  local json = redis.call('HGET', kpK(c), ref)
  if json then row(json, 0) end
end
for _, suite in ipairs(redis.call('LRANGE', lrsK(c), 0, -1)) do
  local json = redis.call('HGET', lrK(c), suite)
  if json then row(json, 1) end
end
return out
`,
  (i) => ({ keys: [kpKey(i)], args: [i.base, i.client] }),
  (rows) =>
    (rows as [string, string, string, number][]).map(([ref, suite, notAfter, lr]) => ({
      ref,
      cipherSuite: Number(suite),
      notAfter: Number(notAfter),
      lastResort: lr === 1,
    })),
);

/** KEYS: kp key of the client. ARGV: base, client, ref. Returns 1 if deleted. */
export const DELETE_KEY_PACKAGE = typedScript<ClientInput & { ref: string }, boolean>(
  "deleteKeyPackage",
  `${PRELUDE}
local c, ref = ARGV[2], ARGV[3]
if redis.call('ZSCORE', expK(c), ref) then
  local json = redis.call('HGET', kpK(c), ref)
  dropPooled(c, ref, json and suiteOf(json))
  return 1
end
for _, suite in ipairs(redis.call('LRANGE', lrsK(c), 0, -1)) do
  local json = redis.call('HGET', lrK(c), suite)
  if json and cjson.decode(json).ref == ref then
    redis.call('HDEL', lrK(c), suite)
    redis.call('LREM', lrsK(c), 1, suite)
    return 1
  end
end
return 0
`,
  (i) => ({ keys: [kpKey(i)], args: [i.base, i.client, i.ref] }),
  (reply) => reply === 1,
);

/**
 * KEYS: devices key of the user. ARGV: base, nowSeconds, suites in the requester's order.
 * Returns {'unknown_user'} | {'no_key_package'} | {'no_common_suite', {suites}} |
 * {'ok', suite, {bundle JSONs}, {client, reason, …}}.
 */
export const CLAIM = typedScript<UserInput & { suites: number[]; nowSeconds: number }, ClaimOutcome>(
  "claim",
  `${PRELUDE}
local nowS = ARGV[2]
local now = tonumber(nowS)
local clients = redis.call('SMEMBERS', devicesK)
if #clients == 0 then return { 'unknown_user' } end
-- Single-client mode: a registered virtual client (user/*) stands for all the user's devices.
for _, c in ipairs(clients) do
  if string.sub(c, -2) == '/*' then clients = { c } break end
end
table.sort(clients)

-- Expired pooled packages are dropped on the way (usable means notAfter >= now).
for _, c in ipairs(clients) do
  for _, ref in ipairs(redis.call('ZRANGEBYSCORE', expK(c), '-inf', '(' .. nowS)) do
    local json = redis.call('HGET', kpK(c), ref)
    dropPooled(c, ref, json and suiteOf(json))
  end
end

local function usableLastResort(c, suite)
  local json = redis.call('HGET', lrK(c), suite)
  if json and cjson.decode(json).notAfter >= now then return json end
  return nil
end
local function serves(c, suite)
  return redis.call('LLEN', queueK(c, suite)) > 0 or usableLastResort(c, suite) ~= nil
end

local chosen = nil
for i = 3, #ARGV do
  for _, c in ipairs(clients) do
    if serves(c, ARGV[i]) then chosen = ARGV[i] break end
  end
  if chosen then break end
end

if not chosen then
  local seen, available = {}, {}
  local function add(s)
    local n = tonumber(s)
    if not seen[n] then seen[n] = true available[#available + 1] = n end
  end
  for _, c in ipairs(clients) do
    for _, s in ipairs(redis.call('SMEMBERS', suitesK(c))) do add(s) end
    for _, s in ipairs(redis.call('HKEYS', lrK(c))) do
      if usableLastResort(c, s) then add(s) end
    end
  end
  if #available == 0 then return { 'no_key_package' } end
  table.sort(available)
  return { 'no_common_suite', available }
end

local bundles, missing = {}, {}
for _, c in ipairs(clients) do
  local ref = redis.call('LPOP', queueK(c, chosen))
  local json = ref and redis.call('HGET', kpK(c), ref)
  if ref then dropPooled(c, ref, chosen) end
  if not json then json = usableLastResort(c, chosen) end -- never consumed
  if json then
    bundles[#bundles + 1] = json
  else
    local hasAny = redis.call('ZCARD', expK(c)) > 0 or redis.call('HLEN', lrK(c)) > 0
    missing[#missing + 1] = c
    missing[#missing + 1] = hasAny and 'no_compatible_suite' or 'exhausted'
  end
end
return { 'ok', chosen, bundles, missing }
`,
  (i) => ({ keys: [devicesKey(i)], args: [i.base, String(i.nowSeconds), ...i.suites.map(String)] }),
  (raw) => {
    const reply = raw as [string, ...unknown[]];
    switch (reply[0]) {
      case "unknown_user":
      case "no_key_package":
        return { kind: reply[0] };
      case "no_common_suite":
        return { kind: "no_common_suite", available: reply[1] as number[] };
      default: {
        const [, suite, bundles, flatMissing] = reply as [string, string, string[], string[]];
        const missing: { client: string; reason: "exhausted" | "no_compatible_suite" }[] = [];
        for (let i = 0; i < flatMissing.length; i += 2) {
          missing.push({ client: flatMissing[i]!, reason: flatMissing[i + 1] as "exhausted" | "no_compatible_suite" });
        }
        return {
          kind: "ok",
          cipherSuite: Number(suite),
          bundles: bundles.map((b) => JSON.parse(b) as StoredKeyPackage),
          missing,
        };
      }
    }
  },
);

/** KEYS: devices key. ARGV: base, client. Returns {version, added 0|1}; the version moves only on change. */
export const REGISTER_DEVICE = typedScript<ClientInput, { version: number; added: boolean }>(
  "registerDevice",
  `${PRELUDE}
if redis.call('SADD', devicesK, ARGV[2]) == 1 then return { redis.call('INCR', versionK), 1 } end
return { tonumber(redis.call('GET', versionK) or '0'), 0 }
`,
  (i) => ({ keys: [devicesKey(i)], args: [i.base, i.client] }),
  (reply) => {
    const [version, added] = reply as [number, number];
    return { version, added: added === 1 };
  },
);

/** KEYS: devices key. ARGV: base, client. Returns {version, removed 0|1}; a removed device's packages go too. */
export const REMOVE_DEVICE = typedScript<ClientInput, { version: number; removed: boolean }>(
  "removeDevice",
  `${PRELUDE}
local c = ARGV[2]
if redis.call('SREM', devicesK, c) == 0 then return { tonumber(redis.call('GET', versionK) or '0'), 0 } end
local version = redis.call('INCR', versionK)
for _, s in ipairs(redis.call('SMEMBERS', suitesK(c))) do redis.call('DEL', queueK(c, s)) end
redis.call('DEL', kpK(c), expK(c), poolK(c), suitesK(c), lrK(c), lrsK(c))
return { version, 1 }
`,
  (i) => ({ keys: [devicesKey(i)], args: [i.base, i.client] }),
  (reply) => {
    const [version, removed] = reply as [number, number];
    return { version, removed: removed === 1 };
  },
);

/** KEYS: devices key. ARGV: base. Returns {version, {client, {suites}}…} with clients sorted. */
export const LIST_DEVICES = typedScript<UserInput, { version: number; devices: { client: string; cipherSuites: number[] }[] }>(
  "listDevices",
  `${PRELUDE}
local clients = redis.call('SMEMBERS', devicesK)
table.sort(clients)
local out = { tonumber(redis.call('GET', versionK) or '0') }
for _, c in ipairs(clients) do
  local seen, suites = {}, {}
  local function add(s)
    local n = tonumber(s)
    if not seen[n] then seen[n] = true suites[#suites + 1] = n end
  end
  for _, s in ipairs(redis.call('SMEMBERS', suitesK(c))) do add(s) end
  for _, s in ipairs(redis.call('HKEYS', lrK(c))) do add(s) end
  table.sort(suites)
  out[#out + 1] = { c, suites }
end
return out
`,
  (i) => ({ keys: [devicesKey(i)], args: [i.base] }),
  (reply) => {
    const [version, ...rows] = reply as [number, ...[string, number[]][]];
    return { version, devices: rows.map(([client, cipherSuites]) => ({ client, cipherSuites })) };
  },
);
