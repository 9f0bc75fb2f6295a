import { pino, type Logger } from "pino";
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract } from "rate-limiter-flexible";
import { redisTopology } from "./config/redis-topology.js";
import type { Config } from "./config/schema.js";
import { DeviceNotifier } from "./domain/devices.js";
import { Dispatcher } from "./domain/fanout.js";
import { Groups, type GroupHooks } from "./domain/groups.js";
import { Inbox } from "./domain/inbox.js";
import { DeviceRevocations } from "./domain/revocations.js";
import { KeyDirectory } from "./domain/key-directory.js";
import { ReplicaSync } from "./domain/replica.js";
import { systemClock, type Clock, type PeerGateway } from "./domain/types.js";
import { FederationGateway } from "./federation/gateway.js";
import { MimiClient } from "./federation/mimi/client.js";
import { MimiDelivery } from "./federation/mimi/delivery.js";
import { MimiKeys } from "./federation/mimi/envelope.js";
import { MimiGateway } from "./federation/mimi/gateway.js";
import { loadMimiTls, type MimiTls } from "./federation/mimi/tls.js";
import { protocolRouter } from "./federation/protocols.js";
import { loadSigningKey, type SigningKey } from "./federation/keys.js";
import { OutboxWorker } from "./federation/outbox.js";
import { PeerClient } from "./federation/peer-client.js";
import { PeerRequestAuth } from "./federation/service-auth.js";
import { ClientAuth } from "./http/client-auth.js";
import { Metrics } from "./metrics.js";
import { useMlsCrypto } from "./mls/suites.js";
import { StoreIntegrity } from "./store/integrity.js";
import { MemoryStore } from "./store/memory.js";
import type { Store } from "./store/port.js";
import type { RedisStore } from "./store/redis.js";

export interface ContextOverrides {
  store?: Store;
  clock?: Clock;
  logger?: Logger;
  signingKey?: SigningKey;
  hooks?: GroupHooks;
  /** Register default process metrics (off when several DSs share a process). */
  processMetrics?: boolean;
}

/** The MIMI binding's parts (docs/MIMI.md), present when `federation.mimi.enabled`. */
export interface MimiContext {
  tls: MimiTls;
  client: MimiClient;
  keys: MimiKeys;
}

export interface RateLimiters {
  client: RateLimiterAbstract;
  peer: RateLimiterAbstract;
  claims: RateLimiterAbstract;
  /** Federated claims per peer domain (over all its requesters and target users). */
  peerClaims: RateLimiterAbstract;
}

/** Every part the composition root builds, by name. */
export interface AppContextParts {
  config: Readonly<Config>;
  store: Store;
  /** False when the store came from the overrides: its owner closes it. */
  ownsStore: boolean;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  signingKey: SigningKey;
  peerClient: PeerClient;
  peers: PeerGateway;
  /** Inbound federation authentication (token, body hash, jti cache). */
  peerAuth: PeerRequestAuth;
  auth: ClientAuth;
  keys: KeyDirectory;
  groups: Groups;
  inbox: Inbox;
  dispatcher: Dispatcher;
  replica: ReplicaSync;
  outbox: OutboxWorker;
  devices: DeviceNotifier;
  limiters: RateLimiters;
  revocations: DeviceRevocations;
  /** Store reset detection (marker, reset flag) and the persistence report. */
  integrity: StoreIntegrity;
  /** The MIMI binding (issue 13), when enabled. */
  mimi?: MimiContext;
}

/** Named options of AppContext.fromConfig (atproto style): tests replace parts through `overrides`. */
export interface AppContextOptions {
  overrides?: ContextOverrides;
}

/** The one composition root: builds every adapter and domain service from the config. */
export class AppContext {
  readonly config: Readonly<Config>;
  readonly store: Store;
  readonly ownsStore: boolean;
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly signingKey: SigningKey;
  readonly peerClient: PeerClient;
  readonly peers: PeerGateway;
  readonly peerAuth: PeerRequestAuth;
  readonly auth: ClientAuth;
  readonly keys: KeyDirectory;
  readonly groups: Groups;
  readonly inbox: Inbox;
  readonly dispatcher: Dispatcher;
  readonly replica: ReplicaSync;
  readonly outbox: OutboxWorker;
  readonly devices: DeviceNotifier;
  readonly limiters: RateLimiters;
  readonly revocations: DeviceRevocations;
  readonly integrity: StoreIntegrity;
  readonly mimi?: MimiContext;

