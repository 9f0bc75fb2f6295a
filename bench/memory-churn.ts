/**
 * npx tsx bench/memory-churn.ts [messages] [stepMs]
 *
 * The memory store under churn with its default windows (delivered entries kept 10 min, answers
 * and dedupe ids 7 days): one group of three on a fake clock moved `stepMs` (default 60 s) per
 * message; each message is ordered, fanned out to two recipients, read and acknowledged in
 * batches of 10. Prints the store's sizes, heap (after GC) and RSS once the retention window has
 * passed and at the end: the steady state is rate × window, flat however long the churn runs.
 * Figures: docs/SECURITY.md ("Store: telling the truth").
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { Clock } from "../src/clock.js";
import { QUEUE_DEDUPE_TTL_MS } from "../src/store/lua/keys.js";
import { MemoryStore } from "../src/store/memory.js";
import type { InboxItem } from "../src/store/port.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const total = Number(process.argv[2] ?? 30_000);
const stepMs = Number(process.argv[3] ?? 60_000);
let now = 1_800_000_000_000;
const clock: Clock = { nowMs: () => now, nowSeconds: () => Math.floor(now / 1000) };
const store = new MemoryStore({ clock }); // trimHubLogs on, the default
const [alice, bob, carol] = ["alice@a.example/phone", "bob@a.example/laptop", "carol@a.example/tablet"];
await store.createGroup({
  groupId: "g1",
  hub: "a.example",
  mode: "ordered",
  cipherSuite: 1,
  epoch: 0,
  nextSeq: 1,
  members: [alice, bob, carol],
  owner: alice,
  createdAt: 0,
});

const warmUp = Math.min(total, Math.ceil(QUEUE_DEDUPE_TTL_MS / stepMs) + 1000);
const report = (at: number) => {
  gc();
  gc();
  const m = process.memoryUsage();
  const mb = (n: number) => (n / 2 ** 20).toFixed(1);
  process.stdout.write(
    `after ${at} messages: heap ${mb(m.heapUsed)} MB, rss ${mb(m.rss)} MB, ${JSON.stringify(store.sizes())}\n`,
  );
};
const payload = "x".repeat(600);
for (let i = 0; i < total; i++) {
  now += stepMs;
  const outcome = await store.submit(
    "g1",
    { kind: "application", sender: alice, epoch: 0, sha256: `sha-${i}`, message: `${payload}${i}` },
    now,
  );
  if (!outcome.ok) throw new Error(`refused: ${outcome.code}`);
  const items: InboxItem[] = outcome.entries.map((e) => ({ kind: "ref", groupId: "g1", seq: e.seq }));
  await store.appendInboxMany([bob, carol].map((client) => ({ client, items })));
  await store.markDispatched("g1", outcome.seq);
  if (i % 10 === 9) {
    for (const client of [bob, carol]) {
      const page = await store.readInbox(client, 0, 100);
      await store.ackInbox(client, page[page.length - 1]!.cursor);
    }
  }
  if (i + 1 === warmUp || i + 1 === total) report(i + 1);
}
