import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { HttpResult, HttpSpec, RedisResult } from "../load.js";
import { createRedisStore, type RedisStore } from "../../src/store/redis.js";
import { cpuSeconds, entry, runJson, startDs, type DsProcess } from "./proc.js";
import type { RedisTarget } from "./targets.js";

export interface DsOptions {
  domain: string;
  prefix: string;
  peers?: Record<string, { url: string }>;
  port?: number;
  env?: Record<string, string>;
}

/** What every scenario gets: the private Redis, a temp dir, the run mode, and process helpers. */
export class Bench {
  private specs = 0;

  constructor(
    readonly quick: boolean,
    readonly redis: RedisTarget,
    readonly tmp: string,
    readonly log: (line: string) => void,
  ) {}

  /** Scales a count for --quick. */
  n(full: number, quick: number): number {
    return this.quick ? quick : full;
  }

  /**
   * A DS process on the real Redis store. Rate limits stay on (they cost a Redis call per request)
   * but are raised so the load itself is never refused; dev tokens; logs at warn.
   */
  ds(o: DsOptions): Promise<DsProcess> {
    return startDs(
      {
        MLSFEDGATE_HOST: "127.0.0.1",
        MLSFEDGATE_DOMAIN: o.domain,
        MLSFEDGATE_STORE: "redis",
        ...this.redis.dsEnv,
        MLSFEDGATE_REDIS_PREFIX: o.prefix,
        MLSFEDGATE_AUTH: "dev",
        MLSFEDGATE_SIGNING_KEY_FILE: join(this.tmp, `${o.domain}.jwk.json`),
        MLSFEDGATE_PEERS: JSON.stringify(o.peers ?? {}),
        MLSFEDGATE_LIMITS__RATE_LIMIT__CLIENT_REQUESTS_PER_SECOND: "10000000",
        MLSFEDGATE_LIMITS__RATE_LIMIT__PEER_REQUESTS_PER_SECOND: "10000000",
        MLSFEDGATE_LIMITS__RATE_LIMIT__CLAIMS_PER_TARGET_PER_HOUR: "10000000",
        MLSFEDGATE_LIMITS__KEY_PACKAGES_PER_CLIENT: "100000",
        ...(o.port ? { MLSFEDGATE_PORT: String(o.port) } : {}),
        ...(o.env ?? {}),
        // Profiling hook: BENCH_DS_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" npm run bench -- --only s1
      },
      process.env.BENCH_DS_NODE_ARGS?.split(" ").filter(Boolean) ?? [],
    );
  }

  /** A store client on this run's Redis (single node or cluster) for set-up and checks. */
  store(prefix: string): Promise<RedisStore> {
    return createRedisStore({ topology: this.redis.topology, prefix });
  }

  /** Writes a request pool for the load generator; returns its path. */
  pool(name: string, items: { path: string; auth: string; body: string }[]): string {
    const file = join(this.tmp, `${name}.pool.json`);
    writeFileSync(file, JSON.stringify(items));
    return file;
  }

  /** Runs the load generator (bench/load.ts) in its own process with this spec. */
  load<T>(spec: object): Promise<T> {
    return this.child<T>("bench/load.ts", spec);
  }

  /** Runs a generator script (bench/load.ts, bench/delivery-load.ts) in its own process with this spec. */
  child<T>(script: string, spec: object, timeoutMs?: number): Promise<T> {
    const file = join(this.tmp, `spec-${++this.specs}.json`);
    writeFileSync(file, JSON.stringify(spec));
    return runJson<T>([...entry(script), file], {}, timeoutMs);
  }

  http(spec: Omit<HttpSpec, "mode">): Promise<HttpResult> {
    return this.load<HttpResult>({ mode: "http", ...spec });
  }

  /** Ceiling R at a concurrency. */
  ceilingR(concurrency: number, seconds: number): Promise<RedisResult> {
    return this.load<RedisResult>({
      mode: "redis",
      url: this.redis.url,
      keyless: this.redis.kind === "cluster",
      concurrency,
      seconds,
    });
  }
}

/**
 * CPU seconds each named process (or group of processes: a cluster's nodes) used while `fn` ran
 * (from /proc; contention-proof, unlike rates).
 */
export async function withCpu<T>(
  pids: Record<string, number | undefined | (number | undefined)[]>,
  fn: () => Promise<T>,
): Promise<{ result: T; cpu: Record<string, number> }> {
  const used = (p: number | undefined | (number | undefined)[]): number =>
    Array.isArray(p) ? p.reduce<number>((a, x) => a + cpuSeconds(x), 0) : cpuSeconds(p);
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, used(pid)]));
  const result = await fn();
  const cpu = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, used(pid) - before[k]!]));
  return { result, cpu };
}

/** "DS 0.41 ms, Redis 0.12 ms" — CPU milliseconds per operation for each process. */
export function cpuPer(cpu: Record<string, number>, ops: number): string {
  return Object.entries(cpu)
    .map(([k, s]) => `${k} ${((s * 1000) / ops).toFixed(3)} ms`)
    .join(", ");
}

export function ratio(a: number, b: number): string {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return "n/a";
  return `${(a / b).toFixed(2)}×`;
}

export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return "n/a";
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function ms(n: number): string {
  if (!Number.isFinite(n)) return "n/a";
  return n < 10 ? `${n.toFixed(2)} ms` : `${n.toFixed(1)} ms`;
}
