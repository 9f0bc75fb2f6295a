import { CommandDeadlines } from "./command-deadlines.js";
import type { EventEmitter } from "node:events";
import { createClient, createCluster, createSentinel, type RedisClientType } from "redis";
import type { RedisTopology } from "../config/redis-topology.js";
import { CONNECT_TIMEOUT_MS, RECONNECT_MAX_DELAY_MS } from "./lua/keys.js";

/**
 * One Redis deployment behind one interface: a single node, a Redis Cluster or a Sentinel-managed
 * master. The store issues the same commands to all three; what differs lives here: routing
 * (node-redis follows MOVED/ASK and failovers itself), pub/sub (sharded in a cluster), walking
 * every key (once per master) and WAIT (on the connection that made the write).
 */

/** The commands the store issues, typed as node-redis types them (every flavour has them). */
export type RedisCommands = Pick<
  RedisClientType,
  | "evalSha"
  | "eval"
  | "hGetAll"
  | "hmGet"
  | "zRangeByScore"
  | "zCard"
  | "zCount"
  | "sAdd"
  | "sRem"
  | "sMembers"
  | "get"
  | "set"
  | "del"
  | "ping"
  | "publish"
  | "sPublish"
>;

/** One master's connection, as the keyspace walk (SCAN) needs it. */
export interface MasterNode {
  scanIterator(options: { MATCH: string; COUNT: number }): AsyncIterable<string[]>;
  hmGet: RedisCommands["hmGet"];
  /** The persistence check (store/integrity.ts) asks each master. */
  configGet: RedisClientType["configGet"];
  info: RedisClientType["info"];
}

export type Listener = (message: string, channel: string) => void;

export interface RedisConnection {
  readonly kind: RedisTopology["kind"];
  readonly commands: RedisCommands;
  /** What the Lua scripts call to wake long-polls: SPUBLISH in a cluster (channel in the script's slot). */
  readonly publishCommand: "PUBLISH" | "SPUBLISH";
  /** The client for rate-limiter-flexible (useRedisPackage: single-key scripts and MULTIs). */
  readonly rateLimiterClient: unknown;
  subscribe(channel: string, listener: Listener): Promise<void>;
  unsubscribe(channel: string, listener: Listener): Promise<void>;
  /** A connection to each master, for what walks the whole keyspace (SCAN). */
  masters(): Promise<MasterNode[]>;
  /**
   * WAIT for `replicas` replicas on every master holding one of `keys` (once per master, in
   * parallel); returns the fewest acknowledgments any of them got.
   */
  wait(keys: string[], replicas: number, timeoutMs: number): Promise<number>;
  /**
   * Calls `listener` whenever the connection to a master is (re-)established: the client's
   * reconnect (single), any node's in a cluster, a new master after a Sentinel failover.
   */
  onReady(listener: () => void): void;
  close(): Promise<void>;
}

export interface ConnectOptions {
  connectTimeoutMs?: number;
  /** Connection errors (node-redis retries them itself once connected; commands still reject). */
  onError?: (err: Error) => void;
}

export async function connectRedis(topology: RedisTopology, opts: ConnectOptions = {}): Promise<RedisConnection> {
  const timeoutMs = opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
  const onError = opts.onError ?? (() => {});
  switch (topology.kind) {
    case "single":
      return SingleConnection.connect(topology.url, timeoutMs, onError);
    case "cluster":
      return ClusterConnection.connect(topology.rootNodes, timeoutMs, onError);
    case "sentinel":
      return SentinelConnection.connect(topology, timeoutMs, onError);
  }
}

/** Before the first connection: give up (startup must fail loudly). After: back off and retry. */
function reconnectStrategy(state: { up: boolean }) {
  return (retries: number) => (state.up ? Math.min(50 * 2 ** retries, RECONNECT_MAX_DELAY_MS) : false);
}

export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable url)";
  }
}

