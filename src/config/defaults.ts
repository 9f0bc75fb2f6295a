import type { Config } from "./schema.js";

/** Built-in defaults: a working single DS on loopback, memory store, dev tokens. config/default.json mirrors this. */
export const defaultConfig: Config = {
  domain: "localhost",
  host: "127.0.0.1",
  port: 7100,
  logLevel: "info",
  cipherSuites: [1, 2, 3],
  mlsCrypto: "node",
  store: { kind: "memory", redisUrl: "redis://127.0.0.1:6379", prefix: "mlsfg" },
  auth: {
    mode: "dev",
    algorithms: ["EdDSA", "ES256", "RS256"],
    devTokenTtlSeconds: 86400,
  },
  federation: {
    signingKeyFile: "config/keys/federation.jwk.json",
    generateKeyIfMissing: true,
    previousPublicKeys: [],
    peers: {},
    tokenTtlSeconds: 60,
    requestTimeoutMs: 5000,
    discoveryCacheSeconds: 300,
    outbox: { batchSize: 100, retryBaseMs: 200, retryMaxMs: 30000, pollMs: 1000 },
  },
  limits: {
    bodyBytes: 1048576,
    messageBytes: 262144,
    keyPackageBytes: 8192,
    groupInfoBytes: 524288,
    keyPackagesPerClient: 200,
    keyPackagesPerUpload: 100,
    maxKeyPackageLifetimeSeconds: 7776000,
    clockSkewSeconds: 300,
    inboxPageSize: 500,
    maxWaitMs: 30000,
    leaseMaxTtlMs: 30000,
    groupsLogPageSize: 1000,
    rateLimit: { clientRequestsPerSecond: 200, peerRequestsPerSecond: 2000, claimsPerTargetPerHour: 600 },
  },
};
