import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Starts, in parallel and each on free loopback ports: a private redis-server (unless
 * MLSFEDGATE_TEST_REDIS_URL is set), a Redis Cluster of 3 masters + 3 replicas (unless
 * MLSFEDGATE_TEST_REDIS_CLUSTER is set) and a Sentinel set of 1 master, 1 replica and 3 sentinels
 * (unless MLSFEDGATE_TEST_REDIS_SENTINEL is set). Tests read the three variables.
 */
export default async function globalSetup(): Promise<void> {
  // Jest loads global setup without the test module mapper (which maps ".js" to ".ts"): name the file itself.
  const { startRedisCluster, startSentinelSet } = (await import(
    join(__dirname, "redis-topologies.ts")
  )) as typeof import("./redis-topologies.js");
  const started = globalThis as Record<string, unknown>;
  await Promise.all([
    startSingle(),
    process.env.MLSFEDGATE_TEST_REDIS_CLUSTER
      ? undefined
      : startRedisCluster().then((cluster) => {
          started.__MLSFG_REDIS_CLUSTER__ = cluster;
          process.env.MLSFEDGATE_TEST_REDIS_CLUSTER = cluster.spec;
        }),
    process.env.MLSFEDGATE_TEST_REDIS_SENTINEL
      ? undefined
      : startSentinelSet().then((sentinel) => {
          started.__MLSFG_REDIS_SENTINEL__ = sentinel;
          process.env.MLSFEDGATE_TEST_REDIS_SENTINEL = sentinel.spec;
        }),
  ]);
}

async function startSingle(): Promise<void> {
  if (process.env.MLSFEDGATE_TEST_REDIS_URL) return;
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "mlsfg-redis-"));
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
    { stdio: "ignore", detached: false },
  );
  (globalThis as Record<string, unknown>).__MLSFG_REDIS__ = { child, dir };
  process.env.MLSFEDGATE_TEST_REDIS_URL = `redis://127.0.0.1:${port}`;
  await waitForPort(port);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === "object" && addr ? addr.port : 0));
    });
  });
}

/**
 * n distinct free ports, all held open until every one is known: two freePort() batches in a row
 * can be handed the same port once the first batch has closed it.
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const srv = createServer();
          srv.once("error", reject);
          srv.listen(0, "127.0.0.1", () => resolve(srv));
        }),
    ),
  );
  const ports = servers.map((srv) => {
    const addr = srv.address();
    return typeof addr === "object" && addr ? addr.port : 0;
  });
  await Promise.all(servers.map((srv) => new Promise((r) => srv.close(r))));
  return ports;
}

async function waitForPort(port: number): Promise<void> {
  const { connect } = await import("node:net");
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1");
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`redis-server did not start on port ${port}`);
}
