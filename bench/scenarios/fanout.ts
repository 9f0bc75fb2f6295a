import { Agent, request } from "undici";
import { createRedisStore } from "../../src/store/redis.js";
import type { HttpResult } from "../load.js";
import { fmt, ms, ratio, type Bench } from "../lib/context.js";
import { devToken, localPair, messagePool } from "../lib/mls.js";
import { counter, WakeCounter } from "../lib/observe.js";
import { freePort, stop } from "../lib/proc.js";
import { summarize, type Latency } from "../lib/stats.js";
import { SYNC_FANOUT_MAX_RECIPIENTS } from "../../src/domain/fanout.js";

interface Size {
  name: string;
  onA: number;
  onB: number;
}

export interface FanoutRow {
  name: string;
  members: number;
  remoteProviders: number;
  sequential: {
    messages: number;
    submit: Latency;
    endToEnd: Latency;
    deliverRequests: number;
    s2sRequestsAll: number;
  };
  load: HttpResult & { connections: number; deliverRequests: number; fanoutDoneSeconds: number; fanoutDonePerSecond: number };
}

export interface FanoutResult {
  rows: FanoutRow[];
  setup: string;
}

const SIZES: Size[] = [
  { name: "2", onA: 2, onB: 0 },
  { name: "100", onA: 100, onB: 0 },
  { name: "1000", onA: 1000, onB: 0 },
  { name: "1000 over 2 providers", onA: 500, onB: 500 },
];

/**
 * Scenario 2: fan-out cost by group size. For each size a real two-member MLS group (alice@a,
 * plus bob on a or b) is made with ts-mls; the hub's group record is then created through the
 * store's setup path (RedisStore.createGroup) with the full member list (alice, bob and synthetic
 * member ids up to the size); alice submits real PrivateMessages from her real state over HTTP.
 * Sequential phase: one message at a time, submit latency and end-to-end latency = time until the
 * last recipient's inbox append (counted from the store's per-append inbox wake-up PUBLISH, on
 * both providers). Load phase: autocannon at 16 connections.
 */
