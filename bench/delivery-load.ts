/**
 * The delivery load generator, its own process like bench/load.ts: reads a JSON spec (argv[2]),
 * prints one JSON line. Only the client HTTP API is used (POST messages, GET /v1/inbox, POST
 * /v1/inbox/ack), so it measures whatever delivery design the DS has.
 *
 *   read  reader loops read (and ack) until every reader has read `expect` application messages
 *         of the group, or the deadline
 *   load  `connections` senders post the pool's messages while the reader loops read: accepted/s,
 *         delivered-to-all/s, and per message the lag from its 202 to its last reader's read
 */
import { readFileSync } from "node:fs";
import { Agent, request } from "undici";
import type { Reader } from "./lib/group.js";
import { Samples, summarize, type Latency } from "./lib/stats.js";

export interface DeliverySpec {
  mode: "read" | "load";
  groupId: string;
  readers: Reader[];
  /** Reader loops; each polls its share of the readers in turn (a loop with one reader long-polls). */
  loops: number;
  /** A polling loop's pass over its readers takes at least this long (each member reads at most that often). */
  minPassMs?: number;
  maxSeconds: number;
  /** read: application messages each reader must read. */
  expect?: number;
  /** load: the sender (JSON file of base64url MLSMessages, each sent once; stops after `seconds`). */
  send?: { url: string; token: string; pool: string; connections: number; amount: number; seconds: number };
}

export interface DeliveryResult {
  loadCpuSeconds?: number;
  readers: number;
  /** GET /v1/inbox requests, of them answered with no entry, and POST /v1/inbox/ack requests. */
  reads: number;
  emptyReads: number;
  acks: number;
  /** GET /v1/inbox latency, ms. */
  readLatency: Latency;
  /** Application entries of the group read, over all readers. */
  entriesRead: number;
  /** Entries a reader saw twice or after a later seq (must be 0: once and in order per group). */
  duplicates: number;
  outOfOrder: number;
  /** Readers that did not read everything before the deadline. */
  unfinishedReaders: number;
  readErrors: Record<string, number>;
  /** load only */
  accepted: number;
  byStatus: Record<string, number>;
  acceptSeconds: number;
  acceptedPerSecond: number;
  submit: Latency;
  deliveredAll: number;
  deliverySeconds: number;
  deliveredPerSecond: number;
  /** ms from the sender's 202 to the read by the last reader, per message delivered to all. */
  lag: Latency;
  seconds: number;
}

interface Seen {
  acceptedAt?: number;
  reads: number;
  lastRead: number;
}

