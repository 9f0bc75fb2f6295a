import { z } from "zod";
import { IDENTITY_SCHEMES } from "../mls/identity.js";

const domain = z.string().regex(/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/, "must be a lower-case DNS-style domain");

/** A web origin exactly as browsers send it in `Origin`: scheme://host[:port], nothing more. */
const origin = z.string().refine((o) => {
  try {
    const url = new URL(o);
    return (url.protocol === "https:" || url.protocol === "http:") && url.origin === o;
  } catch {
    return false;
  }
}, "must be an origin such as https://app.example (scheme, host, optional port; no path, lower-case)");

/** PEM text, or a path to a PEM file (read at start). */
const pemSource = z.string().min(1);

const peer = z.strictObject({
  url: z.url(),
  /** Which federation binding this peer speaks: our JSON protocol or IETF MIMI (docs/MIMI.md). */
  protocol: z.enum(["fedgate", "mimi"]).default("fedgate"),
  /** MIMI peers: how their TLS certificate is trusted (CA certificates, or pinned certificates). */
  tls: z
    .strictObject({
      caCertificates: z.array(pemSource).default([]),
      pinnedCertificates: z.array(pemSource).default([]),
    })
    .optional(),
});

export const configSchema = z.strictObject({
  domain,
  host: z.string().min(1),
  port: z.number().int().min(0).max(65535),
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]),
  cipherSuites: z.array(z.number().int().min(1).max(0xffff)).min(1),
  /** CryptoProvider of the DS's own MLS checks: node:crypto ("node", faster) or ts-mls's WebCrypto default. */
  mlsCrypto: z.enum(["node", "default"]),
  /** Credential identity forms this provider's clients may use (src/mls/identity.ts, docs/INTEROP.md). */
  identity: z.strictObject({
    schemes: z
      .array(z.enum(IDENTITY_SCHEMES))
      .min(1)
      .refine((s) => new Set(s).size === s.length, "must not repeat a scheme"),
  }),
  keyPackages: z.strictObject({
    /**
     * Accept a KeyPackage uploaded in the `lastResort` slot as last-resort even without the
     * last_resort extension (implementations that cannot add it, e.g. core-crypto).
     */
    lastResortBySlot: z.boolean(),
  }),
  store: z.strictObject({
    kind: z.enum(["memory", "redis"]),
    redisUrl: z.string().regex(/^rediss?:\/\//, "must be a redis:// or rediss:// URL"),
    prefix: z.string().regex(/^[A-Za-z0-9_.-]+$/, "letters, digits, _ . - only"),
    /** Refuse to start on a store that does not persist (Redis without AOF or RDB, or the memory store). */
    requirePersistence: z.boolean(),
    /** Redis Cluster root nodes, "redis://h1:p1,redis://h2:p2" ("" = not a cluster); see redis-topology.ts. */
    redisCluster: z.string(),
    /** Sentinel set, "mymaster@h1:p1,h2:p2" ("" = no Sentinel); see redis-topology.ts. */
    redisSentinel: z.string(),
    /** WAIT for this many replicas before an accepted commit or message is acknowledged (0 = do not wait). */
    waitReplicas: z.number().int().min(0).max(16),
    /** How long WAIT may block; fewer replicas by then answers 503 unavailable (a retry is safe). */
    waitTimeoutMs: z.number().int().min(1).max(60000),
    /** Trim the logs of groups ordered here (peers learn `logStart`): memory store once delivered, both after logRetentionMs. */
    trimHubLogs: z.boolean(),
    /** A log entry of a group ordered here is dropped this long after its accept (with trimHubLogs). */
    logRetentionMs: z.number().int().min(60_000),
    /** Redis store: bytes of log entry bodies each process keeps for members' inbox reads (0 = none). */
    entryCacheBytes: z
      .number()
      .int()
      .min(0)
      .max(2 ** 40),
  }),
  auth: z.strictObject({
    mode: z.enum(["dev", "jwt"]),
    issuer: z.string().optional(),
    audience: z.string().optional(),
    jwksUrl: z.url().optional(),
    /** SPKI PEM public key, or a path to one. */
    publicKey: z.string().optional(),
    algorithms: z.array(z.string()).min(1),
    devTokenTtlSeconds: z.number().int().positive(),
    /** Longest accepted exp − iat (or exp − now) of a client token; tokens without exp are refused. */
    maxTokenLifetimeSeconds: z.number().int().positive(),
    /** How long a replica trusts its cached answer to "was this device deleted?" (0 = ask the store every request). */
    revocationCacheMs: z.number().int().min(0),
  }),
  federation: z.strictObject({
    /** Path of the JWK file (private key) that signs this DS's federation requests. */
    signingKeyFile: z.string(),
    /** Generate the key on first start when the file is missing (demo and dev setups). */
    generateKeyIfMissing: z.boolean(),
    /** Extra public JWKs still accepted from this DS during a key rotation (published in discovery). */
    previousPublicKeys: z.array(z.record(z.string(), z.unknown())),
    peers: z.record(domain, peer),
    tokenTtlSeconds: z.number().int().min(1).max(60),
    requestTimeoutMs: z.number().int().positive(),
    discoveryCacheSeconds: z.number().int().positive(),
    /** The MIMI listener (mutually authenticated TLS), for peers with protocol "mimi". */
    mimi: z.strictObject({
      enabled: z.boolean(),
      host: z.string().min(1),
      port: z.number().int().min(0).max(65535),
      /** This provider's certificate (PEM or path); its SAN must name `domain`. */
      certificate: z.string(),
      /** The certificate's private key (PEM or path). */
      privateKey: z.string(),
      /** Base URL published in the MIMI directory; empty = https://<Host header>. */
      publicUrl: z.string(),
    }),
    outbox: z.strictObject({
      batchSize: z.number().int().min(1).max(1000),
      retryBaseMs: z.number().int().positive(),
      retryMaxMs: z.number().int().positive(),
      pollMs: z.number().int().positive(),
    }),
  }),
  cors: z.strictObject({
    /** Origins whose pages may call the client API (/v1) from a browser; "*" allows any (development). */
    origins: z.union([z.literal("*"), z.array(origin)]),
  }),
  web: z.strictObject({
    /** Serve the web messenger at /app/; unset = on exactly when auth.mode is dev (see webEnabled). */
    enabled: z.boolean().optional(),
  }),
  limits: z.strictObject({
    bodyBytes: z.number().int().positive(),
    messageBytes: z.number().int().positive(),
    keyPackageBytes: z.number().int().positive(),
    groupInfoBytes: z.number().int().positive(),
    keyPackagesPerClient: z.number().int().positive(),
    keyPackagesPerUpload: z.number().int().positive(),
    /** A claim that leaves a device this many pool KeyPackages or fewer sends it a key_packages_low notice. */
    keyPackagesLowWater: z.number().int().min(0),
    maxKeyPackageLifetimeSeconds: z.number().int().positive(),
    clockSkewSeconds: z.number().int().min(0),
    inboxPageSize: z.number().int().positive(),
    maxWaitMs: z.number().int().min(0),
    leaseMaxTtlMs: z.number().int().positive(),
    groupsLogPageSize: z.number().int().positive(),
    /** Deepest JSON nesting of a request body (checked by a scan before JSON.parse). */
    jsonMaxDepth: z.number().int().min(2).max(1000),
    /** The request headers must arrive within this → 408 request_timeout. */
    headersTimeoutMs: z.number().int().positive(),
    /** The whole request (headers and body) must arrive within this → 408 request_timeout. */
    requestTimeoutMs: z.number().int().positive(),
    /** Open TCP connections per process; more are closed at accept. */
    maxConnections: z.number().int().positive(),
    /** Concurrent SSE inbox streams per client and replica → 429 stream_limit. */
    sseStreamsPerClient: z.number().int().positive(),
    /** Concurrent inbox long-polls (waitMs > 0) per client and replica → 429 stream_limit. */
    longPollsPerClient: z.number().int().positive(),
    rateLimit: z.strictObject({
      clientRequestsPerSecond: z.number().int().positive(),
      peerRequestsPerSecond: z.number().int().positive(),
      claimsPerTargetPerHour: z.number().int().positive(),
      /** Claims per hour one peer domain may make, over all its requesters and target users. */
      claimsPerPeerPerHour: z.number().int().positive(),
    }),
  }),
});

export type Config = z.infer<typeof configSchema>;

/** Whether this DS serves the web messenger at /app/: `web.enabled`, or by default only with dev auth. */
export function webEnabled(config: Readonly<Config>): boolean {
  return config.web.enabled ?? config.auth.mode === "dev";
}
