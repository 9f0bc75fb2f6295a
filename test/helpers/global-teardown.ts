import type { ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";

/** Stops the Redis deployments of the global setup and removes their directories. */
export default async function globalTeardown(): Promise<void> {
  const g = globalThis as Record<string, unknown>;
  const topologies = [g.__MLSFG_REDIS_CLUSTER__, g.__MLSFG_REDIS_SENTINEL__] as ({ stop(): Promise<void> } | undefined)[];
  await Promise.all([stopSingle(), ...topologies.map((t) => t?.stop())]);
}

async function stopSingle(): Promise<void> {
  const started = (globalThis as Record<string, unknown>).__MLSFG_REDIS__ as { child: ChildProcess; dir: string } | undefined;
  if (!started) return;
  await new Promise<void>((resolve) => {
    started.child.once("exit", () => resolve());
    started.child.kill("SIGTERM");
    setTimeout(resolve, 5000).unref();
  });
  rmSync(started.dir, { recursive: true, force: true });
}