const PAGE = 500;
const LONG_POLL_MS = 1000;
const IDLE_PAUSE_MS = 2;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function run(spec: DeliverySpec): Promise<DeliveryResult> {
  const n = spec.readers.length;
  const start = performance.now();
  const until = start + spec.maxSeconds * 1000;
  const readAgent = new Agent({ connections: spec.loops + 2, keepAliveTimeout: 60_000 });
  const sendAgent = new Agent({ connections: (spec.send?.connections ?? 0) + 1, keepAliveTimeout: 60_000 });
  const seen = new Map<number, Seen>();
  const perReader = spec.readers.map(() => ({ cursor: 0, lastSeq: 0, count: 0 }));
  const r = { reads: 0, emptyReads: 0, acks: 0, entriesRead: 0, duplicates: 0, outOfOrder: 0 };
  const readErrors: Record<string, number> = {};
  const byStatus: Record<string, number> = {};
  const submit = new Samples();
  const readLat = new Samples();
  let accepted = 0;
  let sendDone = spec.send === undefined;
  let lastAccept = start;
  let fullyRead = 0;
  let lastDelivered = start;

  const complete = (): boolean => {
    if (spec.mode === "read") return perReader.every((p) => p.count >= spec.expect!);
    return sendDone && fullyRead >= accepted;
  };

  /** One GET (+ ack when it returned entries); whether it returned anything. */
  const readOnce = async (i: number, waitMs: number): Promise<boolean> => {
    const reader = spec.readers[i]!;
    const p = perReader[i]!;
    const auth = { authorization: `Bearer ${reader.token}` };
    const t = performance.now();
    const res = await request(`${reader.url}/v1/inbox?after=${p.cursor}&limit=${PAGE}&waitMs=${waitMs}`, {
      dispatcher: readAgent,
      headers: auth,
    });
    r.reads++;
    if (waitMs === 0) readLat.push(performance.now() - t);
    if (res.statusCode !== 200) {
      readErrors[res.statusCode] = (readErrors[res.statusCode] ?? 0) + 1;
      await res.body.text();
      await sleep(10);
      return false;
    }
    const page = (await res.body.json()) as { messages: { kind: string; groupId?: string; seq?: number }[]; next: number };
    const now = performance.now();
    if (page.messages.length === 0) {
      r.emptyReads++;
      return false;
    }
    for (const e of page.messages) {
      if (e.kind !== "application" || e.groupId !== spec.groupId || e.seq === undefined) continue;
      r.entriesRead++;
      if (e.seq === p.lastSeq) r.duplicates++;
      else if (e.seq < p.lastSeq) r.outOfOrder++;
      else {
        p.lastSeq = e.seq;
        p.count++;
        const s = seen.get(e.seq) ?? { reads: 0, lastRead: 0 };
        s.reads++;
        s.lastRead = now;
        seen.set(e.seq, s);
        if (s.reads === n && s.acceptedAt !== undefined) {
          fullyRead++;
          lastDelivered = now;
        }
      }
    }
    p.cursor = page.next;
    const ack = await request(`${reader.url}/v1/inbox/ack`, {
      method: "POST",
      dispatcher: readAgent,
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ upTo: page.next }),
    });
    await ack.body.text();
    r.acks++;
    if (ack.statusCode !== 204) readErrors[`ack ${ack.statusCode}`] = (readErrors[`ack ${ack.statusCode}`] ?? 0) + 1;
    return true;
  };

  const loops = Math.max(1, Math.min(spec.loops, n));
  const readerLoop = async (l: number) => {
    const mine = spec.readers.map((_, i) => i).filter((i) => i % loops === l);
    const waitMs = mine.length === 1 ? LONG_POLL_MS : 0;
    while (!complete() && performance.now() < until) {
      const passStart = performance.now();
      let any = false;
      for (const i of mine) {
        if (spec.mode === "read" && perReader[i]!.count >= spec.expect!) continue;
        if (await readOnce(i, waitMs)) any = true;
      }
      if (waitMs > 0) continue;
      const rest = (spec.minPassMs ?? 0) - (performance.now() - passStart);
      if (rest > 0) await sleep(rest);
      else if (!any) await sleep(IDLE_PAUSE_MS);
    }
  };

  const sender = async () => {
    const s = spec.send!;
    const pool = JSON.parse(readFileSync(s.pool, "utf8")) as string[];
    const amount = Math.min(s.amount, pool.length);
    const stopSending = Math.min(until, start + s.seconds * 1000);
    let next = 0;
    await Promise.all(
      Array.from({ length: s.connections }, async () => {
        while (next < amount && performance.now() < stopSending) {
          const message = pool[next++]!;
          const t = performance.now();
          const res = await request(`${s.url}/v1/groups/${spec.groupId}/messages`, {
            method: "POST",
            dispatcher: sendAgent,
            headers: { "content-type": "application/json", authorization: `Bearer ${s.token}` },
            body: JSON.stringify({ message }),
          });
          const body = (await res.body.json()) as { seq?: number };
          const now = performance.now();
          byStatus[res.statusCode] = (byStatus[res.statusCode] ?? 0) + 1;
          if (res.statusCode !== 202 || body.seq === undefined) continue;
          submit.push(now - t);
          accepted++;
          lastAccept = now;
          const e = seen.get(body.seq) ?? { reads: 0, lastRead: 0 };
          e.acceptedAt = now;
          seen.set(body.seq, e);
          // Read by everyone before its 202 came back (a synchronous fan-out and fast readers).
          if (e.reads === n) {
            fullyRead++;
            lastDelivered = Math.max(lastDelivered, e.lastRead);
          }
        }
      }),
    );
    sendDone = true;
  };

  await Promise.all([...(spec.send ? [sender()] : []), ...Array.from({ length: loops }, (_, l) => readerLoop(l))]);
  await readAgent.close();
  await sendAgent.close();
  const lags: number[] = [];
  for (const s of seen.values())
    if (s.acceptedAt !== undefined && s.reads === n) lags.push(Math.max(0, s.lastRead - s.acceptedAt));
  const acceptSeconds = (lastAccept - start) / 1000;
  const deliverySeconds = (lastDelivered - start) / 1000;
  return {
    readers: n,
    ...r,
    unfinishedReaders: perReader.filter((p) => p.count < (spec.mode === "read" ? spec.expect! : accepted)).length,
    readErrors,
    readLatency: summarize(readLat.values()),
    accepted,
    byStatus,
    acceptSeconds,
    acceptedPerSecond: accepted / acceptSeconds,
    submit: summarize(submit.values()),
    deliveredAll: fullyRead,
    deliverySeconds,
    deliveredPerSecond: fullyRead / deliverySeconds,
    lag: summarize(lags),
    seconds: (performance.now() - start) / 1000,
  };
}

async function main(): Promise<void> {
  const spec = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as DeliverySpec;
  const cpu = process.cpuUsage();
  const result = await run(spec);
  const used = process.cpuUsage(cpu);
  process.stdout.write(JSON.stringify({ ...result, loadCpuSeconds: (used.user + used.system) / 1e6 }) + "\n");
}

main().catch((e: unknown) => {
  process.stderr.write(`delivery-load: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
