import type { RedisTopology } from "../../src/config/redis-topology.js";
import { rawCommand, startRedisCluster } from "../../test/helpers/redis-topologies.js";
import { startRedis, stopRedis } from "./proc.js";

export interface RedisNodeRef {
  port: number;
  pid: number | undefined;
}

/**
 * The private Redis deployment a bench run uses: one redis-server, or a local Redis Cluster
 * (3 masters + 3 replicas, test/helpers/redis-topologies.ts). Scenarios reach it only through
 * this: the DS's env, a store topology, the data nodes' pids (CPU) and the masters (per-node stats).
 */
export interface RedisTarget {
  kind: "single" | "cluster";
  label: string;
  /** A node's URL: ceiling R (a keyless script runs on any node) and scratch clients. */
  url: string;
  topology: RedisTopology;
  dsEnv: Record<string, string>;
  /** Every data node's pid (masters and replicas: replication is Redis work too). */
  pids: (number | undefined)[];
  /** The nodes that serve commands (the single node, or the cluster's masters). */
  masters(): Promise<RedisNodeRef[]>;
  /** Every data node, replicas included (for error statistics). */
  all(): RedisNodeRef[];
  stop(): Promise<void>;
}

export async function startTarget(kind: "single" | "cluster"): Promise<RedisTarget> {
  if (kind === "single") {
    const r = await startRedis();
    const node = { port: r.port, pid: r.child.pid };
    return {
      kind,
      label: "single node",
      url: r.url,
      topology: { kind: "single", url: r.url },
      dsEnv: { MLSFEDGATE_REDIS_URL: r.url },
      pids: [r.child.pid],
      masters: async () => [node],
      all: () => [node],
      stop: () => stopRedis(r),
    };
  }
  const c = await startRedisCluster();
  const ref = (n: { port: number; pid: number | undefined }) => ({ port: n.port, pid: n.pid });
  const masters = await c.masters();
  return {
    kind,
    label: `Redis Cluster (${masters.length} masters + ${c.nodes.length - masters.length} replicas)`,
    url: `redis://127.0.0.1:${masters[0]!.port}`,
    topology: { kind: "cluster", rootNodes: c.spec.split(",") },
    dsEnv: { MLSFEDGATE_REDIS_CLUSTER: c.spec },
    pids: c.nodes.map((n) => n.pid),
    masters: async () => (await c.masters()).map(ref),
    all: () => c.nodes.map(ref),
    stop: () => c.stop(),
  };
}

/** What the bench's own probes send; left out of every count. */
const PROBES = new Set(["info", "config|resetstat", "cluster|nodes", "cluster|info", "cluster|slots", "cluster|shards", "ping"]);

/** INFO commandstats of one node: command → calls (commands Lua scripts issue included), probes left out. */
export async function nodeCommandStats(port: number): Promise<Map<string, number>> {
  const stats = new Map<string, number>();
  for (const m of (await rawCommand(port, "INFO commandstats")).matchAll(/cmdstat_([a-z|_-]+):calls=(\d+)/g)) {
    if (!PROBES.has(m[1]!)) stats.set(m[1]!, Number(m[2]));
  }
  return stats;
}

/** INFO errorstats of one node: error prefix → count (e.g. CROSSSLOT, MOVED, ASK). */
export async function nodeErrorStats(port: number): Promise<Map<string, number>> {
  const stats = new Map<string, number>();
  for (const m of (await rawCommand(port, "INFO errorstats")).matchAll(/errorstat_([A-Za-z_-]+):count=(\d+)/g)) {
    stats.set(m[1]!, Number(m[2]));
  }
  return stats;
}

export const totalCalls = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);

export function diffCalls(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of after) if (v - (before.get(k) ?? 0) > 0) out.set(k, v - (before.get(k) ?? 0));
  return out;
}

export function mergeCalls(maps: Map<string, number>[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of maps) for (const [k, v] of m) out.set(k, (out.get(k) ?? 0) + v);
  return out;
}

/** A snapshot of every master's command counts; `since()` gives what each master ran after it. */
export async function snapshot(t: RedisTarget): Promise<{ since(): Promise<{ port: number; calls: Map<string, number> }[]> }> {
  const masters = await t.masters();
  const before = await Promise.all(masters.map((m) => nodeCommandStats(m.port)));
  return {
    since: async () =>
      Promise.all(masters.map(async (m, i) => ({ port: m.port, calls: diffCalls(before[i]!, await nodeCommandStats(m.port)) }))),
  };
}