export async function fanout(b: Bench): Promise<FanoutResult> {
  const [pa, pb] = [await freePort(), await freePort()];
  const urlA = `http://127.0.0.1:${pa}`;
  const urlB = `http://127.0.0.1:${pb}`;
  const dsA = await b.ds({ domain: "a.example", prefix: "s2a", port: pa, peers: { "b.example": { url: urlB } } });
  const dsB = await b.ds({ domain: "b.example", prefix: "s2b", port: pb, peers: { "a.example": { url: urlA } } });
  const storeA = await createRedisStore({ url: b.redis.url, prefix: "s2a" });
  const storeB = await createRedisStore({ url: b.redis.url, prefix: "s2b" });
  const wakes = await WakeCounter.start(b.redis.url, ["s2a", "s2b"]);
  const agent = new Agent({ connections: 1, keepAliveTimeout: 60_000 });
  const alice = "alice@a.example/d";
  const aliceToken = await devToken(urlA, alice);
  const sequentialCount = b.n(200, 30);
  const loadCount = b.n(6000, 600);
  const connections = 16;
  const rows: FanoutRow[] = [];
  const deliverCount = () => counter(urlA, "mlsfg_s2s_requests_total", { peer: "b.example", path: "/federation/v1/deliver" });
  const s2sAll = async () =>
    (await counter(urlA, "mlsfg_s2s_requests_total")) + (await counter(urlB, "mlsfg_s2s_requests_total"));
  try {
    for (const size of SIZES) {
      const bob = size.onB > 0 ? "bob@b.example/d" : "bob@a.example/d";
      const pair = await localPair(alice, bob);
      const groupId = Buffer.from(pair.groupId).toString("base64url");
      const members = [alice, bob];
      for (let i = 0; members.filter((m) => m.includes("@a.example")).length < size.onA; i++) members.push(`ua${i}@a.example/d`);
      for (let i = 0; members.filter((m) => m.includes("@b.example")).length < size.onB; i++) members.push(`ub${i}@b.example/d`);
      await storeA.createGroup({
        groupId,
        hub: "a.example",
        mode: "ordered",
        cipherSuite: 1,
        epoch: pair.epoch,
        nextSeq: 1,
        members,
        owner: alice,
        createdAt: Date.now(),
      });
      const warm = 20;
      b.log(`s2: group of ${size.name}: generating ${warm + sequentialCount + loadCount} real messages from alice`);
      const { messages } = await messagePool(pair.state, warm + sequentialCount + loadCount);
      const send = async (message: string) => {
        const res = await request(`${urlA}/v1/groups/${groupId}/messages`, {
          method: "POST",
          dispatcher: agent,
          headers: { "content-type": "application/json", authorization: `Bearer ${aliceToken}` },
          body: JSON.stringify({ message }),
        });
        const text = await res.body.text();
        if (res.statusCode !== 202) throw new Error(`submit: ${res.statusCode} ${text}`);
      };
      const recipients = members.length - 1;
      // Warm-up: JIT, connections, discovery between the providers.
      for (const m of messages.slice(0, warm)) {
        wakes.reset();
        await send(m);
        await wakes.waitFor(recipients, 30_000);
      }
      b.log(`s2: group of ${size.name}: ${sequentialCount} sequential messages`);
      const submit: number[] = [];
      const e2e: number[] = [];
      const [d0, all0] = [await deliverCount(), await s2sAll()];
      for (const m of messages.slice(warm, warm + sequentialCount)) {
        wakes.reset();
        const t0 = performance.now();
        await send(m);
        submit.push(performance.now() - t0);
        const last = await wakes.waitFor(recipients, 30_000);
        e2e.push(last - t0);
      }
      const [d1, all1] = [await deliverCount(), await s2sAll()];
      b.log(`s2: group of ${size.name}: load at ${connections} connections`);
      const pool = b.pool(
        `s2-${size.onA}-${size.onB}`,
        messages
          .slice(warm + sequentialCount)
          .map((message) => ({ path: `/v1/groups/${groupId}/messages`, auth: aliceToken, body: JSON.stringify({ message }) })),
      );
      const d2 = await deliverCount();
      // Fan-out is complete when the last local member (and, split, the last member on b) holds every message.
      const watch = [
        { store: storeA, client: members.filter((m) => m.endsWith("@a.example/d") && m !== alice).at(-1)! },
        ...(size.onB > 0 ? [{ store: storeB, client: members.filter((m) => m.endsWith("@b.example/d")).at(-1)! }] : []),
      ];
      const depth0 = await Promise.all(watch.map((w) => w.store.inboxDepth(w.client)));
      const load = await b.http({ url: urlA, method: "POST", pool, connections, amount: loadCount, maxSeconds: b.n(15, 8) });
      const okCount = Object.entries(load.byStatus)
        .filter(([s]) => s.startsWith("2"))
        .reduce((a, [, n]) => a + n, 0);
      const tDrain = performance.now();
      const until = Date.now() + 60_000;
      const drained = async () =>
        (await Promise.all(watch.map((w, i) => w.store.inboxDepth(w.client).then((d) => d >= depth0[i]! + okCount)))).every(
          Boolean,
        );
      while (Date.now() < until && !(await drained())) await new Promise((r) => setTimeout(r, 20));
      // The generator's measured span plus the time from its exit to the last inbox append.
      const fanoutDoneSeconds = load.seconds + (performance.now() - tDrain) / 1000;
      const d3 = await deliverCount();
      rows.push({
        name: size.name,
        members: members.length,
        remoteProviders: size.onB > 0 ? 1 : 0,
        sequential: {
          messages: sequentialCount,
          submit: summarize(submit),
          endToEnd: summarize(e2e),
          deliverRequests: d1 - d0,
          s2sRequestsAll: all1 - all0,
        },
        load: {
          ...load,
          connections,
          deliverRequests: size.onB > 0 ? (d3 - d2) / Math.max(1, okCount) : 0,
          fanoutDoneSeconds,
          fanoutDonePerSecond: okCount / fanoutDoneSeconds,
        },
      });
    }
  } finally {
    await agent.close();
    await wakes.close();
    await storeA.close();
    await storeB.close();
    await stop(dsA.child);
    await stop(dsB.child);
  }
  return {
    rows,
    setup:
      "alice@a.example and one second member are a real ts-mls group (epoch 1); the hub's group record holds them plus synthetic member ids, created with RedisStore.createGroup",
  };
}

