/**
 * Redis SIGKILLed and restarted during a stream of 5,000 submissions (issue 5).
 *
 * A private redis-server with AOF and `appendfsync always` (own port and directory) backs one DS.
 * Alice streams 5,000 real MLS application messages into a group (16 in flight); every failed or
 * unanswered submission is retried with the SAME bytes. Meanwhile Redis is SIGKILLed three times
 * and restarted on the same port and directory. Afterwards: every acknowledged message is in the
 * log at the seq it was acknowledged with, none twice (seqs and SHA-256s unique, the log gap-free),
 * the epochs are consistent, and bob's inbox holds every message exactly once. The DS itself stays
 * up (node-redis reconnects) and answers the outage with 503 `unavailable` + Retry-After.
 */
import { createHash } from "node:crypto";
import { createApplicationMessage, encodeMlsMessage } from "ts-mls";
import { Agent, request } from "undici";
import { MlsClient } from "../../src/client/index.js";
import { toB64u } from "../../src/client/b64.js";
import { startProvider, stopAll, uniquePrefix, type Provider } from "../helpers/providers.js";
import { RedisProcess, sleep } from "./processes.js";

const TOTAL = Number(process.env.MLSFEDGATE_FAULTS_MESSAGES ?? 5000);
const IN_FLIGHT = 16;
const KILL_AT = [0.2, 0.5, 0.8].map((f) => Math.floor(TOTAL * f));
const DOWN_MS = 700;
const MAX_ATTEMPTS = 500;
const DEADLINE_MS = 240_000;
/** `always` by default; MLSFEDGATE_FAULTS_APPENDFSYNC=everysec runs the same stream against the other policy. */
const APPENDFSYNC = process.env.MLSFEDGATE_FAULTS_APPENDFSYNC === "everysec" ? "everysec" : "always";

