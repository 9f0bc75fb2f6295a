/**
 * The load generator: always its own process (bench/run.ts spawns it), so its CPU is not the
 * server's event loop. Reads a JSON spec file (argv[2]), runs, prints one JSON line of results.
 *
 *   http           autocannon against one URL; every request takes the next body of a pool
 *                  (distinct MLS bytes: the DS dedupes identical submissions)
 *   redis          ceiling R: node-redis EVALSHA of a trivial script at a given concurrency
 *   commits        the commit race through HTTP: committers against one or more DS replicas
 *   store-commits  the same race on the store's ordering step (RedisStore.submit) directly
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import autocannon from "autocannon";
import { createClient } from "redis";
import { Agent, request } from "undici";
import { validateKeyPackage } from "../src/mls/key-package.js";
import { useMlsCrypto, type MlsCryptoKind } from "../src/mls/suites.js";
import type { RedisTopology } from "../src/config/redis-topology.js";
import { createRedisStore } from "../src/store/redis.js";
import { commitFramed } from "./lib/framed.js";
import { Samples, summarize, type Latency } from "./lib/stats.js";

export interface HttpSpec {
  mode: "http";
  url: string;
  method: "POST" | "GET";
  /** JSON file: [{path, auth, body}] — used in order, each once. */
  pool: string;
  connections: number;
  /** Requests to send (≤ pool size). */
  amount: number;
  /** Hard stop. */
  maxSeconds: number;
  warmup?: number;
}

export interface HttpResult {
  loadCpuSeconds?: number;
  sent: number;
  byStatus: Record<string, number>;
  seconds: number;
  okPerSecond: number;
  latency: Latency;
  errors: number;
  timeouts: number;
}

export interface RedisSpec {
  mode: "redis";
  url: string;
  /** No key (a cluster node would answer MOVED for a key of another node's slot). */
  keyless?: boolean;
  concurrency: number;
  seconds: number;
}

export interface RedisResult {
  loadCpuSeconds?: number;
  ops: number;
  seconds: number;
  opsPerSecond: number;
  latency: Latency;
}

export interface CommitSpec {
  mode: "commits" | "store-commits";
  /** commits: DS base URLs (committer i uses urls[i % n]); store-commits: the Redis URL. */
  urls: string[];
  /** store-commits: the Redis deployment (a cluster), instead of urls[0]. */
  topology?: RedisTopology;
  redisPrefix?: string;
  committers: { client: string; token?: string }[];
  groups: { groupId: string; groupIdBytes: string }[];
  attempts: number;
  maxSeconds: number;
}

export interface CommitResult {
  loadCpuSeconds?: number;
  attempts: number;
  accepted: number;
  rejected: number;
  locked: number;
  otherErrors: Record<string, number>;
  seconds: number;
  latency: { accepted: Latency; rejected: Latency };
  /** group → epochs this process saw accepted (for the double-accept check). */
  acceptedEpochs: Record<string, number[]>;
}

async function runHttp(spec: HttpSpec): Promise<HttpResult> {
  const pool = JSON.parse(readFileSync(spec.pool, "utf8")) as { path: string; auth: string; body: string }[];
  const amount = Math.min(spec.amount, pool.length);
  let next = 0;
  const samples = new Samples();
  const byStatus: Record<string, number> = {};
  const started = process.hrtime.bigint();
  let lastResponse = started;
  const instance = autocannon({
    url: spec.url,
    connections: Math.min(spec.connections, amount),
    amount,
    timeout: 30,
    requests: [
      {
        method: spec.method,
        setupRequest: (req: Record<string, unknown>) => {
          const item = pool[next++ % pool.length]!;
          return {
            ...req,
            method: spec.method,
            path: item.path,
            headers: { "content-type": "application/json", authorization: `Bearer ${item.auth}` },
            body: item.body,
          };
        },
      },
    ],
  });
  instance.on("response", (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
    byStatus[statusCode] = (byStatus[statusCode] ?? 0) + 1;
    if (statusCode >= 200 && statusCode < 300) samples.push(responseTime);
    lastResponse = process.hrtime.bigint();
  });
  const watchdog = setTimeout(() => instance.stop(), spec.maxSeconds * 1000);
  const result = await instance;
  clearTimeout(watchdog);
  const seconds = Number(lastResponse - started) / 1e9;
  const ok = Object.entries(byStatus)
    .filter(([s]) => s.startsWith("2"))
    .reduce((a, [, n]) => a + n, 0);
  return {
    sent: Object.values(byStatus).reduce((a, n) => a + n, 0),
    byStatus,
    seconds,
    okPerSecond: ok / seconds,
    latency: summarize(samples.values()),
    errors: result.errors,
    timeouts: result.timeouts,
  };
}

