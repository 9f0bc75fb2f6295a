/**
 * npm run bench:redis [-- --messages 30]
 *
 * Redis work per accepted application message, from INFO commandstats (every command, those a
 * Lua script issues included), for groups of 2, 100 and 1000 members, on a private single node
 * and on a private Redis Cluster (3 masters + 3 replicas); on the cluster also how 60 two-member
 * groups spread their commands over the masters (per-node INFO commandstats). One in-process DS
 * on the Redis store; alice sends real MLS PrivateMessages one at a time over HTTP, and each
 * message counts once its fan-out is done (the group's dispatch mark reached it). Prints Markdown.
 */
import { rmSync } from "node:fs";
import { pino } from "pino";
import { DeliveryService, loadConfig } from "../src/index.js";
import type { RedisStore } from "../src/store/redis.js";
import { generateSigningJwk, signingKeyFromJwk } from "../src/federation/keys.js";
import { rawCommand, RedisNode, startRedisCluster } from "../test/helpers/redis-topologies.js";
import { devToken, localPair, messagePool } from "./lib/mls.js";
import { freePort, tempDir } from "./lib/proc.js";

const flag = process.argv.indexOf("--messages");
const MESSAGES = flag >= 0 ? Number(process.argv[flag + 1]) : 30;
const SIZES = [2, 100, 1000];

interface Deployment {
  name: string;
  store: Record<string, unknown>;
  nodes: () => Promise<RedisNode[]>;
  stop(): Promise<void>;
}

