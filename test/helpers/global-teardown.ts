import type { ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";

/** Stops the private redis-server of the global setup and removes its directory. */
export default async function globalTeardown(): Promise<void> {
  const started = (globalThis as Record<string, unknown>).__MLSFG_REDIS__ as { child: ChildProcess; dir: string } | undefined;
  if (!started) return;
  await new Promise<void>((resolve) => {
    started.child.once("exit", () => resolve());
    started.child.kill("SIGTERM");
    setTimeout(resolve, 5000).unref();
  });
  rmSync(started.dir, { recursive: true, force: true });
}
