import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Agent, request } from "undici";
import type { DeliveryResult, DeliverySpec } from "../delivery-load.js";
import { withCpu, type Bench } from "../lib/context.js";
import { committedGroup } from "../lib/group.js";
import { messagePool } from "../lib/mls.js";
import { counter } from "../lib/observe.js";
import { freePort, stop } from "../lib/proc.js";
import { summarize, type Latency } from "../lib/stats.js";
import { mergeCalls, nodeCommandStats, snapshot, totalCalls, type RedisTarget } from "../lib/targets.js";

export { fanoutReport } from "./fanout-report.js";

interface Size {
  name: string;
  onA: number;
  onB: number;
}

/** Redis commands over a phase: summed, per master (a cluster's spread), and the busiest commands. */
export interface Commands {
  total: number;
  perMaster: { port: number; total: number; evalsha: number }[];
  top: [string, number][];
}

export interface FanoutRow {
  name: string;
  members: number;
  remoteProviders: number;
  /** Sequential, nobody reading: what accepting a message costs. */
  accept: { messages: number; submit: Latency; commands: Commands };
  /** Every reader then reads those messages (GET /v1/inbox + ack): what delivering them costs. */
  read: { messages: number; readers: number; result: DeliveryResult; commands: Commands };
  /** Sending and reading at once. */
  load: {
    connections: number;
    loops: number;
    result: DeliveryResult;
    cpu: Record<string, number>;
    deliverRequests: number;
    commands: Commands;
  };
}

export interface FanoutResult {
  store: string;
  minPassMs: number;
  rows: FanoutRow[];
}

function arg(name: string): number | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : undefined;
}

const SIZES: Size[] = [
  { name: "2", onA: 2, onB: 0 },
  { name: "100", onA: 100, onB: 0 },
  { name: "1000", onA: 1000, onB: 0 },
  { name: "1000 over 2 providers", onA: 500, onB: 500 },
];

/** A group of 1000 carries a 1000-leaf ratchet tree in its Welcome and GroupInfo: above the default size limits. */
const BIG_GROUP_LIMITS = {
  MLSFEDGATE_LIMITS__MESSAGE_BYTES: String(8 << 20),
  MLSFEDGATE_LIMITS__GROUP_INFO_BYTES: String(8 << 20),
  MLSFEDGATE_LIMITS__BODY_BYTES: String(16 << 20),
};

/**
 * Until the masters run nothing more than the idle rate (background fan-out, outbox, timers done),
 * polled every 250 ms, at most `maxMs`.
 */
async function quiesce(t: RedisTarget, maxMs = 60_000): Promise<void> {
  const total = async () => (await Promise.all((await t.masters()).map((m) => nodeCommandStats(m.port)))).map(totalCalls);
  const until = Date.now() + maxMs;
  let last = (await total()).reduce((a, b) => a + b, 0);
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, 250));
    const now = (await total()).reduce((a, b) => a + b, 0);
    if (now - last <= 2) return;
    last = now;
  }
}

async function commandsOf(snap: Awaited<ReturnType<typeof snapshot>>): Promise<Commands> {
  const per = await snap.since();
  const merged = mergeCalls(per.map((p) => p.calls));
  return {
    total: totalCalls(merged),
    perMaster: per.map((p) => ({ port: p.port, total: totalCalls(p.calls), evalsha: p.calls.get("evalsha") ?? 0 })),
    top: [...merged].sort((a, b) => b[1] - a[1]).slice(0, 8),
  };
}

/**
 * Scenario 2: fan-out and delivery by group size. Each group is real MLS and made through the DS's
 * commit path (bench/lib/group.ts: KeyPackages uploaded, claimed, one add commit with Welcome); its
 * creator sends real PrivateMessages over HTTP and every other member reads its inbox over HTTP
 * (bench/delivery-load.ts), so this measures whatever delivery design the DS has. Per size:
 * accept (sequential, nobody reading: Redis commands per accepted message), read (every member
 * reads those: commands per delivered message per member), load (16 senders and the reader loops at
 * once: accepted/s, delivered-to-all/s, lag from 202 to the last member's read).
 */
