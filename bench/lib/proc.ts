import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root (this file runs as dist/bench/lib/proc.js or, through tsx, bench/lib/proc.ts). */
export const ROOT = (() => {
  const here = dirname(fileURLToPath(import.meta.url));
  return here.includes(`${join("dist", "bench")}`) ? resolve(here, "../../..") : resolve(here, "../..");
})();

/** Whether we run from the compiled tree (dist/bench) or from TypeScript through tsx. */
const COMPILED = fileURLToPath(import.meta.url).endsWith(".js");

/** node argv that runs a project entry point: `src/cli.ts` → dist/src/cli.js or tsx src/cli.ts. */
export function entry(relTs: string): string[] {
  if (COMPILED) return [join(ROOT, "dist", relTs.replace(/\.ts$/, ".js"))];
  return ["--import", "tsx", join(ROOT, relTs)];
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => resolvePort(typeof addr === "object" && addr ? addr.port : 0));
    });
  });
}

export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const ok = await new Promise<boolean>((res) => {
      const s = connect(port, "127.0.0.1");
      s.once("connect", () => {
        s.destroy();
        res(true);
      });
      s.once("error", () => res(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/** Every child this run started; stopped by pid at the end (never by name). */
const children = new Set<ChildProcess>();

export async function stop(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM", graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    children.delete(child);
    return;
  }
  await new Promise<void>((res) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      res();
    });
    child.kill(signal);
  });
  children.delete(child);
}

export async function stopAll(): Promise<void> {
  await Promise.all([...children].map((c) => stop(c)));
}

export interface Redis {
  url: string;
  port: number;
  child: ChildProcess;
  dir: string;
}

/** A private redis-server on a free loopback port: no persistence, its own directory. */
export async function startRedis(): Promise<Redis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "mlsfg-bench-redis-"));
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
    {
      stdio: "ignore",
    },
  );
  children.add(child);
  await waitForPort(port);
  return { url: `redis://127.0.0.1:${port}`, port, child, dir };
}

export async function stopRedis(r: Redis): Promise<void> {
  await stop(r.child);
  rmSync(r.dir, { recursive: true, force: true });
}

/** Spawns a node child and resolves once its stdout contains `ready` (or rejects on exit/timeout). */
export async function spawnNode(
  args: string[],
  env: Record<string, string>,
  ready: string,
  timeoutMs = 30_000,
): Promise<ChildProcess> {
  // BENCH_CPU_PROF_DIR=<dir>: every spawned process writes a V8 CPU profile there on exit.
  const prof = process.env.BENCH_CPU_PROF_DIR;
  const argv = prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`, ...args] : args;
  const child = spawn(process.execPath, argv, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let output = "";
  child.stderr!.on("data", (d: Buffer) => {
    output += d.toString();
    if (output.length > 20_000) output = output.slice(-10_000);
  });
  await new Promise<void>((res, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(" ")} did not get ready: ${output}`)), timeoutMs);
    const onData = (d: Buffer) => {
      output += d.toString();
      if (output.includes(ready)) {
        clearTimeout(timer);
        child.stdout!.off("data", onData);
        child.stdout!.resume();
        res();
      }
    };
    child.stdout!.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${args.join(" ")} exited ${code}: ${output}`));
    });
  });
  child.removeAllListeners("exit");
  return child;
}

export interface DsProcess {
  url: string;
  port: number;
  child: ChildProcess;
}

/** `mls-fedgate serve` as its own process (the built CLI, or src/cli.ts through tsx). */
export async function startDs(env: Record<string, string>, nodeArgs: string[] = []): Promise<DsProcess> {
  const port = env.MLSFEDGATE_PORT ? Number(env.MLSFEDGATE_PORT) : await freePort();
  const child = await spawnNode(
    [...nodeArgs, ...entry("src/cli.ts"), "serve"],
    { MLSFEDGATE_LOG_LEVEL: "warn", ...env, MLSFEDGATE_PORT: String(port) },
    "listening on",
  );
  return { url: `http://127.0.0.1:${port}`, port, child };
}

/** Runs a node child to completion and returns its stdout parsed as JSON (the load generator's protocol). */
export async function runJson<T>(args: string[], env: Record<string, string> = {}, timeoutMs = 300_000): Promise<T> {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((res) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("exit", (c) => {
      clearTimeout(timer);
      res(c);
    });
  });
  children.delete(child);
  if (code !== 0) throw new Error(`${args.join(" ")} exited ${code}: ${err.slice(-4000)}`);
  const line = out.trim().split("\n").pop() ?? "";
  return JSON.parse(line) as T;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[11], fields[12] = utime, stime (the 14th and 15th fields of the whole line), in clock ticks.
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();
