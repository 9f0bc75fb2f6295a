import { createHash } from "node:crypto";

/**
 * Lua sources live in TypeScript constants (no .lua files to locate at runtime from dist/).
 * Scripts run by EVALSHA; on NOSCRIPT (server restarted, SCRIPT FLUSH, failover) the runner falls
 * back to EVAL, which also caches the script again.
 */
export interface LuaScript {
  readonly name: string;
  readonly source: string;
  readonly sha: string;
}

export function luaScript(name: string, source: string): LuaScript {
  return { name, source, sha: createHash("sha1").update(source).digest("hex") };
}

/**
 * A script with its typed encoder and decoder, defined next to its Lua source so the argument
 * layout the Lua reads and the one TypeScript writes live in one place.
 */
export interface TypedScript<In, Out> {
  readonly lua: LuaScript;
  encode(input: In): { keys: string[]; args: string[] };
  decode(reply: unknown, input: In): Out;
}

export function typedScript<In, Out>(
  name: string,
  source: string,
  encode: (input: In) => { keys: string[]; args: string[] },
  decode: (reply: unknown, input: In) => Out,
): TypedScript<In, Out> {
  return { lua: luaScript(name, source), encode, decode };
}

/** The two node-redis calls the runner needs (kept structural so any client flavour fits). */
export interface EvalCapable {
  evalSha(sha: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
}

export async function runScript(client: EvalCapable, script: LuaScript, keys: string[], args: string[]): Promise<unknown> {
  try {
    return await client.evalSha(script.sha, { keys, arguments: args });
  } catch (err) {
    if (!(err instanceof Error && err.message.startsWith("NOSCRIPT"))) throw err;
    return client.eval(script.source, { keys, arguments: args });
  }
}

export async function callScript<In, Out>(client: EvalCapable, script: TypedScript<In, Out>, input: In): Promise<Out> {
  const { keys, args } = script.encode(input);
  return script.decode(await runScript(client, script.lua, keys, args), input);
}

/**
 * Helpers prepended to scripts. Lua numbers are doubles and both tostring() and cjson print them
 * with 14 significant digits, so integers (epochs, seqs, cursors: anything up to 2^53) are always
 * formatted with %d before they reach a Redis command or a JSON text. cjson also encodes an empty
 * table as {} — arrays are therefore assembled by hand.
 */
export const LUA_HELPERS = `
local function istr(n) return string.format('%d', n) end
local function jstr(s) return cjson.encode(s) end
local function jarr(t)
  if #t == 0 then return '[]' end
  local parts = {}
  for i = 1, #t do parts[i] = cjson.encode(t[i]) end
  return '[' .. table.concat(parts, ',') .. ']'
end
local function userOf(c)
  local slash = string.find(c, '/', 1, true)
  if slash then return string.sub(c, 1, slash - 1) end
  return c
end
local function contains(t, v)
  for i = 1, #t do if t[i] == v then return true end end
  return false
end
-- An entry's JSON with its stored recipients ('r<seq>'): a JSON list, or '~' then the roster at the
-- accept, which readers take minus the entry's sender ("exceptSender", decodeRecipients).
local function withRecipients(body, list)
  if string.sub(list, 1, 1) == '~' then
    return string.sub(body, 1, -2) .. ',"recipients":' .. string.sub(list, 2) .. ',"exceptSender":true}'
  end
  return string.sub(body, 1, -2) .. ',"recipients":' .. list .. '}'
end
`;

/**
 * A log entry as a script returned it (withRecipients): an entry stored for every member reads
 * back as the roster at its accept minus its sender, so the accept did no per-member work.
 */
export function decodeRecipients<E extends { sender: string; recipients: string[] }>(entry: E & { exceptSender?: boolean }): E {
  if (!entry.exceptSender) return entry;
  const { exceptSender: _flag, ...rest } = entry;
  return { ...rest, recipients: rest.recipients.filter((c) => c !== rest.sender) } as unknown as E;
}

/** A stored 'r<seq>' value (readEntries reads it beside the body) as the recipients of `sender`'s entry. */
export function storedRecipients(value: string, sender: string): string[] {
  if (value.startsWith("~")) return (JSON.parse(value.slice(1)) as string[]).filter((c) => c !== sender);
  return JSON.parse(value) as string[];
}
