import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Starts a private redis-server on a free loopback port unless MLSFEDGATE_TEST_REDIS_URL is set. */
export default async function globalSetup(): Promise<void> {
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