const TRIVIAL = "return 1";

async function runRedis(spec: RedisSpec): Promise<RedisResult> {
  const client = createClient({ url: spec.url });
  await client.connect();
  const sha = await client.scriptLoad(TRIVIAL);
  const keys = spec.keyless ? [] : ["bench:r"];
  const samples = new Samples();
  let ops = 0;
  // Warm-up (connection, JIT) outside the measurement.
  await Promise.all(Array.from({ length: spec.concurrency }, () => client.evalSha(sha, { keys, arguments: [] })));
  const start = performance.now();
  const until = start + spec.seconds * 1000;
  await Promise.all(
    Array.from({ length: spec.concurrency }, async () => {
      while (performance.now() < until) {
        const t = performance.now();
        await client.evalSha(sha, { keys, arguments: [] });
        samples.push(performance.now() - t);
        ops++;
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  await client.close();
  return { ops, seconds, opsPerSecond: ops / seconds, latency: summarize(samples.values()) };
}

/**
 * Committers race: each attempt picks a random group and submits a commit framed at the epoch the
 * committer last heard of for that group (its own answers: 201 → new epoch, 409 → expectedEpoch).
 * Every attempt carries distinct bytes (fresh random ciphertext), so none is a retry.
 */
async function runCommits(spec: CommitSpec): Promise<CommitResult> {
  const acceptedEpochs: Record<string, number[]> = {};
  const otherErrors: Record<string, number> = {};
  const okLat = new Samples();
  const badLat = new Samples();
  let attempts = 0;
  let accepted = 0;
  let rejected = 0;
  let locked = 0;
  const store =
    spec.mode === "store-commits"
      ? await createRedisStore({
          ...(spec.topology ? { topology: spec.topology } : { url: spec.urls[0]! }),
          prefix: spec.redisPrefix!,
        })
      : undefined;
  const agent = new Agent({
    connections: Math.ceil(spec.committers.length / Math.max(1, spec.urls.length)) + 4,
    keepAliveTimeout: 60_000,
  });
  const start = performance.now();
  const until = start + spec.maxSeconds * 1000;
  await Promise.all(
    spec.committers.map(async (c, i) => {
      const known = new Map<string, number>();
      const base = spec.urls[i % spec.urls.length]!;
      while (attempts < spec.attempts && performance.now() < until) {
        attempts++;
        const g = spec.groups[Math.floor(Math.random() * spec.groups.length)]!;
        const epoch = known.get(g.groupId) ?? 0;
        const bytes = commitFramed(Buffer.from(g.groupIdBytes, "base64url"), epoch);
        const t = performance.now();
        let outcome: { ok: true; epoch: number } | { ok: false; code: string; expectedEpoch?: number };
        if (store) {
          const message = Buffer.from(bytes).toString("base64url");
          const r = await store.submit(
            g.groupId,
            {
              kind: "commit",
              sender: c.client,
              epoch,
              sha256: createHash("sha256").update(bytes).digest("hex"),
              message,
              added: [],
              removed: [],
            },
            Date.now(),
          );
          outcome = r.ok
            ? { ok: true, epoch: r.epoch }
            : { ok: false, code: r.code, ...(r.code === "stale_epoch" ? { expectedEpoch: r.expectedEpoch } : {}) };
        } else {
          const res = await request(`${base}/v1/groups/${g.groupId}/commits`, {
            method: "POST",
            dispatcher: agent,
            headers: { "content-type": "application/json", authorization: `Bearer ${c.token}` },
            body: JSON.stringify({ commit: Buffer.from(bytes).toString("base64url") }),
          });
          const body = (await res.body.json()) as { epoch?: number; error?: { code: string; expectedEpoch?: number } };
          outcome =
            res.statusCode === 201
              ? { ok: true, epoch: body.epoch! }
              : {
                  ok: false,
                  code: body.error?.code ?? `http_${res.statusCode}`,
                  ...(body.error?.expectedEpoch !== undefined ? { expectedEpoch: body.error.expectedEpoch } : {}),
                };
        }
        const dt = performance.now() - t;
        if (outcome.ok) {
          accepted++;
          okLat.push(dt);
          known.set(g.groupId, outcome.epoch);
          (acceptedEpochs[g.groupId] ??= []).push(outcome.epoch - 1);
        } else if (outcome.code === "stale_epoch") {
          rejected++;
          badLat.push(dt);
          known.set(g.groupId, outcome.expectedEpoch!);
        } else if (outcome.code === "group_locked") {
          locked++;
        } else {
          otherErrors[outcome.code] = (otherErrors[outcome.code] ?? 0) + 1;
        }
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  await agent.close();
  await store?.close();
  return {
    attempts,
    accepted,
    rejected,
    locked,
    otherErrors,
    seconds,
    latency: { accepted: summarize(okLat.values()), rejected: summarize(badLat.values()) },
    acceptedEpochs,
  };
}

export interface ValidateSpec {
  mode: "kp-validate";
  /** JSON file: [{client, keyPackage}] */
  pool: string;
  providers: MlsCryptoKind[];
  /** Seconds per provider and round. */
  seconds: number;
  rounds: number;
}

export interface ValidateResult {
  /** provider → validations per second of one thread (wall clock), one entry per round. */
  perSecond: Record<string, number[]>;
  /** provider → validations per CPU second of the process (contention-proof "per core"), per round. */
  perCpuSecond: Record<string, number[]>;
  /** provider → median microseconds per validation. */
  medianMicros: Record<string, number>;
}

/** DS KeyPackage validation (src/mls/key-package.ts) in a loop on one thread, alternating providers. */
async function runValidate(spec: ValidateSpec): Promise<ValidateResult> {
  const pool = (JSON.parse(readFileSync(spec.pool, "utf8")) as { client: string; keyPackage: string }[]).map((p) => ({
    client: p.client,
    bytes: Buffer.from(p.keyPackage, "base64url"),
  }));
  const policy = {
    allowedSuites: [1, 2, 3],
    maxLifetimeSeconds: 90 * 86400,
    maxBytes: 8192,
    clockSkewSeconds: 300,
    identitySchemes: ["fedgate"] as const,
  };
  const now = Math.floor(Date.now() / 1000);
  const perSecond: Record<string, number[]> = {};
  const perCpuSecond: Record<string, number[]> = {};
  const micros: Record<string, number[]> = {};
  for (let round = 0; round < spec.rounds + 1; round++) {
    for (const provider of spec.providers) {
      useMlsCrypto(provider);
      const start = performance.now();
      const cpu0 = process.cpuUsage();
      const until = start + (round === 0 ? 500 : spec.seconds * 1000); // round 0: warm-up
      let n = 0;
      while (performance.now() < until) {
        const p = pool[n % pool.length]!;
        const t = performance.now();
        await validateKeyPackage(p.bytes, p.client, policy, now);
        if (round > 0) (micros[provider] ??= []).push((performance.now() - t) * 1000);
        n++;
      }
      const used = process.cpuUsage(cpu0);
      if (round > 0) {
        (perSecond[provider] ??= []).push(n / ((performance.now() - start) / 1000));
        (perCpuSecond[provider] ??= []).push(n / ((used.user + used.system) / 1e6));
      }
    }
  }
  const medianMicros = Object.fromEntries(Object.entries(micros).map(([k, v]) => [k, summarize(v).p50]));
  return { perSecond, perCpuSecond, medianMicros };
}

async function main(): Promise<void> {
  const spec = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as HttpSpec | RedisSpec | CommitSpec | ValidateSpec;
  let result: object;
  const cpu = process.cpuUsage();
  if (spec.mode === "http") result = await runHttp(spec);
  else if (spec.mode === "redis") result = await runRedis(spec);
  else if (spec.mode === "kp-validate") result = await runValidate(spec);
  else result = await runCommits(spec);
  const used = process.cpuUsage(cpu);
  // The generator's own CPU seconds for the run (set-up such as reading the pool included).
  process.stdout.write(JSON.stringify({ ...result, loadCpuSeconds: (used.user + used.system) / 1e6 }) + "\n");
}

main().catch((e: unknown) => {
  process.stderr.write(`load: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
