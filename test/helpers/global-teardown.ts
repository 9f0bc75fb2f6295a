import type { ChildProcess } from "node:child_process";

export default async function globalTeardown(): Promise<void> {
  const child = (globalThis as Record<string, unknown>).__MLSFG_REDIS__ as ChildProcess | undefined;
  child?.kill("SIGTERM");
}
