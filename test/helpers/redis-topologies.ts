/**
 * Real local Redis deployments for the tests: a Redis Cluster (3 masters + 3 replicas, joined by
 * `redis-cli --cluster create`) and a Sentinel set (1 master, 1 replica, 3 sentinels), each on
 * free loopback ports with its own temp directory. Only processes started here are signalled,
 * each by its own pid. Failure detection is tuned down (1 s) so failover tests stay short.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** Like global-setup's freePort: this file is also loaded by the global setup, outside jest's module mapper, so it imports no other helper. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === "object" && addr ? addr.port : 0));
    });
  });
}

/** One command over a raw socket (inline protocol); the reply's text, or "" when the node does not answer. */
export function rawCommand(port: number, command: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    let data = "";
    let settle: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(settle);
      s.destroy();
      resolve(data);
    };
    s.setTimeout(timeoutMs, done);
    s.once("connect", () => s.write(`${command}\r\n`));
    s.on("data", (d) => {
      data += d.toString();
      // Bulk replies may come in pieces: settle shortly after the last one.
      clearTimeout(settle);
      settle = setTimeout(done, 20);
    });
    s.once("error", () => done());
  });
}

/** A redis-server (or sentinel) process that can be SIGKILLed and restarted on its port and directory. */
export class RedisNode {
  private child?: ChildProcess;

  constructor(
    readonly port: number,
    readonly dir: string,
    private readonly args: string[],
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }
  get running(): boolean {
    return this.child !== undefined;
  }

  async start(): Promise<void> {
    const child = spawn("redis-server", this.args, { cwd: this.dir, stdio: "ignore" });
    this.child = child;
    const deadline = Date.now() + 20_000;
    while (!(await rawCommand(this.port, "PING")).startsWith("+PONG")) {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode} (port ${this.port})`);
      if (Date.now() > deadline) throw new Error(`redis-server did not answer PING on ${this.port}`);
      await sleep(20);
    }
  }

  /** SIGKILL: no shutdown, no handover. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    child.kill("SIGKILL");
    await exited(child);
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child) return;
    child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited(child), new Promise<void>((r) => (timer = setTimeout(r, 3000)))]);
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited(child);
    }
  }

  info(section: string): Promise<string> {
    return rawCommand(this.port, `INFO ${section}`);
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

export interface RedisClusterSet {
  nodes: RedisNode[];
  /** MLSFEDGATE_REDIS_CLUSTER value: every node as a root node. */
  spec: string;
  /** The node serving as master of the slot `key` maps to (asks the cluster). */
  masterOf(key: string): Promise<RedisNode>;
  masters(): Promise<RedisNode[]>;
  /** Until every node reports cluster_state:ok and each master has a connected replica. */
  healthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

const NODE_TIMEOUT_MS = 1000;

export async function startRedisCluster(opts: { masters?: number } = {}): Promise<RedisClusterSet> {
  const count = (opts.masters ?? 3) * 2;
  const root = mkdtempSync(join(tmpdir(), "mlsfg-cluster-"));
  const ports = await Promise.all(Array.from({ length: count }, () => freePort()));
  const nodes = ports.map((port) => {
    const dir = join(root, String(port));
    mkdirSync(dir);
    return new RedisNode(port, dir, [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--cluster-enabled",
      "yes",
      "--cluster-config-file",
      "nodes.conf",
      "--cluster-node-timeout",
      String(NODE_TIMEOUT_MS),
      "--save",
      "",
      "--appendonly",
      "no",
      // Replicas sync at once instead of after the default 5 s wait for more replicas.
      "--repl-diskless-sync-delay",
      "0",
      "--dir",
      dir,
    ]);
  });
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    rmSync(root, { recursive: true, force: true });
  };
  try {
    await Promise.all(nodes.map((n) => n.start()));
    await new Promise<void>((resolve, reject) => {
      const args = ["--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`), "--cluster-replicas", "1", "--cluster-yes"];
      const cli = spawn("redis-cli", args, { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      cli.stdout.on("data", (d: Buffer) => (out += d.toString()));
      cli.stderr.on("data", (d: Buffer) => (out += d.toString()));
      cli.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`redis-cli --cluster create failed: ${out}`))));
    });
  } catch (err) {
    await stop();
    throw err;
  }
  const byPort = new Map(nodes.map((n) => [n.port, n]));
  const masters = async () => {
    for (const n of nodes) {
      if (!n.running) continue;
      const reply = await rawCommand(n.port, "CLUSTER NODES");
      if (!reply.startsWith("$")) continue;
      return reply
        .split("\n")
        .filter((l) => /[ ,]master[ ,]/.test(l) && !l.includes("fail"))
        .map((l) => byPort.get(Number(/:(\d+)@/.exec(l)?.[1])))
        .filter((n): n is RedisNode => n !== undefined);
    }
    return [];
  };
  const set: RedisClusterSet = {
    nodes,
    spec: ports.map((p) => `redis://127.0.0.1:${p}`).join(","),
    masters,
    async masterOf(key) {
      for (const n of nodes) {
        if (!n.running) continue;
        const slot = Number(/:(\d+)/.exec(await rawCommand(n.port, `CLUSTER KEYSLOT ${key}`))?.[1]);
        const reply = await rawCommand(n.port, "CLUSTER NODES");
        for (const line of reply.split("\n")) {
          if (!/[ ,]master[ ,]/.test(line) || line.includes("fail")) continue;
          const ranges = line.trim().split(" ").slice(8);
          const owns = ranges.some((r) => {
            const [from, to] = r.split("-").map(Number);
            return slot >= from! && slot <= (to ?? from)!;
          });
          if (owns) return byPort.get(Number(/:(\d+)@/.exec(line)?.[1]))!;
        }
      }
      throw new Error(`no master found for ${key}`);
    },
    async healthy(timeoutMs = 20_000) {
      await waitFor(
        "the cluster to be healthy",
        async () => {
          const running = nodes.filter((n) => n.running);
          const states = await Promise.all(running.map((n) => rawCommand(n.port, "CLUSTER INFO")));
          if (!states.every((s) => s.includes("cluster_state:ok"))) return false;
          const ms = await masters();
          const repl = await Promise.all(ms.map((m) => m.info("replication")));
          return ms.length === count / 2 && repl.every((r) => /slave0:.*state=online/.test(r));
        },
        timeoutMs,
      );
    },
    stop,
  };
  try {
    await set.healthy();
  } catch (err) {
    await stop();
    throw err;
  }
  return set;
}