export async function fanout(b: Bench): Promise<FanoutResult> {
  const [pa, pb] = [await freePort(), await freePort()];
  const urlA = `http://127.0.0.1:${pa}`;
  const urlB = `http://127.0.0.1:${pb}`;
  const env = BIG_GROUP_LIMITS;
  const dsA = await b.ds({ domain: "a.example", prefix: "s2a", port: pa, peers: { "b.example": { url: urlB } }, env });
  const dsB = await b.ds({ domain: "b.example", prefix: "s2b", port: pb, peers: { "a.example": { url: urlA } }, env });
  const urlOf = (client: string) => (client.includes("@b.example/") ? urlB : urlA);
  const agent = new Agent({ connections: 1, keepAliveTimeout: 60_000 });
  const warm = 10;
  const acceptCount = b.n(100, 20);
  const loadCount = b.n(6000, 600);
  const sendSeconds = b.n(30, 8);
  const connections = 16;
  const rows: FanoutRow[] = [];
  const deliverCount = () => counter(urlA, "mlsfg_s2s_requests_total", { peer: "b.example", path: "/federation/v1/deliver" });
  try {
    // --quick keeps the three sizes of the targets; the split group (S2S batching) only runs in full.
    // --s2-sizes 2,1000,split runs some sizes only (a partial run that prints, for profiling one size).
    const only = process.argv.includes("--s2-sizes")
      ? process.argv[process.argv.indexOf("--s2-sizes") + 1]!.split(",")
      : undefined;
    for (const [k, size] of SIZES.entries()) {
      if (b.quick && size.onB > 0) continue;
      if (only && !only.includes(size.onB > 0 ? "split" : size.name)) continue;
      const tag = `s${k}`;
      const members = [
        ...Array.from({ length: size.onA - 1 }, (_, i) => `${tag}u${i}@a.example/d`),
        ...Array.from({ length: size.onB }, (_, i) => `${tag}v${i}@b.example/d`),
      ];
      b.log(`s2: group of ${size.name}: KeyPackages, claims and one add commit through the DS`);
      const g = await committedGroup(urlOf, `${tag}alice@a.example/d`, members, (l) => b.log(`s2: ${l}`));
      b.log(`s2: group of ${size.name}: generating ${warm + acceptCount + loadCount} real messages from alice`);
      let t = performance.now();
      const { messages } = await messagePool(g.state, warm + acceptCount + loadCount);
      b.log(`s2: group of ${size.name}: messages made in ${((performance.now() - t) / 1000).toFixed(1)} s`);
      const send = async (message: string) => {
        const res = await request(`${urlA}/v1/groups/${g.groupId}/messages`, {
          method: "POST",
          dispatcher: agent,
          headers: { "content-type": "application/json", authorization: `Bearer ${g.creator.token}` },
          body: JSON.stringify({ message }),
        });
        const text = await res.body.text();
        if (res.statusCode !== 202) throw new Error(`submit: ${res.statusCode} ${text}`);
      };
      const loops = Math.min(g.readers.length, 32);
      // A member polls at most this often, as a client batching its reads would (a long-polling loop is not paced).
      const minPassMs = arg("--s2-pass-ms") ?? 250;
      const delivery = (spec: Omit<DeliverySpec, "groupId" | "readers" | "loops">) =>
        b.child<DeliveryResult>(
          "bench/delivery-load.ts",
          { groupId: g.groupId, readers: g.readers, loops, minPassMs, ...spec },
          (spec.maxSeconds + 60) * 1000,
        );
      // Warm-up (JIT, connections, scripts), then every reader drains its inbox (Welcome included).
      for (const m of messages.slice(0, warm)) await send(m);
      t = performance.now();
      const drained = await delivery({ mode: "read", expect: warm, maxSeconds: 180 });
      if (drained.unfinishedReaders > 0) throw new Error(`s2: ${drained.unfinishedReaders} readers did not drain the warm-up`);
      await quiesce(b.redis);
      b.log(
        `s2: group of ${size.name}: warm-up sent and drained by every member in ${((performance.now() - t) / 1000).toFixed(1)} s`,
      );

      b.log(`s2: group of ${size.name}: ${acceptCount} messages one at a time, nobody reading`);
      let snap = await snapshot(b.redis);
      const submit: number[] = [];
      for (const m of messages.slice(warm, warm + acceptCount)) {
        const t0 = performance.now();
        await send(m);
        submit.push(performance.now() - t0);
      }
      await quiesce(b.redis);
      const acceptCommands = await commandsOf(snap);

      b.log(`s2: group of ${size.name}: every member reads them (${loops} reader loops)`);
      snap = await snapshot(b.redis);
      const read = await delivery({ mode: "read", expect: acceptCount, maxSeconds: b.n(120, 60) });
      await quiesce(b.redis);
      const readCommands = await commandsOf(snap);

      b.log(`s2: group of ${size.name}: load, ${connections} senders for ≤ ${sendSeconds} s while ${loops} loops read`);
      const pool = join(b.tmp, `s2-${tag}.messages.json`);
      writeFileSync(pool, JSON.stringify(messages.slice(warm + acceptCount)));
      const d0 = await deliverCount();
      snap = await snapshot(b.redis);
      const { result, cpu } = await withCpu({ "DS a": dsA.child.pid, "DS b": dsB.child.pid, Redis: b.redis.pids }, () =>
        delivery({
          mode: "load",
          send: { url: urlA, token: g.creator.token, pool, connections, amount: loadCount, seconds: sendSeconds },
          maxSeconds: sendSeconds + b.n(150, 60),
        }),
      );
      await quiesce(b.redis);
      const loadCommands = await commandsOf(snap);
      const d1 = await deliverCount();
      rows.push({
        name: size.name,
        members: members.length + 1,
        remoteProviders: size.onB > 0 ? 1 : 0,
        accept: { messages: acceptCount, submit: summarize(submit), commands: acceptCommands },
        read: { messages: acceptCount, readers: g.readers.length, result: read, commands: readCommands },
        load: {
          connections,
          loops,
          result,
          cpu: { ...cpu, "load generator": result.loadCpuSeconds ?? NaN },
          deliverRequests: size.onB > 0 ? (d1 - d0) / Math.max(1, result.accepted) : 0,
          commands: loadCommands,
        },
      });
    }
  } finally {
    await agent.close();
    await stop(dsA.child);
    await stop(dsB.child);
  }
  return { store: b.redis.label, minPassMs: arg("--s2-pass-ms") ?? 250, rows };
}
