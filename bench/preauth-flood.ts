/**
 * npm run bench:preauth-flood [-- --seconds 10] [-- --senders 16] [-- --url http://127.0.0.1:PORT]
 *
 * /healthz latency of a DS while unauthenticated senders flood it with 1 MiB bodies of nested
 * `[[[…]]]` (issue 8: before the edge fixes, 16 such senders pushed /healthz to p50 1.1 s).
 * Idle first, then under the flood; prints both summaries and their ratio as one JSON line.
 *
 * The DS is `mls-fedgate serve` in its own process (memory store, one configured peer so the
 * federation path is live), or the one at --url. The senders run in a worker thread, each on its
 * own connection, cycling through: /v1 without a token, /v1 with a bad token, /federation/v1
 * without a token, /federation/v1 with a token claiming the configured peer (bad signature).
 * Loopback only; bounded by --seconds and a request count.
 */
import { randomUUID } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import { Client, request } from "undici";
import { cpuSeconds, startDs, stopAll, tempDir } from "./lib/proc.js";
import { summarize, type Latency } from "./lib/stats.js";

const BODY_BYTES = 1024 * 1024;
const MAX_REQUESTS_PER_SENDER = 100_000;
const PEER = "b.example";

interface FloodJob {
  url: string;
  senders: number;
  seconds: number;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function b64u(s: string): string {
  return Buffer.from(s).toString("base64url");
}

/** A token that names the configured peer as issuer but is signed by nobody: it fails at the signature. */
function forgedPeerToken(): string {
  const now = Math.floor(Date.now() / 1000);
  const header = b64u(JSON.stringify({ alg: "EdDSA", kid: "nope", typ: "mls-fedgate+jwt" }));
  const claims = { iss: PEER, aud: "a.example", iat: now, exp: now + 60, jti: randomUUID(), htm: "POST" };
  return `${header}.${b64u(JSON.stringify({ ...claims, htu: "/federation/v1/deliver", bdh: "x" }))}.${b64u("sig")}`;
}

/** Worker: `senders` loops posting the nested body until the deadline; reports answered/failed counts. */
async function flood(job: FloodJob): Promise<void> {
  const half = BODY_BYTES / 2;
  const body = Buffer.alloc(BODY_BYTES);
  body.fill("[", 0, half);
  body.fill("]", half);
  const targets: { path: string; auth?: () => string }[] = [
    { path: "/v1/key-packages" },
    { path: "/v1/key-packages", auth: () => "Bearer eyJhbGciOiJIUzI1NiJ9.e30.bm9wZQ" },
    { path: "/federation/v1/deliver" },
    { path: "/federation/v1/deliver", auth: () => `Bearer ${forgedPeerToken()}` },
  ];
  const deadline = Date.now() + job.seconds * 1000;
  const statuses: Record<string, number> = {};
  let failed = 0;
  await Promise.all(
    Array.from({ length: job.senders }, async (_, s) => {
      let client = new Client(job.url, { pipelining: 0 });
      for (let i = 0; i < MAX_REQUESTS_PER_SENDER && Date.now() < deadline; i++) {
        const t = targets[(s + i) % targets.length]!;
        try {
          const res = await client.request({
            method: "POST",
            path: t.path,
            headers: { "content-type": "application/json", ...(t.auth ? { authorization: t.auth() } : {}) },
            body,
          });
          await res.body.dump();
          statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
        } catch {
          // The DS answered early and closed while the body was still being sent.
          failed++;
          await client.destroy().catch(() => {});
          client = new Client(job.url, { pipelining: 0 });
        }
      }
      await client.close().catch(() => {});
    }),
  );
  parentPort!.postMessage({ statuses, failed });
}

/** /healthz latency: sequential GETs on one keep-alive connection for `ms`, at most `max` samples. */
async function sampleHealthz(url: string, ms: number, max = 2000): Promise<Latency> {
  const samples: number[] = [];
  const until = Date.now() + ms;
  while (Date.now() < until && samples.length < max) {
    const t0 = performance.now();
    const res = await request(`${url}/healthz`);
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error(`/healthz answered ${res.statusCode}`);
    samples.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 20));
  }
  return summarize(samples);
}

const round = (l: Latency) => ({
  n: l.n,
  p50: +l.p50.toFixed(2),
  p90: +l.p90.toFixed(2),
  p99: +l.p99.toFixed(2),
  max: +l.max.toFixed(2),
});

async function main(): Promise<void> {
  const seconds = Number(arg("--seconds") ?? 10);
  const senders = Number(arg("--senders") ?? 16);
  if (!(seconds > 0 && seconds <= 120) || !(senders > 0 && senders <= 64)) throw new Error("--seconds 1..120, --senders 1..64");
  let url = arg("--url");
  let dir: string | undefined;
  let pid: number | undefined;
  if (url && !/^http:\/\/(127\.\d+\.\d+\.\d+|\[::1\]|localhost)(:\d+)?$/.test(url)) throw new Error("--url must be loopback");
  if (!url) {
    dir = tempDir("mlsfg-flood-");
    const ds = await startDs({
      MLSFEDGATE_DOMAIN: "a.example",
      MLSFEDGATE_SIGNING_KEY_FILE: join(dir, "key.json"),
      MLSFEDGATE_PEERS: JSON.stringify({ [PEER]: { url: "http://127.0.0.1:9" } }),
    });
    url = ds.url;
    pid = ds.child.pid;
  }
  try {
    const idle = await sampleHealthz(url, 3000);
    const worker = new Worker(fileURLToPath(import.meta.url), {
      workerData: { url, senders, seconds } satisfies FloodJob,
      execArgv: process.execArgv,
    });
    const done = new Promise<{ statuses: Record<string, number>; failed: number }>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
    });
    await new Promise((r) => setTimeout(r, 500)); // let the flood build up
    const cpu0 = cpuSeconds(pid);
    const flooded = await sampleHealthz(url, seconds * 1000 - 1000);
    const dsCpuShare = (cpuSeconds(pid) - cpu0) / (seconds - 1);
    const sent = await done;
    await worker.terminate();
    console.log(
      JSON.stringify({
        senders,
        seconds,
        bodyBytes: BODY_BYTES,
        idle: round(idle),
        flood: round(flooded),
        p50Ratio: +(flooded.p50 / idle.p50).toFixed(2),
        // CPU seconds per second the DS process used under the flood (1 = one core busy); null with --url.
        dsCpuUnderFlood: Number.isNaN(dsCpuShare) ? null : +dsCpuShare.toFixed(2),
        floodAnswers: sent.statuses,
        floodConnectionErrors: sent.failed,
      }),
    );
  } finally {
    await stopAll();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

if (isMainThread) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
} else {
  void flood(workerData as FloodJob);
}
