/**
 * Real processes for the fault tests: a private redis-server (own port and directory, AOF on) that
 * can be SIGKILLed and restarted in place, and `mls-fedgate serve` processes. Only processes
 * started here are ever signalled, each by its own pid.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../helpers/global-setup.js";

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** One command over a raw socket; resolves with the first reply line ("" when nothing answers). */
export function rawCommand(port: number, command: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    let data = "";
    const done = (line: string) => {
      s.destroy();
      resolve(line);
    };
    s.setTimeout(1000, () => done(""));
    s.once("connect", () => s.write(`${command}\r\n`));
    s.on("data", (d) => {
      data += d.toString();
      const end = data.indexOf("\r\n");
      if (end >= 0) done(data.slice(0, end));
    });
    s.once("error", () => done(""));
  });
}

/** One command over a raw socket; resolves with the whole reply of a bulk string (e.g. INFO), "" on failure. */
export function rawBulk(port: number, command: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    let data = Buffer.alloc(0);
    const done = (text: string) => {
      s.destroy();
      resolve(text);
    };
    s.setTimeout(2000, () => done(""));
    s.once("connect", () => s.write(`${command}\r\n`));
    s.on("data", (d: Buffer) => {
      data = Buffer.concat([data, d]);
      const end = data.indexOf("\r\n");
      if (end < 0) return;
      const head = data.subarray(0, end).toString();
      if (!head.startsWith("$")) return done(head);
      const length = Number(head.slice(1));
      if (data.length >= end + 2 + length) done(data.subarray(end + 2, end + 2 + length).toString());
    });
    s.once("error", () => done(""));
  });
}

/** One PING over a raw socket: true once the server answers +PONG (not -LOADING while it replays the AOF). */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    let data = "";
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once("connect", () => s.write("PING\r\n"));
    s.on("data", (d) => {
      data += d.toString();
      if (data.includes("\r\n")) done(data.startsWith("+PONG"));
    });
    s.once("error", () => done(false));
  });
}

export class RedisProcess {
  private child?: ChildProcess;
  /** How many times the server was started (1 + restarts). */
  starts = 0;

  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly appendfsync: "always" | "everysec",
    /** More redis-server arguments (later ones override the defaults). */
    private readonly extraArgs: string[],
  ) {}

  /** A new server with its own free port and temp directory; AOF on, RDB snapshots off. */
  static async start(appendfsync: "always" | "everysec" = "always", extraArgs: string[] = []): Promise<RedisProcess> {
    const r = new RedisProcess(await freePort(), mkdtempSync(join(tmpdir(), "mlsfg-faults-redis-")), appendfsync, extraArgs);
    await r.launch();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /**
   * `until: "answering"` returns as soon as the server answers at all (also -LOADING while it
   * still loads its data set), instead of once it answers +PONG.
   */
  private async launch(more: string[] = [], until: "loaded" | "answering" = "loaded"): Promise<void> {
    const args = ["--port", String(this.port), "--bind", "127.0.0.1", "--dir", this.dir, "--save", ""];
    args.push("--appendonly", "yes", "--appendfsync", this.appendfsync, ...this.extraArgs, ...more);
    const child = spawn("redis-server", args, { stdio: "ignore" });
    this.child = child;
    this.starts += 1;
    const deadline = Date.now() + 20_000;
    const up = async () => (until === "loaded" ? ping(this.port) : (await rawCommand(this.port, "PING")) !== "");
    while (!(await up())) {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode} (port ${this.port})`);
      if (Date.now() > deadline) throw new Error(`redis-server did not answer PING on ${this.port}`);
      await sleep(20);
    }
  }

  /** SIGKILL: no shutdown, no final fsync; what is on disk is what the AOF policy wrote. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill("SIGKILL");
    await exited(child);
    this.child = undefined;
  }

  /** Starts the server again on the same port and directory (it replays its AOF). */
  async restart(opts: { args?: string[]; until?: "loaded" | "answering" } = {}): Promise<void> {
    if (this.child) throw new Error("redis-server is still running");
    await this.launch(opts.args, opts.until);
  }

  /** Once it is down: deletes everything it wrote (AOF, RDB), so the next start comes back empty. */
  wipe(): void {
    if (this.child) throw new Error("redis-server is still running");
    for (const name of readdirSync(this.dir)) rmSync(join(this.dir, name), { recursive: true, force: true });
  }

  /** Resolves once the server answers +PONG (it finished loading). */
  async loaded(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await ping(this.port))) {
      if (Date.now() > deadline) throw new Error(`redis-server on ${this.port} did not finish loading`);
      await sleep(20);
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child) {
      child.kill("SIGTERM");
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited(child), new Promise<void>((r) => (timer = setTimeout(r, 5000)))]);
      clearTimeout(timer); // a pending 5 s timer would keep jest from exiting
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited(child);
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface ServeProcess {
  child: ChildProcess;
  url: string;
  output(): string;
  /** Resolves when the process has exited. */
  exited: Promise<void>;
  kill(signal: NodeJS.Signals): Promise<void>;
}

/** `mls-fedgate serve` as its own process (through tsx, no build needed), configured by MLSFEDGATE_* env. */
export async function serve(env: Record<string, string>, port: number): Promise<ServeProcess> {
  // Only the settings given here: any other MLSFEDGATE_* variable of the test run would be a config error.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MLSFEDGATE_")));
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", "serve"], {
    env: { ...inherited, MLSFEDGATE_LOG_LEVEL: "warn", MLSFEDGATE_HOST: "127.0.0.1", MLSFEDGATE_PORT: String(port), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const gone = exited(child);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${output}`)), 60_000);
    const check = setInterval(() => {
      if (output.includes("listening on")) {
        clearTimeout(timer);
        clearInterval(check);
        resolve();
      }
    }, 20);
    void gone.then(() => {
      clearTimeout(timer);
      clearInterval(check);
      reject(new Error(`serve exited ${child.exitCode ?? child.signalCode}: ${output}`));
    });
  });
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    exited: gone,
    kill: async (signal) => {
      child.kill(signal);
      await gone;
    },
  };
}
