import type { Config } from "./schema.js";

/**
 * Which Redis deployment the store talks to, parsed once from `store.*`:
 * - single: one node (`store.redisUrl`, MLSFEDGATE_REDIS_URL);
 * - cluster: Redis Cluster from its root nodes (`store.redisCluster`, MLSFEDGATE_REDIS_CLUSTER =
 *   "redis://h1:p1,redis://h2:p2"; credentials and TLS inside each URL);
 * - sentinel: the master a Sentinel set names (`store.redisSentinel`, MLSFEDGATE_REDIS_SENTINEL =
 *   "mymaster@h1:p1,h2:p2"); the data nodes' credentials and TLS come from `store.redisUrl`.
 */
export type RedisTopology =
  | { kind: "single"; url: string }
  | { kind: "cluster"; rootNodes: string[] }
  | {
      kind: "sentinel";
      name: string;
      sentinels: { host: string; port: number }[];
      /** username/password/TLS for the master and replicas (from store.redisUrl). */
      nodeUrl: string;
    };

/** Thrown with the config key at fault; load.ts turns it into a ConfigError. */
export class TopologyError extends Error {
  constructor(
    readonly key: string,
    problem: string,
  ) {
    super(problem);
  }
}

const REDIS_URL = /^rediss?:\/\//;
const MASTER_NAME = /^[A-Za-z0-9_.-]+$/;

function hostPort(text: string, key: string): { host: string; port: number } {
  // [::1]:26379 or host:26379
  const m = /^(\[[0-9a-fA-F:]+\]|[^:[\]\s]+):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new TopologyError(key, `${JSON.stringify(text)} is not host:port`);
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
}

export function redisTopology(store: Config["store"]): RedisTopology {
  const cluster = store.redisCluster.trim();
  const sentinel = store.redisSentinel.trim();
  if (cluster && sentinel) throw new TopologyError("store", "set store.redisCluster or store.redisSentinel, not both");
  if (cluster) {
    const rootNodes = cluster.split(",").map((u) => u.trim());
    for (const u of rootNodes) {
      let ok = REDIS_URL.test(u);
      try {
        ok &&= new URL(u).port !== "";
      } catch {
        ok = false;
      }
      if (!ok) throw new TopologyError("store.redisCluster", `${JSON.stringify(u)} is not a redis://host:port URL`);
    }
    return { kind: "cluster", rootNodes };
  }
  if (sentinel) {
    const at = sentinel.indexOf("@");
    const name = sentinel.slice(0, at);
    if (at <= 0 || !MASTER_NAME.test(name)) {
      throw new TopologyError("store.redisSentinel", 'must read "<master name>@host:port[,host:port…]"');
    }
    const sentinels = sentinel
      .slice(at + 1)
      .split(",")
      .map((hp) => hostPort(hp, "store.redisSentinel"));
    return { kind: "sentinel", name, sentinels, nodeUrl: store.redisUrl };
  }
  return { kind: "single", url: store.redisUrl };
}
