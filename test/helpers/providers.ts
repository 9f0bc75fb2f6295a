import { randomBytes } from "node:crypto";
import { pino } from "pino";
import { DeliveryService, loadConfig, type ContextOverrides } from "../../src/index.js";
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

export async function startProvider(
  domain = "a.example",
  overrides: Record<string, unknown> = {},
  ctxOverrides: ContextOverrides = {},
): Promise<Provider> {
  const config = loadConfig({
    overrides: { domain, port: 0, logLevel: "silent", ...overrides },
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
