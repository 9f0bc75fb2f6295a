import { randomBytes } from "node:crypto";
import { pino } from "pino";
import { DeliveryService, loadConfig, type ContextOverrides } from "../../src/index.js";
import { defaultConfig } from "../../src/config/defaults.js";
import { redisTopology, type RedisTopology } from "../../src/config/redis-topology.js";
import { generateSigningJwk, signingKeyFromJwk, type SigningKey } from "../../src/federation/keys.js";

/** Like atproto's dev-env: real DS servers on 127.0.0.1 free ports, trusting each other. */
export interface Provider {
  domain: string;
  ds: DeliveryService;
  url: string;
}

export async function testKey(): Promise<SigningKey> {
  return signingKeyFromJwk(await generateSigningJwk());
}

export function redisUrl(): string {
  const url = process.env.MLSFEDGATE_TEST_REDIS_URL;
  if (!url) throw new Error("MLSFEDGATE_TEST_REDIS_URL is not set (jest global setup starts a redis-server)");
  return url;
}

export function uniquePrefix(): string {
  return `t${randomBytes(6).toString("hex")}`;
}

/** The Redis deployments the global setup starts: one node, a Cluster, a Sentinel set. */
export type RedisKind = "single" | "cluster" | "sentinel";
export const REDIS_KINDS: RedisKind[] = ["single", "cluster", "sentinel"];

function testEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (jest global setup starts the Redis deployments)`);
  return value;
}

/** The topology of one of the test Redis deployments, as the store takes it. */
export function testTopology(kind: RedisKind): RedisTopology {
  const store = { ...defaultConfig.store, redisUrl: redisUrl() };
  if (kind === "cluster") return redisTopology({ ...store, redisCluster: testEnv("MLSFEDGATE_TEST_REDIS_CLUSTER") });
  if (kind === "sentinel") return redisTopology({ ...store, redisSentinel: testEnv("MLSFEDGATE_TEST_REDIS_SENTINEL") });
  return redisTopology(store);
}

/**
 * The store the e2e tests run on when they do not choose one: MLSFEDGATE_TEST_STORE = memory
 * (default) | single | cluster | sentinel (`npm run test:topologies` runs test/e2e on each Redis).
 */
export function testStoreKind(): "memory" | RedisKind {
  const kind = process.env.MLSFEDGATE_TEST_STORE ?? "memory";
  if (kind !== "memory" && !REDIS_KINDS.includes(kind as RedisKind)) {
    throw new Error(`MLSFEDGATE_TEST_STORE=${kind}: expected memory, ${REDIS_KINDS.join(", ")}`);
  }
  return kind as "memory" | RedisKind;
}

/** The Redis deployment of tests that need Redis: MLSFEDGATE_TEST_STORE's, else the single node. */
export function testRedisKind(): RedisKind {
  const kind = testStoreKind();
  return kind === "memory" ? "single" : kind;
}

/** `store` config for a DS on one of the test Redis deployments, under a fresh prefix. */
export function redisStoreConfig(kind: RedisKind = "single", extra: Record<string, unknown> = {}): Record<string, unknown> {
  const base = { kind: "redis", redisUrl: redisUrl(), prefix: uniquePrefix(), ...extra };
  if (kind === "cluster") return { ...base, redisCluster: testEnv("MLSFEDGATE_TEST_REDIS_CLUSTER") };
  if (kind === "sentinel") return { ...base, redisSentinel: testEnv("MLSFEDGATE_TEST_REDIS_SENTINEL") };
  return base;
}

export async function startProvider(
  domain = "a.example",
  overrides: Record<string, unknown> = {},
  ctxOverrides: ContextOverrides = {},
): Promise<Provider> {
  const kind = testStoreKind();
  const store =
    overrides.store === undefined && !ctxOverrides.store && kind !== "memory" ? { store: redisStoreConfig(kind) } : {};
  const config = loadConfig({
    overrides: { domain, port: 0, logLevel: "silent", ...store, ...overrides },
  });
  const ds = await DeliveryService.create(config, {
    signingKey: ctxOverrides.signingKey ?? (await testKey()),
    logger: pino({ level: process.env.MLSFEDGATE_TEST_LOG ?? "silent" }),
    ...ctxOverrides,
  });
  await ds.start();
  return { domain, ds, url: ds.url };
}

/**
 * Several providers that peer with each other. Ports are chosen first (listen on 0, read back),
 * then each DS is configured with the others' URLs.
 */
export async function startFederation(
  domains: string[],
  overrides: (domain: string) => Record<string, unknown> = () => ({}),
  ctxOverrides: (domain: string) => ContextOverrides = () => ({}),
): Promise<Provider[]> {
  const { freePort } = await import("./global-setup.js");
  const ports = await Promise.all(domains.map(() => freePort()));
  const urlOf = (i: number) => `http://127.0.0.1:${ports[i]}`;
  return Promise.all(
    domains.map((domain, i) => {
      const peers = Object.fromEntries(domains.map((d, j) => [d, { url: urlOf(j) }]).filter(([d]) => d !== domain));
      const extra = overrides(domain);
      const fed = (extra.federation as Record<string, unknown> | undefined) ?? {};
      return startProvider(domain, { ...extra, port: ports[i], federation: { ...fed, peers } }, ctxOverrides(domain));
    }),
  );
}

export async function stopAll(providers: { ds: DeliveryService }[]): Promise<void> {
  await Promise.all(providers.map((p) => p.ds.close()));
}
