import { readFileSync } from "node:fs";
import { defaultConfig } from "./defaults.js";
import { redisTopology, TopologyError } from "./redis-topology.js";
import { configSchema, type Config } from "./schema.js";

export class ConfigError extends Error {
  constructor(
    readonly key: string,
    readonly problem: string,
  ) {
    super(`config error: ${key}: ${problem}`);
    this.name = "ConfigError";
  }
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Tree = { [k: string]: Json };

const ENV_PREFIX = "MLSFEDGATE_";
/** Short names for the keys operators set most. */
const ENV_ALIASES: Record<string, string> = {
  STORE: "store.kind",
  REDIS_URL: "store.redisUrl",
  REDIS_PREFIX: "store.prefix",
  REDIS_CLUSTER: "store.redisCluster",
  REDIS_SENTINEL: "store.redisSentinel",
  AUTH: "auth.mode",
  PEERS: "federation.peers",
  SIGNING_KEY_FILE: "federation.signingKeyFile",
};

function isTree(v: unknown): v is Tree {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function merge(base: Tree, over: Tree): Tree {
  const out: Tree = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    // Peers are a map chosen whole by the operator, not merged with defaults.
    out[k] = isTree(b) && isTree(v) && k !== "peers" ? merge(b, v) : v;
  }
  return out;
}

function snake(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase();
}

/** Every leaf key path → its env name: limits.bodyBytes → MLSFEDGATE_LIMITS__BODY_BYTES. */
/** Keys without a default value: settable from the environment all the same. */
const OPTIONAL_PATHS = [
  ["auth", "issuer"],
  ["auth", "audience"],
  ["auth", "jwksUrl"],
  ["auth", "publicKey"],
  ["web", "enabled"],
];
/** Optional keys whose values are JSON (booleans), not text. */
const OPTIONAL_JSON_KEYS = new Set(["web.enabled"]);

function leafPaths(tree: Tree, prefix: string[] = []): string[][] {
  return Object.entries(tree).flatMap(([k, v]) => (isTree(v) && k !== "peers" ? leafPaths(v, [...prefix, k]) : [[...prefix, k]]));
}

function setPath(tree: Tree, path: string[], value: Json): Tree {
  const [head, ...rest] = path;
  if (head === undefined) return tree;
  if (rest.length === 0) return { ...tree, [head]: value };
  const child = tree[head];
  return { ...tree, [head]: setPath(isTree(child) ? child : {}, rest, value) };
}

function parseEnvValue(raw: string, current: Json | undefined): Json {
  if (typeof current === "string" || current === undefined) {
    // Strings stay strings unless they look like JSON structures.
    if (/^[[{]/.test(raw.trim())) {
      try {
        return JSON.parse(raw) as Json;
      } catch {
        return raw;
      }
    }
    return raw;
  }
  try {
    return JSON.parse(raw) as Json;
  } catch {
    return raw;
  }
}

function getPath(tree: Tree, path: string[]): Json | undefined {
  let node: Json | undefined = tree;
  for (const p of path) node = isTree(node) ? node[p] : undefined;
  return node;
}

export interface LoadOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  overrides?: Record<string, unknown>;
}

/** defaults ← file (--config or MLSFEDGATE_CONFIG) ← MLSFEDGATE_* env ← overrides; validated and frozen. */
export function loadConfig(opts: LoadOptions = {}): Readonly<Config> {
  const env = opts.env ?? {};
  let tree = defaultConfig as unknown as Tree;
  const file = opts.file ?? env[`${ENV_PREFIX}CONFIG`];
  if (file) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, "utf8"));
    } catch (e) {
      throw new ConfigError("config", `cannot read ${file}: ${(e as Error).message}`);
    }
    if (!isTree(parsed)) throw new ConfigError("config", `${file} must hold a JSON object`);
    tree = merge(tree, parsed);
  }
  const names = new Map<string, string[]>();
  for (const path of [...leafPaths(tree), ...OPTIONAL_PATHS]) names.set(path.map(snake).join("__"), path);
  for (const [alias, dotted] of Object.entries(ENV_ALIASES)) names.set(alias, dotted.split("."));
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || raw === undefined || name === `${ENV_PREFIX}CONFIG`) continue;
    const path = names.get(name.slice(ENV_PREFIX.length));
    if (!path) {
      if (name.startsWith("MLSFEDGATE_TEST_")) continue;
      throw new ConfigError(name, "unknown setting (see docs/CONFIG.md for the names)");
    }
    const current = getPath(tree, path) ?? (OPTIONAL_JSON_KEYS.has(path.join(".")) ? false : undefined);
    tree = setPath(tree, path, parseEnvValue(raw, current));
  }
  if (opts.overrides) tree = merge(tree, opts.overrides as Tree);
  const result = configSchema.safeParse(tree);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new ConfigError(issue.path.join(".") || "config", issue.message);
  }
  const config = result.data;
  if (config.auth.mode === "jwt") {
    if (!config.auth.issuer || !config.auth.audience) {
      throw new ConfigError("auth", "jwt mode needs auth.issuer and auth.audience");
    }
    if (!config.auth.jwksUrl && !config.auth.publicKey) {
      throw new ConfigError("auth", "jwt mode needs auth.jwksUrl or auth.publicKey");
    }
  }
  if (config.auth.mode === "dev" && config.auth.devTokenTtlSeconds > config.auth.maxTokenLifetimeSeconds) {
    throw new ConfigError("auth.devTokenTtlSeconds", "must not exceed auth.maxTokenLifetimeSeconds");
  }
  if (config.limits.headersTimeoutMs > config.limits.requestTimeoutMs) {
    throw new ConfigError("limits.headersTimeoutMs", "must not exceed limits.requestTimeoutMs");
  }
  try {
    redisTopology(config.store);
  } catch (e) {
    if (e instanceof TopologyError) throw new ConfigError(e.key, e.message);
    throw e;
  }
  if (Object.hasOwn(config.federation.peers, config.domain))
    throw new ConfigError("federation.peers", "a DS cannot peer with itself");
  checkMimi(config);
  return deepFreeze(config);
}

/** A MIMI peer needs our MIMI listener (its TLS identity) and a way to trust the peer's certificate. */
function checkMimi(config: Config): void {
  const { mimi, peers } = config.federation;
  if (mimi.enabled && (!mimi.certificate || !mimi.privateKey)) {
    throw new ConfigError("federation.mimi", "enabled needs certificate and privateKey");
  }
  for (const [domain, peer] of Object.entries(peers)) {
    if (peer.protocol !== "mimi") continue;
    if (!mimi.enabled) throw new ConfigError(`federation.peers.${domain}`, "a MIMI peer needs federation.mimi.enabled");
    if (!peer.url.startsWith("https://")) throw new ConfigError(`federation.peers.${domain}.url`, "a MIMI peer needs https");
    const trust = peer.tls;
    if (!trust || trust.caCertificates.length + trust.pinnedCertificates.length === 0) {
      throw new ConfigError(`federation.peers.${domain}.tls`, "a MIMI peer needs caCertificates or pinnedCertificates");
    }
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
