/**
 * The load and the checks shared by the Redis failover tests (a cluster master SIGKILLed, a
 * Sentinel failover): one DS on the Redis store with store.waitReplicas = 1, alice streaming real
 * MLS application messages and bob committing, every failed or unanswered submission retried
 * with the SAME bytes, a failover in the middle. Afterwards every acknowledged commit and message
 * is in the log at the seq it was acknowledged with, none twice, each epoch accepted once, bob's
 * inbox holds every message once, and the DS serves again without a restart.
 */
import { createHash } from "node:crypto";
import { createApplicationMessage, createCommit, encodeMlsMessage } from "ts-mls";
import { Agent, request } from "undici";
import { MlsClient } from "../../src/client/index.js";
import { toB64u } from "../../src/client/b64.js";
import { startProvider, stopAll, uniquePrefix, type Provider } from "../helpers/providers.js";
import { sleep } from "./processes.js";

export interface FailoverRun {
  messages: number;
  commits: number;
  /** Fails a Redis master over (called once 30% of the messages are acknowledged); resolves with what it did once Redis is whole again. */
  failover(groupId: string): Promise<string>;
}

const IN_FLIGHT = 12;
const MAX_ATTEMPTS = 600;
const DEADLINE_MS = 200_000;

export async function runFailoverLoad(store: Record<string, unknown>, run: FailoverRun): Promise<void> {
  let a: Provider | undefined;
  const agent = new Agent({ connections: IN_FLIGHT + 1, keepAliveTimeout: 30_000, headersTimeout: 30_000, bodyTimeout: 30_000 });
  try {
    a = await startProvider("a.example", {
      store: { kind: "redis", prefix: uniquePrefix(), waitReplicas: 1, waitTimeoutMs: 500, ...store },
      limits: {
        rateLimit: { clientRequestsPerSecond: 1_000_000, peerRequestsPerSecond: 1_000_000, claimsPerTargetPerHour: 1_000_000 },
      },
    });
    const url = a.url;
    const alice = await MlsClient.connect(url, "alice@a.example/phone");
    const bob = await MlsClient.connect(url, "bob@a.example/laptop");
    await bob.publishKeyPackages(1);
    const groupId = await alice.createGroup();
    await alice.addUsers(groupId, ["bob@a.example"]);
    await bob.sync({ waitMs: 2000 });
    expect(bob.groupIds()).toEqual([groupId]);

    // Real PrivateMessages from alice (framed at epoch 1; the DS accepts messages of past epochs).
    let aliceState = alice.state(groupId);
    const messages: string[] = [];
    for (let i = 0; i < run.messages; i++) {
      const r = await createApplicationMessage(aliceState, new TextEncoder().encode(`message ${i}`), alice.cs);
      aliceState = r.newState;
      messages.push(
        toB64u(encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage: r.privateMessage })),
      );
    }
    const shaOf = (m: string) => createHash("sha256").update(Buffer.from(m, "base64url")).digest("hex");
    const tokenOf = async (client: string) =>
      (
        (await (
          await fetch(`${url}/v1/dev/token`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ client }),
          })
        ).json()) as { token: string }
      ).token;
    const tokens = { alice: await tokenOf(alice.id), bob: await tokenOf(bob.id) };

    const failures = new Map<string, number>();
    const started = Date.now();
    /** POSTs until the DS answers `expected`; the same bytes every time. */
    const post = async (path: string, token: string, body: object, expected: number) => {
      for (let attempt = 1; ; attempt++) {
        if (attempt > MAX_ATTEMPTS || Date.now() - started > DEADLINE_MS)
          throw new Error(`${path} not acknowledged; retries ${JSON.stringify(Object.fromEntries(failures))}`);
        let why: string;
        try {
          const res = await request(`${url}${path}`, {
            method: "POST",
            dispatcher: agent,
            headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
            body: JSON.stringify(body),
          });
          const text = await res.body.text();
          if (res.statusCode === expected) return JSON.parse(text) as { seq: number; epoch?: number };
          why = `${res.statusCode} ${(JSON.parse(text) as { error?: { code?: string } }).error?.code ?? ""}`;
        } catch (e) {
          why = (e as Error).name;
        }
        failures.set(why, (failures.get(why) ?? 0) + 1);
        await sleep(Math.min(300, 10 * attempt));
      }
    };

    const acked: (number | undefined)[] = new Array(run.messages);
    let ackedCount = 0;
    let next = 0;
    const senders = Array.from({ length: IN_FLIGHT }, async () => {
      while (next < run.messages) {
        const i = next++;
        acked[i] = (await post(`/v1/groups/${groupId}/messages`, tokens.alice, { message: messages[i] }, 202)).seq;
        ackedCount += 1;
      }
    });
    // Bob commits one epoch after another (each retried with its bytes until answered).
    const commits: { sha256: string; seq: number; epoch: number }[] = [];
    const committer = (async () => {
      let state = bob.state(groupId);
      for (let k = 0; k < run.commits; k++) {
        const r = await createCommit({ state, cipherSuite: bob.cs });
        const commit = toB64u(encodeMlsMessage(r.commit));
        const answer = await post(`/v1/groups/${groupId}/commits`, tokens.bob, { commit }, 201);
        commits.push({ sha256: shaOf(commit), seq: answer.seq, epoch: answer.epoch! });
        state = r.newState;
        await sleep(20);
      }
    })();
    const chaos = (async () => {
      while (ackedCount < run.messages * 0.3) {
        if (Date.now() - started > DEADLINE_MS) throw new Error("the load never reached the failover mark");
        await sleep(5);
      }
      return run.failover(groupId);
    })();
    const [what] = await Promise.all([chaos, committer, ...senders]);
    const seconds = (Date.now() - started) / 1000;
    process.stdout.write(
      `${what}: ${run.messages} messages and ${run.commits} commits acknowledged in ${seconds.toFixed(1)} s; ` +
        `retries ${JSON.stringify(Object.fromEntries(failures))}\n`,
    );

    // A failover in progress answered "unavailable, retry" (503) or dropped the connection, never 500.
    expect([...failures.keys()].filter((k) => k.startsWith("500"))).toEqual([]);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);

    const ds = a.ds.ctx.store;
    const group = (await ds.getGroup(groupId))!;
    const log = await ds.readLog(groupId, 0, run.messages + run.commits + 100);
    expect(log.map((e) => e.seq)).toEqual(Array.from({ length: group.nextSeq - 1 }, (_, k) => k + 1)); // gap-free
    expect(new Set(log.map((e) => e.sha256)).size).toBe(log.length); // nothing twice
    const bySeq = new Map(log.map((e) => [e.seq, e]));
    expect(messages.filter((m, i) => bySeq.get(acked[i]!)?.sha256 !== shaOf(m))).toEqual([]);
    expect(log.filter((e) => e.kind === "application")).toHaveLength(run.messages);

    // Epochs: the add (epoch 0) and bob's commits, each epoch accepted once, each where acknowledged.
    expect(group.epoch).toBe(1 + run.commits);
    const commitLog = await ds.commitLog(groupId, -1);
    expect(commitLog.map((c) => c.epoch)).toEqual(Array.from({ length: 1 + run.commits }, (_, e) => e));
    for (const c of commits) {
      expect(commitLog[c.epoch - 1]).toMatchObject({ sha256: c.sha256, seq: c.seq });
      expect(bySeq.get(c.seq)).toMatchObject({ kind: "commit", sha256: c.sha256 });
    }

    // Bob's inbox references every message of alice's exactly once (deliveries were replicated too).
    const seqs: number[] = [];
    for (let after = 0, page = 0; page < 100; page++) {
      const { messages: got, next: n } = await bob.api.inbox(after, { limit: 500 });
      seqs.push(...got.filter((m) => m.kind === "application").map((m) => m.seq!));
      if (got.length === 0) break;
      after = n;
    }
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(seqs.length).toBe(run.messages);
  } finally {
    await agent.close();
    if (a) await stopAll([a]);
  }
}