  private constructor(parts: AppContextParts) {
    this.config = parts.config;
    this.store = parts.store;
    this.ownsStore = parts.ownsStore;
    this.clock = parts.clock;
    this.log = parts.log;
    this.metrics = parts.metrics;
    this.signingKey = parts.signingKey;
    this.peerClient = parts.peerClient;
    this.peers = parts.peers;
    this.peerAuth = parts.peerAuth;
    this.auth = parts.auth;
    this.keys = parts.keys;
    this.groups = parts.groups;
    this.inbox = parts.inbox;
    this.dispatcher = parts.dispatcher;
    this.replica = parts.replica;
    this.outbox = parts.outbox;
    this.devices = parts.devices;
    this.limiters = parts.limiters;
    this.revocations = parts.revocations;
    this.integrity = parts.integrity;
    this.mimi = parts.mimi;
  }

  static async fromConfig(config: Readonly<Config>, { overrides = {} }: AppContextOptions = {}): Promise<AppContext> {
    const log = overrides.logger ?? pino({ level: config.logLevel, base: { domain: config.domain } });
    useMlsCrypto(config.mlsCrypto);
    const clock = overrides.clock ?? systemClock;
    const metrics = new Metrics(overrides.processMetrics ?? false);
    const signingKey =
      overrides.signingKey ?? (await loadSigningKey(config.federation.signingKeyFile, config.federation.generateKeyIfMissing));
    const ownsStore = !overrides.store;
    const store: Store =
      overrides.store ??
      (config.store.kind === "redis"
        ? await (
            await import("./store/redis.js")
          ).createRedisStore({
            topology: redisTopology(config.store),
            prefix: config.store.prefix,
            waitReplicas: config.store.waitReplicas,
            waitTimeoutMs: config.store.waitTimeoutMs,
            entryCacheBytes: config.store.entryCacheBytes,
            clock,
          })
        : new MemoryStore({ clock, trimHubLogs: config.store.trimHubLogs, retentionMs: config.store.logRetentionMs }));
    const peerClient = new PeerClient({
      domain: config.domain,
      peers: config.federation.peers,
      key: signingKey,
      tokenTtlSeconds: config.federation.tokenTtlSeconds,
      timeoutMs: config.federation.requestTimeoutMs,
      discoveryCacheSeconds: config.federation.discoveryCacheSeconds,
      maxResponseBytes: Math.max(config.limits.bodyBytes, 64 * 1024 * 1024),
      clock,
      onRequest: (peer, path) =>
        metrics.s2sRequests.inc({ peer, path: path.replace(/\/groups\/[^/?]+/, "/groups/:id").split("?")[0] }),
    });
    const mimi = makeMimi(config, clock, (peer, endpoint) => metrics.s2sRequests.inc({ peer, path: `mimi:${endpoint}` }));
    const keyPolicy = {
      allowedSuites: config.cipherSuites,
      maxLifetimeSeconds: config.limits.maxKeyPackageLifetimeSeconds,
      maxBytes: config.limits.keyPackageBytes,
      clockSkewSeconds: config.limits.clockSkewSeconds,
      identitySchemes: config.identity.schemes,
    };
    const mimiGateway =
      mimi &&
      new MimiGateway(
        mimi.client,
        store,
        mimi.keys,
        {
          messageBytes: config.limits.messageBytes,
          groupInfoBytes: config.limits.groupInfoBytes,
          keyPackageBytes: config.limits.keyPackageBytes,
        },
        keyPolicy,
        clock,
      );
    const peers = protocolRouter(new FederationGateway(peerClient), mimiGateway, (d) => !!mimi?.client.speaksMimi(d));
    const auth = await ClientAuth.create(config, clock);
    const outbox = new OutboxWorker(
      store,
      peerClient,
      config.federation.outbox,
      log.child({ part: "outbox" }),
      (peer, count, lagMs) => {
        metrics.delivered.inc({ peer }, count);
        metrics.deliveryLag.observe({ peer }, lagMs / 1000);
      },
      overrides.hooks?.tamperDelivery,
      (peer, count) => metrics.refused.inc({ peer }, count),
      mimi && new MimiDelivery(config.domain, mimi.client, store, clock),
      clock,
    );
    const dispatcher = new Dispatcher(config.domain, store, outbox, log.child({ part: "fanout" }));
    const replica = new ReplicaSync(
      config.domain,
      store,
      peers,
      dispatcher,
      log.child({ part: "replica" }),
      { onCommitConflict: () => metrics.commitConflicts.inc() },
      clock,
    );
    const devices = new DeviceNotifier(config.domain, store, peers, log.child({ part: "devices" }));
    const { limits } = config;
    // A deletion must outlive every token issued before it: the longest lifetime any token may have.
    const tokenLifetimeS = Math.max(config.auth.maxTokenLifetimeSeconds, config.auth.devTokenTtlSeconds);
    const revocations = new DeviceRevocations(store, clock, tokenLifetimeS * 1000 + 60_000, config.auth.revocationCacheMs);
    const keys = new KeyDirectory(
      config.domain,
      store,
      {
        allowedSuites: config.cipherSuites,
        maxLifetimeSeconds: limits.maxKeyPackageLifetimeSeconds,
        maxBytes: limits.keyPackageBytes,
        clockSkewSeconds: limits.clockSkewSeconds,
        identitySchemes: config.identity.schemes,
        lastResortBySlot: config.keyPackages.lastResortBySlot,
        perClient: limits.keyPackagesPerClient,
        perUpload: limits.keyPackagesPerUpload,
        lowWater: limits.keyPackagesLowWater,
      },
      clock,
      peers,
      (list, changed) => devices.localChange(list, changed),
      revocations,
    );
    const groups = new Groups(
      config.domain,
      store,
      {
        messageBytes: limits.messageBytes,
        groupInfoBytes: limits.groupInfoBytes,
        leaseMaxTtlMs: limits.leaseMaxTtlMs,
        logPageSize: limits.groupsLogPageSize,
        allowedSuites: config.cipherSuites,
      },
      clock,
      peers,
      dispatcher,
      replica,
      (domain) => peerClient.isPeer(domain),
    );
    const inbox = new Inbox(store, limits.inboxPageSize, limits.maxWaitMs);
    const limiters = makeLimiters(config, store);
    const peerAuth = new PeerRequestAuth(config.domain, peerClient, store, clock);
    return new AppContext({
      config,
      store,
      ownsStore,
      clock,
      log,
      metrics,
      signingKey,
      peerClient,
      peers,
      peerAuth,
      auth,
      keys,
      groups,
      inbox,
      dispatcher,
      replica,
      outbox,
      devices,
      limiters,
      revocations,
      integrity: new StoreIntegrity(store, clock, log.child({ part: "store" })),
      mimi,
    });
  }