export interface SentinelSet {
  data: RedisNode[];
  sentinels: RedisNode[];
  name: string;
  /** MLSFEDGATE_REDIS_SENTINEL value. */
  spec: string;
  /** The data node the sentinels currently name as master. */
  master(): Promise<RedisNode>;
  /** Until the sentinels agree on a running master that has a connected replica. */
  healthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startSentinelSet(): Promise<SentinelSet> {
  const name = "mymaster";
  const root = mkdtempSync(join(tmpdir(), "mlsfg-sentinel-"));
  const [masterPort, replicaPort, ...sentinelPorts] = await Promise.all(Array.from({ length: 5 }, () => freePort()));
  const dataNode = (port: number, extra: string[]) => {
    const dir = join(root, String(port));
    mkdirSync(dir);
    const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir];
    args.push("--repl-diskless-sync-delay", "0");
    return new RedisNode(port, dir, [...args, ...extra]);
  };
  const master = dataNode(masterPort!, []);
  const replica = dataNode(replicaPort!, ["--replicaof", "127.0.0.1", String(masterPort)]);
  const sentinels = sentinelPorts.map((port) => {
    const dir = join(root, String(port));
    mkdirSync(dir);
    // Sentinel rewrites its config file: each gets its own, writable.
    const conf = join(dir, "sentinel.conf");
    writeFileSync(
      conf,
      [
        `port ${port}`,
        "bind 127.0.0.1",
        `dir ${dir}`,
        `sentinel monitor ${name} 127.0.0.1 ${masterPort} 2`,
        `sentinel down-after-milliseconds ${name} ${NODE_TIMEOUT_MS}`,
        `sentinel failover-timeout ${name} 5000`,
        `sentinel parallel-syncs ${name} 1`,
        "",
      ].join("\n"),
    );
    return new RedisNode(port, dir, [conf, "--sentinel"]);
  });
  const data = [master, replica];
  const stop = async () => {
    await Promise.all([...sentinels, ...data].map((n) => n.stop()));
    rmSync(root, { recursive: true, force: true });
  };
  const byPort = new Map(data.map((n) => [n.port, n]));
  const set: SentinelSet = {
    data,
    sentinels,
    name,
    spec: `${name}@${sentinelPorts.map((p) => `127.0.0.1:${p}`).join(",")}`,
    async master() {
      for (const s of sentinels) {
        if (!s.running) continue;
        const reply = await rawCommand(s.port, `SENTINEL get-master-addr-by-name ${name}`);
        const port = Number(reply.split("\r\n")[4]);
        const node = byPort.get(port);
        if (node) return node;
      }
      throw new Error("no sentinel names a master");
    },
    async healthy(timeoutMs = 20_000) {
      await waitFor(
        "the sentinel set to be healthy",
        async () => {
          const m = await set.master().catch(() => undefined);
          if (!m?.running || !/role:master[\s\S]*slave0:.*state=online/.test(await m.info("replication"))) return false;
          // Every sentinel agrees on the master and knows a replica (a failover needs one).
          const views = await Promise.all(sentinels.map((s) => rawCommand(s.port, `SENTINEL master ${name}`)));
          const field = (v: string, f: string) => Number(new RegExp(`${f}\\r\\n\\$\\d+\\r\\n(\\d+)`).exec(v)?.[1] ?? 0);
          return views.every(
            (v) => v.includes(String(m.port)) && field(v, "num-slaves") >= 1 && field(v, "num-other-sentinels") >= 2,
          );
        },
        timeoutMs,
      );
    },
    stop,
  };
  try {
    await master.start();
    await Promise.all([replica.start(), ...sentinels.map((s) => s.start())]);
    await set.healthy();
  } catch (err) {
    await stop();
    throw err;
  }
  return set;
}