async function single(): Promise<Deployment> {
  const port = await freePort();
  const dir = tempDir("mlsfg-bench-cmds-");
  const node = new RedisNode(port, dir, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir]);
  await node.start();
  return {
    name: "single node",
    store: { redisUrl: `redis://127.0.0.1:${port}` },
    nodes: async () => [node],
    stop: async () => {
      await node.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function cluster(): Promise<Deployment> {
  const c = await startRedisCluster();
  return {
    name: "Redis Cluster (3 masters + 3 replicas)",
    store: { redisCluster: c.spec },
    nodes: () => c.masters(),
    stop: () => c.stop(),
  };
}

/** Calls per command since the last CONFIG RESETSTAT, summed over `nodes` (the probes themselves left out). */
async function commandStats(nodes: RedisNode[]): Promise<Map<string, number>[]> {
  return Promise.all(
    nodes.map(async (n) => {
      const stats = new Map<string, number>();
      for (const m of (await rawCommand(n.port, "INFO commandstats")).matchAll(/cmdstat_([a-z|_-]+):calls=(\d+)/g)) {
        if (!["info", "config|resetstat", "cluster|nodes", "cluster|info", "ping"].includes(m[1]!))
          stats.set(m[1]!, Number(m[2]));
      }
      return stats;
    }),
  );
}

const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

async function run(deployment: Deployment): Promise<string> {
  const port = await freePort();
  const prefix = `bc${Date.now().toString(36)}`;
  const ds = await DeliveryService.create(
    loadConfig({
      overrides: {
        domain: "a.example",
        port,
        logLevel: "silent",
        store: { kind: "redis", prefix, ...deployment.store },
        limits: {
          rateLimit: { clientRequestsPerSecond: 1_000_000, peerRequestsPerSecond: 1_000_000, claimsPerTargetPerHour: 1_000_000 },
        },
      },
    }),
    { signingKey: await signingKeyFromJwk(await generateSigningJwk()), logger: pino({ level: "silent" }) },
  );
  await ds.start();
  const url = ds.url;
  const tokens = new Map<string, string>();
  const store = ds.ctx.store;
  const lines: string[] = [];
  const send = async (g: { groupId: string; sender: string }, message: string) => {
    const res = await fetch(`${url}/v1/groups/${g.groupId}/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${tokens.get(g.sender)}` },
      body: JSON.stringify({ message }),
    });
    if (res.status !== 202) throw new Error(`submit: ${res.status} ${await res.text()}`);
  };
  let polls = 0;
  /** Until the group's dispatch mark reaches its last seq (one HMGET per poll, subtracted from the figures). */
  const fannedOut = async (groupId: string) => {
    const key = `${prefix}:{g:${groupId}}:rec`;
    const redis = (store as RedisStore).connection.commands;
    for (let i = 0; i < 1200; i++) {
      polls++;
      const [dispatched, nextSeq] = await redis.hmGet(key, ["dispatched", "nextSeq"]);
      if (Number(dispatched) === Number(nextSeq) - 1) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error("fan-out did not finish");
  };
  const group = async (size: number, count: number, tag = "") => {
    // Every name varies by `tag`, so that the groups' senders and recipients spread over the slots.
    const sender = `alice${tag}@a.example/d`;
    const pair = await localPair(sender, `bob${tag}@a.example/d`);
    const groupId = Buffer.from(pair.groupId).toString("base64url");
    tokens.set(sender, await devToken(url, sender));
    const members = [sender, `bob${tag}@a.example/d`, ...Array.from({ length: size - 2 }, (_, i) => `u${tag}-${i}@a.example/d`)];
    await store.createGroup({
      groupId,
      hub: "a.example",
      mode: "ordered",
      cipherSuite: 1,
      epoch: pair.epoch,
      nextSeq: 1,
      members,
      owner: sender,
      createdAt: Date.now(),
    });
    return { groupId, sender, messages: (await messagePool(pair.state, count)).messages };
  };
  try {
    lines.push(
      `| members | Redis commands per accepted message | of which EVALSHA + EVAL | top commands per message |`,
      `| ---: | ---: | ---: | --- |`,
    );
    for (const size of SIZES) {
      const g = await group(size, MESSAGES + 3);
      for (const m of g.messages.slice(0, 3)) await send(g, m); // warm-up (scripts loaded, connections up)
      await fannedOut(g.groupId);
      const nodes = await deployment.nodes();
      await Promise.all(nodes.map((n) => rawCommand(n.port, "CONFIG RESETSTAT")));
      polls = 0;
      for (const m of g.messages.slice(3)) await send(g, m);
      await fannedOut(g.groupId);
      const merged = new Map<string, number>();
      for (const s of await commandStats(nodes)) for (const [k, v] of s) merged.set(k, (merged.get(k) ?? 0) + v);
      merged.set("hmget", (merged.get("hmget") ?? 0) - polls);
      const per = (k: string) => (merged.get(k) ?? 0) / MESSAGES;
      const top = [...merged]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 6)
        .map(([k, v]) => `${k} ${(v / MESSAGES).toFixed(1)}`)
        .join(", ");
      lines.push(
        `| ${size} | ${(total(merged) / MESSAGES).toFixed(1)} | ${(per("evalsha") + per("eval")).toFixed(1)} | ${top} |`,
      );
    }
    if (deployment.name.startsWith("Redis Cluster")) {
      const groups = await Promise.all(Array.from({ length: 60 }, (_, i) => group(2, 6, String(i))));
      for (const g of groups) await send(g, g.messages[0]!);
      const nodes = await deployment.nodes();
      await Promise.all(nodes.map((n) => rawCommand(n.port, "CONFIG RESETSTAT")));
      for (const g of groups) for (const m of g.messages.slice(1)) await send(g, m);
      const per = await commandStats(nodes);
      const sum = per.reduce((a, s) => a + total(s), 0);
      lines.push(
        "",
        `60 groups of 2 (distinct senders and recipients), 5 messages each (300 accepted messages), commands per master:`,
        "",
      );
      lines.push(`| master | commands | share | EVALSHA |`, `| --- | ---: | ---: | ---: |`);
      per.forEach((s, i) =>
        lines.push(`| :${nodes[i]!.port} | ${total(s)} | ${((100 * total(s)) / sum).toFixed(0)} % | ${s.get("evalsha") ?? 0} |`),
      );
    }
  } finally {
    await ds.close();
  }
  return lines.join("\n");
}

for (const make of [single, cluster]) {
  const d = await make();
  try {
    process.stdout.write(`\n### ${d.name}: ${MESSAGES} messages per size\n\n${await run(d)}\n`);
  } finally {
    await d.stop();
  }
}