  async close(): Promise<void> {
    this.integrity.stop();
    await this.outbox.stop();
    await this.peerClient.close();
    await this.mimi?.client.close();
    if (this.ownsStore) await this.store.close();
  }
}

function makeMimi(
  config: Readonly<Config>,
  clock: Clock,
  onRequest: (peer: string, endpoint: string) => void,
): MimiContext | undefined {
  const tls = loadMimiTls(config);
  if (!tls) return undefined;
  const client = new MimiClient({
    domain: config.domain,
    peers: config.federation.peers,
    tls,
    timeoutMs: config.federation.requestTimeoutMs,
    maxResponseBytes: Math.max(config.limits.bodyBytes, 64 * 1024 * 1024),
    directoryCacheSeconds: config.federation.discoveryCacheSeconds,
    clock,
    onRequest,
  });
  return { tls, client, keys: new MimiKeys() };
}

/**
 * rate-limiter-flexible's increment script with fewer commands in the common case (one INCRBY for a
 * request within the limit, instead of SET NX + INCRBY + PTTL on every request): the TTL is set
 * when the window's first request creates the key, and read only for a refusal, the one answer that
 * reports it (Retry-After). ARGV: points to consume, window seconds, the limit.
 */
const RATE_LIMIT_INCR_LUA = `
local consumed = redis.call('incrby', KEYS[1], ARGV[1])
if consumed == tonumber(ARGV[1]) then
  redis.call('expire', KEYS[1], ARGV[2])
  return {consumed, 1000 * ARGV[2]}
end
if consumed <= tonumber(ARGV[3]) then return {consumed, 0} end
local ttl = redis.call('pttl', KEYS[1])
if ttl == -1 then
  redis.call('expire', KEYS[1], ARGV[2])
  ttl = 1000 * ARGV[2]
end
return {consumed, ttl}
`;

function makeLimiters(config: Readonly<Config>, store: Store): RateLimiters {
  const rl = config.limits.rateLimit;
  const redis = store.kind === "redis" ? (store as RedisStore).rateLimiterClient : undefined;
  const make = (keyPrefix: string, points: number, duration: number): RateLimiterAbstract =>
    redis
      ? new RateLimiterRedis({
          storeClient: redis,
          useRedisPackage: true,
          keyPrefix: `${config.store.prefix}:rl:${keyPrefix}`,
          points,
          duration,
          customIncrTtlLuaScript: RATE_LIMIT_INCR_LUA,
        })
      : new RateLimiterMemory({ keyPrefix, points, duration });
  return {
    client: make("client", rl.clientRequestsPerSecond, 1),
    peer: make("peer", rl.peerRequestsPerSecond, 1),
    claims: make("claims", rl.claimsPerTargetPerHour, 3600),
    peerClaims: make("peerclaims", rl.claimsPerPeerPerHour, 3600),
  };
}