describe("Redis SIGKILLed and restarted with AOF during a stream of submissions", () => {
  let redis: RedisProcess;
  let a: Provider | undefined;

  beforeAll(async () => {
    redis = await RedisProcess.start(APPENDFSYNC);
  });

  afterAll(async () => {
    if (a) await stopAll([a]);
    await redis?.stop();
  });

  it(`keeps every one of ${TOTAL} acknowledged messages exactly once across three Redis crashes`, async () => {
    a = await startProvider("a.example", {
      store: { kind: "redis", redisUrl: redis.url, prefix: uniquePrefix() },
      limits: {
        rateLimit: { clientRequestsPerSecond: 1_000_000, peerRequestsPerSecond: 1_000_000, claimsPerTargetPerHour: 1_000_000 },
      },
    });
    const alice = await MlsClient.connect(a.url, "alice@a.example/phone");
    const bob = await MlsClient.connect(a.url, "bob@a.example/laptop");
    await bob.publishKeyPackages(1);
    const groupId = await alice.createGroup();
    await alice.addUsers(groupId, ["bob@a.example"]);
    await bob.sync({ waitMs: 2000 });
    expect(bob.groupIds()).toEqual([groupId]);

    // 5,000 real PrivateMessages, generated up front (the ratchet advances with each).
    let state = alice.state(groupId);
    const messages: string[] = [];
    for (let i = 0; i < TOTAL; i++) {
      const r = await createApplicationMessage(state, new TextEncoder().encode(`message ${i}`), alice.cs);
      state = r.newState;
      messages.push(
        toB64u(encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage: r.privateMessage })),
      );
    }
    const shaOf = (m: string) => createHash("sha256").update(Buffer.from(m, "base64url")).digest("hex");

    const { token } = (await (
      await fetch(`${a.url}/v1/dev/token`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ client: alice.id }),
      })
    ).json()) as { token: string };
    const agent = new Agent({ connections: IN_FLIGHT, keepAliveTimeout: 30_000, headersTimeout: 30_000, bodyTimeout: 30_000 });
    const acked: (number | undefined)[] = new Array(TOTAL);
    const failures = new Map<string, number>();
    let retries = 0;
    let ackedCount = 0;
    const started = Date.now();

    const submit = async (i: number): Promise<void> => {
      for (let attempt = 1; ; attempt++) {
        if (attempt > MAX_ATTEMPTS || Date.now() - started > DEADLINE_MS)
          throw new Error(`message ${i} not acknowledged after ${attempt - 1} attempts`);
        let why: string;
        try {
          const res = await request(`${a!.url}/v1/groups/${groupId}/messages`, {
            method: "POST",
            dispatcher: agent,
            headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
            body: JSON.stringify({ message: messages[i] }),
          });
          const text = await res.body.text();
          if (res.statusCode === 202) {
            acked[i] = (JSON.parse(text) as { seq: number }).seq;
            ackedCount += 1;
            return;
          }
          why = `${res.statusCode} ${(JSON.parse(text) as { error?: { code?: string } }).error?.code ?? ""}`;
        } catch (e) {
          why = (e as Error).name;
        }
        retries += 1;
        failures.set(why, (failures.get(why) ?? 0) + 1);
        await sleep(Math.min(500, 20 * attempt));
      }
    };

    // The chaos: kill Redis when the stream passes each mark, restart it after DOWN_MS.
    const crashes: { at: number; downMs: number }[] = [];
    const chaos = (async () => {
      for (const mark of KILL_AT) {
        while (ackedCount < mark) {
          if (Date.now() - started > DEADLINE_MS) return;
          await sleep(5);
        }
        const t0 = Date.now();
        await redis.kill9();
        await sleep(DOWN_MS);
        await redis.restart();
        crashes.push({ at: ackedCount, downMs: Date.now() - t0 });
      }
    })();

    let next = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < TOTAL) await submit(next++);
      }),
    );
    await chaos;
    const seconds = (Date.now() - started) / 1000;
    await agent.close();
    process.stdout.write(
      `redis-kill (appendfsync ${APPENDFSYNC}): ${TOTAL} messages acknowledged in ${seconds.toFixed(1)} s; Redis SIGKILLed ${crashes.length}× (at ${crashes.map((c) => `${c.at} acked, down ${c.downMs} ms`).join("; ")}); ` +
        `${retries} retries (${JSON.stringify(Object.fromEntries(failures))})\n`,
    );
    expect(crashes).toHaveLength(KILL_AT.length);
    // The outage answers were "unavailable, retry" (503) or a dropped connection, never a 500.
    expect([...failures.keys()].filter((k) => k.startsWith("500"))).toEqual([]);
    expect((await fetch(`${a.url}/readyz`)).status).toBe(200);
    expect(redis.starts).toBe(1 + KILL_AT.length);
    expect(acked.filter((s) => s !== undefined)).toHaveLength(TOTAL);

    // The log after three crashes: read through the same DS (its client reconnected by itself).
    const store = a.ds.ctx.store;
    const group = (await store.getGroup(groupId))!;
    const log = await store.readLog(groupId, 0, TOTAL + 100);
    const apps = log.filter((e) => e.kind === "application");
    expect(apps).toHaveLength(TOTAL);
    expect(log.map((e) => e.seq)).toEqual(Array.from({ length: group.nextSeq - 1 }, (_, k) => k + 1)); // gap-free, each seq once
    expect(new Set(log.map((e) => e.sha256)).size).toBe(log.length); // no message twice
    const bySeq = new Map(log.map((e) => [e.seq, e]));
    const lost = messages.filter((m, i) => bySeq.get(acked[i]!)?.sha256 !== shaOf(m));
    expect(lost).toEqual([]); // each acknowledged message sits at the seq it was acknowledged with
    expect(new Set(acked).size).toBe(TOTAL);

    // Epochs: one commit (the add), the group at epoch 1, every message framed at epoch 1.
    expect(group.epoch).toBe(1);
    expect(await store.commitLog(groupId, -1)).toEqual([expect.objectContaining({ epoch: 0, seq: 1 })]);
    expect(new Set(apps.map((e) => e.epoch))).toEqual(new Set([1]));

    // Fan-out survived the crashes too: bob's inbox references every message exactly once.
    const deadline = Date.now() + 60_000;
    let inbox: number[];
    for (;;) {
      inbox = [];
      for (let after = 0, page = 0; page < 100; page++) {
        const { messages: got, next: n } = await bob.api.inbox(after, { limit: 500 });
        inbox.push(...got.filter((m) => m.kind === "application").map((m) => m.seq!));
        if (got.length === 0) break;
        after = n;
      }
      if (inbox.length >= TOTAL || Date.now() > deadline) break;
      await sleep(500);
    }
    expect(new Set(inbox).size).toBe(inbox.length);
    expect(inbox.length).toBe(TOTAL);
  }, 300_000);
});