export function fanoutReport(r: FanoutResult): { md: string; targetMet: boolean } {
  const base = r.rows.find((x) => x.name === "2")!;
  const big = r.rows.find((x) => x.name === "1000")!;
  const split = r.rows.find((x) => x.name.startsWith("1000 over"))!;
  const rel = big.sequential.submit.p50 / base.sequential.submit.p50;
  const relSplit = split.sequential.submit.p50 / base.sequential.submit.p50;
  const perMsg = split.sequential.deliverRequests / split.sequential.messages;
  const s2sOk = split.sequential.deliverRequests === split.sequential.messages;
  const seq = r.rows
    .map((x) => {
      const s2s =
        x.remoteProviders === 0
          ? "0 (no remote provider)"
          : `${fmt(x.sequential.deliverRequests)} / ${x.sequential.messages} msgs = **${(x.sequential.deliverRequests / x.sequential.messages).toFixed(2)}**`;
      return `| ${x.name} | ${ms(x.sequential.submit.p50)} | ${ms(x.sequential.submit.p99)} | ${ratio(x.sequential.submit.p50, base.sequential.submit.p50)} | ${ms(x.sequential.endToEnd.p50)} | ${ms(x.sequential.endToEnd.p99)} | ${ratio(x.sequential.endToEnd.p50, base.sequential.endToEnd.p50)} | ${s2s} |`;
    })
    .join("\n");
  const load = r.rows
    .map(
      (x) =>
        `| ${x.name} | ${fmt(x.load.okPerSecond)} | ${ms(x.load.latency.p50)} | ${ms(x.load.latency.p99)} | ${fmt(x.load.fanoutDonePerSecond)} (${fmt(x.load.fanoutDonePerSecond * (x.members - 1))} inbox appends/s) | ${x.remoteProviders === 0 ? "–" : x.load.deliverRequests.toFixed(3)} |`,
    )
    .join("\n");
  const md = `
Set-up: ${r.setup}. Every submission is a distinct real PrivateMessage from alice's state.
Groups with more than ${SYNC_FANOUT_MAX_RECIPIENTS} local recipients are answered once the message is ordered and fan out in the background
(src/domain/fanout.ts); smaller ones are answered after the last local inbox append. The end-to-end column is the honest
delivery figure either way.

Sequential (one message at a time; the next is sent after every recipient's inbox append of the previous one).
End-to-end = submit start → the last recipient's inbox append (for the split group: on b.example, after the hub's outbox
delivered it), observed through the store's per-append inbox wake-up PUBLISH on both providers' key prefixes.
S2S requests are counted from the hub's \`mlsfg_s2s_requests_total{path="/federation/v1/deliver"}\` counter (before/after).

| members | submit p50 | submit p99 | submit p50 / group of 2 | e2e p50 | e2e p99 | e2e p50 / group of 2 | S2S deliver requests per message |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${seq}

Under load (${base.load.connections} connections, autocannon in its own process; "fan-out done/s" = accepted messages / time until the
last watched inbox — the last local member's, and on b.example the last remote member's — holds all of them):

| members | accepted/s | p50 | p99 | fan-out done/s | S2S deliver requests per message |
| --- | ---: | ---: | ---: | ---: | ---: |
${load}

All S2S requests in both directions during the sequential split run: ${fmt(split.sequential.s2sRequestsAll)}. Under load the outbox batches
several messages into one \`deliver\`, so requests per message drop below 1 (never above).

**Target p50 submit(1000) ≤ 3 × p50 submit(2): ${rel <= 3 ? `met (${rel.toFixed(2)}×; split over two providers ${relSplit.toFixed(2)}×)` : `not met (${rel.toFixed(2)}×)`}.**
**S2S requests per message = number of remote providers (1), sequential split run: ${s2sOk ? `met (${perMsg.toFixed(2)})` : `not met (${perMsg.toFixed(2)})`}.**
`;
  return { md, targetMet: rel <= 3 && s2sOk };
}