/** Settles `connecting` within timeoutMs or destroys what it was connecting, with one readable error. */
async function within<T>(connecting: Promise<T>, timeoutMs: number, target: string, destroy: () => unknown): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  connecting.catch(() => {}); // it may lose the race below and reject later
  try {
    return await Promise.race([
      connecting,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    void Promise.resolve()
      .then(destroy)
      .catch(() => {});
    const reason = err instanceof Error ? err.message || err.name : String(err);
    throw new Error(`Redis store: cannot connect to ${target}: ${reason}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

/** The error events each flavour emits: a cluster reports its nodes' errors apart. */
const ERROR_EVENTS: Record<RedisTopology["kind"], readonly string[]> = {
  single: ["error"],
  cluster: ["error", "node-error"],
  sentinel: ["error"],
};

/**
 * Routes the client's error events to onError and connects it within timeoutMs; then marks it up,
 * so that from now on its reconnect strategy backs off and retries instead of giving up.
 */
async function wireAndConnect(
  client: EventEmitter & { connect(): Promise<unknown>; destroy(): unknown },
  kind: RedisTopology["kind"],
  target: string,
  state: { up: boolean },
  timeoutMs: number,
  onError: (err: Error) => void,
): Promise<void> {
  for (const event of ERROR_EVENTS[kind]) client.on(event, onError);
  await within(client.connect(), timeoutMs, target, () => client.destroy());
  state.up = true;
}

/** What every flavour's connection shares: node-redis routes the commands, this holds the client. */
abstract class ClientConnection<
  C extends { withCommandOptions(options: { timeout: number }): unknown; close(): Promise<unknown> },
> {
  /** The client without node-redis's per-command timer, every command under one shared deadline sweep. */
  private readonly watched: RedisCommands;
  private readonly deadlines = new CommandDeadlines();

  protected constructor(protected readonly client: C) {
    // node-redis arms a timer and an AbortSignal for every command, which cost more node CPU than an
    // inbox append itself (measured: 1000 appends 37 ms → 12 ms without); CommandDeadlines keeps one.
    this.watched = this.deadlines.wrap(client.withCommandOptions({ timeout: 0 }) as unknown as RedisCommands);
  }

  get commands(): RedisCommands {
    return this.watched;
  }
  get rateLimiterClient(): unknown {
    return this.watched;
  }
  async close(): Promise<void> {
    this.deadlines.stop();
    await this.client.close();
  }
}

function credentials(url: string): { username?: string; password?: string; tls: boolean } {
  const u = new URL(url);
  return {
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    tls: u.protocol === "rediss:",
  };
}

async function waitOn(send: (args: string[]) => Promise<unknown>, replicas: number, timeoutMs: number): Promise<number> {
  return Number(await send(["WAIT", String(replicas), String(timeoutMs)]));
}

class SingleConnection extends ClientConnection<RedisClientType> implements RedisConnection {
  readonly kind = "single" as const;
  readonly publishCommand = "PUBLISH" as const;
  private subscriber?: Promise<RedisClientType>;

  private constructor(
    client: RedisClientType,
    private readonly timeoutMs: number,
    private readonly onError: (err: Error) => void,
  ) {
    super(client);
  }

  static async connect(url: string, timeoutMs: number, onError: (err: Error) => void): Promise<SingleConnection> {
    const state = { up: false };
    const client = createClient({ url, socket: { connectTimeout: timeoutMs, reconnectStrategy: reconnectStrategy(state) } });
    await wireAndConnect(client, "single", redactUrl(url), state, timeoutMs, onError);
    return new SingleConnection(client as RedisClientType, timeoutMs, onError);
  }

  /** Pub/sub needs its own connection (a subscribed connection issues no other commands). */
  private subscriberClient(): Promise<RedisClientType> {
    if (!this.subscriber) {
      const sub = this.client.duplicate();
      sub.on("error", this.onError);
      const ready = within(sub.connect(), this.timeoutMs, "Redis (pub/sub connection)", () => sub.destroy()).then(() => sub);
      // A failed connect is retried by the next subscriber instead of being cached.
      this.subscriber = ready.catch((err: unknown) => {
        this.subscriber = undefined;
        throw err;
      });
    }
    return this.subscriber;
  }

  async subscribe(channel: string, listener: Listener): Promise<void> {
    await (await this.subscriberClient()).subscribe(channel, listener);
  }
  async unsubscribe(channel: string, listener: Listener): Promise<void> {
    const sub = this.subscriber;
    if (sub) await (await sub).unsubscribe(channel, listener);
  }
  async masters(): Promise<MasterNode[]> {
    return [this.client as unknown as MasterNode];
  }
  wait(_keys: string[], replicas: number, timeoutMs: number): Promise<number> {
    return waitOn((args) => this.client.sendCommand(args), replicas, timeoutMs);
  }
  onReady(listener: () => void): void {
    this.client.on("ready", listener);
  }
  override async close(): Promise<void> {
    const sub = this.subscriber;
    this.subscriber = undefined;
    if (sub) await sub.then((s) => s.close()).catch(() => {});
    await super.close();
  }
}

type Cluster = ReturnType<typeof createCluster>;

class ClusterConnection extends ClientConnection<Cluster> implements RedisConnection {
  readonly kind = "cluster" as const;
  readonly publishCommand = "SPUBLISH" as const;

  static async connect(rootNodes: string[], timeoutMs: number, onError: (err: Error) => void): Promise<ClusterConnection> {
    const state = { up: false };
    const { username, password, tls } = credentials(rootNodes[0]!);
    const cluster = createCluster({
      rootNodes: rootNodes.map((url) => ({ url })),
      // Discovered nodes connect with the root nodes' credentials.
      defaults: {
        ...(username ? { username } : {}),
        ...(password ? { password } : {}),
        socket: { connectTimeout: timeoutMs, reconnectStrategy: reconnectStrategy(state), ...(tls ? { tls: true } : {}) },
      },
      // After a master dies, ask the cluster for the new slot owners within a second, not five.
      topologyRefreshOnReconnectionAttemptStrategy: 1000,
    });
    await wireAndConnect(cluster, "cluster", rootNodes.map(redactUrl).join(","), state, timeoutMs, onError);
    return new ClusterConnection(cluster as unknown as Cluster);
  }

  async subscribe(channel: string, listener: Listener): Promise<void> {
    await this.client.sSubscribe(channel, listener);
  }
  async unsubscribe(channel: string, listener: Listener): Promise<void> {
    await this.client.sUnsubscribe(channel, listener);
  }
  async masters(): Promise<MasterNode[]> {
    return Promise.all(this.client.masters.map((m) => this.client.nodeClient(m) as Promise<unknown> as Promise<MasterNode>));
  }
  async wait(keys: string[], replicas: number, timeoutMs: number): Promise<number> {
    // On the connections to the masters of the keys' slots, which made the writes. (The cluster's
    // own sendCommand would fan WAIT out to every shard, its request policy, and take the minimum.)
    const nodes = new Set(await Promise.all(keys.map((k) => this.client.getNodeClientForKey(k, false))));
    const acks = await Promise.all([...nodes].map((node) => waitOn((args) => node.sendCommand(args), replicas, timeoutMs)));
    return Math.min(...acks);
  }
  onReady(listener: () => void): void {
    this.client.on("node-ready", listener);
  }
}

type Sentinel = ReturnType<typeof createSentinel>;

class SentinelConnection extends ClientConnection<Sentinel> implements RedisConnection {
  readonly kind = "sentinel" as const;
  readonly publishCommand = "PUBLISH" as const;

  static async connect(
    topology: Extract<RedisTopology, { kind: "sentinel" }>,
    timeoutMs: number,
    onError: (err: Error) => void,
  ): Promise<SentinelConnection> {
    const state = { up: false };
    const { username, password, tls } = credentials(topology.nodeUrl);
    const socket = { connectTimeout: timeoutMs, reconnectStrategy: reconnectStrategy(state) };
    const sentinel = createSentinel({
      name: topology.name,
      sentinelRootNodes: topology.sentinels,
      // One connection to the master: WAIT then covers the write made just before it.
      masterPoolSize: 1,
      nodeClientOptions: {
        ...(username ? { username } : {}),
        ...(password ? { password } : {}),
        socket: { ...socket, ...(tls ? { tls: true } : {}) },
      },
      sentinelClientOptions: { socket },
      // Poll the sentinels for a new master every 500 ms (default 10 s) so a failover heals fast.
      scanInterval: 500,
      passthroughClientErrorEvents: true,
    });
    const target = `sentinel ${topology.name}@${topology.sentinels.map((s) => `${s.host}:${s.port}`).join(",")}`;
    await wireAndConnect(sentinel, "sentinel", target, state, timeoutMs, onError);
    return new SentinelConnection(sentinel as unknown as Sentinel);
  }

  async subscribe(channel: string, listener: Listener): Promise<void> {
    await this.client.subscribe(channel, listener);
  }
  async unsubscribe(channel: string, listener: Listener): Promise<void> {
    await this.client.unsubscribe(channel, listener as Parameters<Sentinel["unsubscribe"]>[1]);
  }
  async masters(): Promise<MasterNode[]> {
    return [this.client as unknown as MasterNode];
  }
  wait(_keys: string[], replicas: number, timeoutMs: number): Promise<number> {
    return waitOn((args) => this.client.sendCommand(false, args), replicas, timeoutMs);
  }
  onReady(listener: () => void): void {
    this.client.on("ready", listener);
    this.client.on("topology-change", (event: { type?: string }) => {
      if (event.type === "MASTER_CHANGE") listener();
    });
  }
}
