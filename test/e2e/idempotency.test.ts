/**
 * Retries are safe (DESIGN.md "Retries are safe"): the same MLS bytes submitted again get the
 * original answer — same seq, same epoch — and nothing is delivered twice; a commit retried after
 * another commit won the next epoch still gets its original answer, not stale_epoch. Federation
 * deliveries are idempotent by (groupId, seq), also after the recipient acknowledged them.
 * Runs with the hub on the memory store and on Redis.
 */
import { MlsClient, type InboxEntry } from "../../src/client/index.js";
import { signRequest } from "../../src/federation/service-auth.js";
import type { SigningKey } from "../../src/federation/keys.js";
import { viewOf } from "../../src/domain/groups.js";
import { MemoryStore } from "../../src/store/memory.js";
import { redisStoreConfig, testRedisKind, startFederation, stopAll, testKey, type Provider } from "../helpers/providers.js";

const FAST_OUTBOX = { federation: { outbox: { batchSize: 100, retryBaseMs: 20, retryMaxMs: 200, pollMs: 50 } } };

/** Records the JSON bodies a client sends, so a test can send the very same bytes again. */
function recorder(client: MlsClient): Record<string, unknown>[] {
  const bodies: Record<string, unknown>[] = [];
  const original = client.api.request.bind(client.api);
  client.api.request = (async (method: string, path: string, body?: unknown, auth?: boolean) => {
    if (body !== undefined) bodies.push(body as Record<string, unknown>);
    return original(method, path, body, auth);
  }) as typeof client.api.request;
  return bodies;
}

/** Every inbox entry of a client (without acknowledging), optionally waiting until `until` holds. */
async function inbox(
  client: MlsClient,
  until: (m: InboxEntry[]) => boolean = () => true,
  timeoutMs = 5000,
): Promise<InboxEntry[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const all: InboxEntry[] = [];
    let after = 0;
    for (let page = 0; page < 100; page++) {
      const { messages, next } = await client.api.inbox(after, { limit: 500 });
      all.push(...messages);
      if (messages.length === 0) break;
      after = next;
    }
    if (until(all) || Date.now() > deadline) return all;
    await new Promise((r) => setTimeout(r, 50));
  }
}

const copiesOf = (entries: InboxEntry[], groupId: string, seq: number) =>
  entries.filter((e) => e.groupId === groupId && e.seq === seq).length;

async function drained(hub: Provider, peer: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await hub.ds.ctx.store.outboxStats(peer)).depth > 0) {
    if (Date.now() > deadline) throw new Error(`outbox to ${peer} did not drain`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.each(["memory", "redis"] as const)("idempotent submission and delivery (hub on the %s store)", (kind) => {
  let a: Provider;
  let b: Provider;
  let bKey: SigningKey;
  let alice: MlsClient;
  let bob: MlsClient;
  let carol: MlsClient;
  let aliceSent: Record<string, unknown>[];
  let carolSent: Record<string, unknown>[];
  let groupId: string;

  beforeAll(async () => {
    bKey = await testKey();
    [a, b] = (await startFederation(
      ["a.example", "b.example"],
      (d) => ({
        ...FAST_OUTBOX,
        ...(kind === "redis" && d === "a.example" ? { store: redisStoreConfig(testRedisKind()) } : {}),
      }),
      (d) => (d === "b.example" ? { signingKey: bKey, store: new MemoryStore() } : {}),
    )) as [Provider, Provider];
    alice = await MlsClient.connect(a.url, "alice@a.example/phone");
    bob = await MlsClient.connect(a.url, "bob@a.example/laptop");
    carol = await MlsClient.connect(b.url, "carol@b.example/tablet");
    aliceSent = recorder(alice);
    carolSent = recorder(carol);
    await Promise.all([bob.publishKeyPackages(2), carol.publishKeyPackages(2)]);
    groupId = await alice.createGroup();
    await alice.addUsers(groupId, ["bob@a.example", "carol@b.example"]);
    for (const c of [bob, carol]) {
      const deadline = Date.now() + 10_000;
      while (!c.groupIds().includes(groupId) && Date.now() < deadline) await c.sync({ waitMs: 300 });
      expect(c.groupIds()).toContain(groupId);
    }
  }, 60_000);

  afterAll(() => stopAll([a, b]));

  it("answers a retried application message with the same seq and delivers it once, locally and remotely", async () => {
    const first = await alice.send(groupId, "only once");
    const body = aliceSent.at(-1)!;
    expect(typeof body.message).toBe("string");
    const retries = await Promise.all([1, 2, 3].map(() => alice.api.send(groupId, body.message as string)));
    expect(retries).toEqual([first, first, first]);

    const log = await a.ds.ctx.store.readLog(groupId, 0, 1000);
    expect(log.filter((e) => e.message === body.message)).toHaveLength(1);
    await drained(a, "b.example");
    expect(copiesOf(await inbox(bob), groupId, first.seq)).toBe(1);
    expect(copiesOf(await inbox(carol, (m) => copiesOf(m, groupId, first.seq) > 0), groupId, first.seq)).toBe(1);
    // Both decrypt it exactly once.
    const texts = async (c: MlsClient) => (await c.sync()).flatMap((e) => (e.kind === "message" ? [e.text] : []));
    expect(await texts(bob)).toEqual(["only once"]);
    expect(await texts(carol)).toEqual(["only once"]);
  });

  it("answers a retried commit with its original seq and epoch, even after another commit won the next epoch", async () => {
    const answer = await alice.update(groupId);
    const bundle = aliceSent.at(-1)!;
    expect(typeof bundle.commit).toBe("string");
    const epoch = answer.epoch;
    // A timed-out client retries at once: same answer, nothing new in the log.
    const seqsBefore = (await a.ds.ctx.store.readLog(groupId, 0, 1000)).length;
    await expect(alice.api.commit(groupId, bundle as never)).resolves.toEqual({ seq: answer.seq, epoch });
    expect((await a.ds.ctx.store.readLog(groupId, 0, 1000)).length).toBe(seqsBefore);
    expect(copiesOf(await inbox(bob), groupId, answer.seq)).toBe(1);

    // Bob applies alice's commit and wins the next epoch; alice's late retry still learns she won hers.
    const bobEvents = await bob.sync({ waitMs: 1000 });
    expect(bobEvents.filter((e) => e.kind === "commit")).toHaveLength(1);
    const bobs = await bob.update(groupId);
    expect(bobs.epoch).toBe(epoch + 1);
    await expect(alice.api.commit(groupId, bundle as never)).resolves.toEqual({ seq: answer.seq, epoch });

    const clog = await a.ds.ctx.store.commitLog(groupId, -1);
    expect(clog.map((e) => e.epoch)).toEqual([...new Set(clog.map((e) => e.epoch))]);
    expect(clog.filter((e) => e.seq === answer.seq)).toHaveLength(1);
    await drained(a, "b.example");
    // Bob acknowledged it; the late retry put nothing back. Carol (remote) holds exactly one copy.
    expect(copiesOf(await inbox(bob), groupId, answer.seq)).toBe(0);
    expect(copiesOf(await inbox(carol, (m) => copiesOf(m, groupId, bobs.seq) > 0), groupId, answer.seq)).toBe(1);
    await expect(bob.sync()).resolves.toEqual([]);
    await alice.sync({ waitMs: 500 });
    await carol.sync({ waitMs: 500 });
    expect([alice.epoch(groupId), bob.epoch(groupId), carol.epoch(groupId)]).toEqual([epoch + 1, epoch + 1, epoch + 1]);
  });

  it("gives retries through a follower (carol on b.example) the hub's original answers", async () => {
    const sent = await carol.send(groupId, "from the follower");
    const message = carolSent.at(-1)!.message as string;
    await expect(carol.api.send(groupId, message)).resolves.toEqual(sent);

    const committed = await carol.update(groupId);
    const bundle = carolSent.at(-1)!;
    await alice.sync({ waitMs: 1000 });
    await alice.update(groupId); // another commit wins the next epoch
    await expect(carol.api.commit(groupId, bundle as never)).resolves.toEqual({ seq: committed.seq, epoch: committed.epoch });

    expect(copiesOf(await inbox(bob), groupId, sent.seq)).toBe(1);
    const log = await a.ds.ctx.store.readLog(groupId, 0, 1000);
    expect(log.filter((e) => e.message === message)).toHaveLength(1);
    expect(log.filter((e) => e.message === bundle.commit)).toHaveLength(1);
  });

  it("accepts the same bytes submitted concurrently exactly once", async () => {
    await bob.sync({ waitMs: 500 });
    await bob.send(groupId, "warm-up");
    const before = (await a.ds.ctx.store.getGroup(groupId))!.nextSeq;
    const bobSent = recorder(bob);
    await bob.send(groupId, "concurrent");
    const message = bobSent.at(-1)!.message as string;
    const answers = await Promise.all(Array.from({ length: 10 }, () => bob.api.send(groupId, message)));
    expect(new Set(answers.map((x) => x.seq)).size).toBe(1);
    expect((await a.ds.ctx.store.getGroup(groupId))!.nextSeq).toBe(before + 1);
  });

  it("stores a federation delivery sent twice (and again after the recipient acknowledged it) once", async () => {
    // A group hubbed at b.example with alice as a remote member; a.example holds a replica. B's own
    // outbox is stopped, so what reaches a.example is exactly the deliveries sent below.
    await b.ds.ctx.outbox.stop();
    const g2 = await carol.createGroup();
    await alice.publishKeyPackages(1);
    await carol.addUsers(g2, ["alice@a.example"]);
    await carol.send(g2, "hello alice");
    expect(await a.ds.ctx.store.getGroup(g2)).toBeUndefined();
    const entries = (await b.ds.ctx.store.readLog(g2, 0, 100)).map((e) => ({
      groupId: g2,
      seq: e.seq,
      kind: e.kind,
      epoch: e.epoch,
      sender: e.sender,
      message: e.message,
      sha256: e.sha256,
      recipients: e.recipients.filter((r) => r.startsWith("alice@")),
    }));
    expect(entries.map((e) => e.kind)).toEqual(["commit", "welcome", "application"]);
    const body = Buffer.from(
      JSON.stringify({ groups: { [g2]: viewOf((await b.ds.ctx.store.getGroup(g2))!) }, messages: entries }),
    );
    const deliver = async () => {
      const path = "/federation/v1/deliver";
      const token = await signRequest(bKey, "b.example", "a.example", { method: "POST", path, body }, 60);
      const res = await fetch(a.url + path, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body,
      });
      expect(res.status).toBe(200);
    };
    await deliver();
    await deliver();
    const forAlice = (m: InboxEntry[]) => m.filter((e) => e.groupId === g2);
    const got = forAlice(await inbox(alice));
    expect(got.map((e) => e.seq)).toEqual([2, 3]); // the welcome and the message; the commit was not for her
    expect((await a.ds.ctx.store.readLog(g2, 0, 100)).map((e) => e.seq)).toEqual([1, 2, 3]);

    const events = (await alice.sync()).filter((e) => "groupId" in e && e.groupId === g2);
    expect(events.map((e) => e.kind)).toEqual(["joined", "message"]);
    await deliver(); // a late redelivery after the ack must not resurrect anything
    expect(forAlice(await inbox(alice))).toEqual([]);
    expect(await alice.sync()).toEqual([]);
  });
});

/**
 * A store that fails once on purpose, where a Redis crash can hit: after the entry was ordered,
 * either its fan-out (marking it dispatched) or the answer to the DS is lost. The client sees an
 * error and retries with the same bytes; the member still gets the message exactly once (members
 * read it from the group log through their feeds, domain/feeds.ts).
 */
describe.each([
  { fault: "the fan-out fails after the entry was ordered", method: "markDispatched", after: false },
  { fault: "the store's answer is lost after the entry was ordered", method: "submit", after: true },
])("a retry repairs a fan-out that the first attempt lost: $fault", ({ method, after }) => {
  it("delivers the message exactly once after the client's retry", async () => {
    const store = new MemoryStore();
    let armed = false;
    const faulty = new Proxy(store, {
      get(target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== "function") return value;
        const fn = (value as (...args: unknown[]) => Promise<unknown>).bind(target);
        if (prop !== method) return fn;
        return async (...args: unknown[]) => {
          if (armed && !after) {
            armed = false;
            throw new Error("simulated store outage");
          }
          const result = await fn(...args);
          if (armed && after) {
            armed = false;
            throw new Error("simulated lost reply");
          }
          return result;
        };
      },
    });
    // bob is a client of b.example: the fan-out (the outbox to b, then the dispatch mark) is a step
    // of its own after the accept. (A group of a.example's clients only has none: its accept
    // settles everything in one store step, SubmitOutcome.settled.)
    const [a, b] = await startFederation(
      ["a.example", "b.example"],
      () => ({}),
      (d) => (d === "a.example" ? { store: faulty } : {}),
    );
    try {
      const alice = await MlsClient.connect(a!.url, "alice@a.example/phone");
      const bob = await MlsClient.connect(b!.url, "bob@b.example/laptop");
      await bob.publishKeyPackages(1);
      const groupId = await alice.createGroup();
      await alice.addUsers(groupId, ["bob@b.example"]);
      await bob.sync({ waitMs: 3000 });
      const sent = recorder(alice);

      armed = true;
      await expect(alice.send(groupId, "lost on the way?")).rejects.toMatchObject({ status: expect.any(Number) });
      expect(armed).toBe(false);
      const retry = await alice.api.send(groupId, sent.at(-1)!.message as string);
      expect(retry.seq).toBe((await store.getGroup(groupId))!.nextSeq - 1);

      const events = await bob.sync({ waitMs: 3000 });
      expect(events.flatMap((e) => (e.kind === "message" ? [e.text] : []))).toEqual(["lost on the way?"]);
      await alice.api.send(groupId, sent.at(-1)!.message as string); // and again: nothing new
      expect(await bob.sync({ waitMs: 300 })).toEqual([]);
    } finally {
      await stopAll([a!, b!]);
    }
  });
});

describe("a fan-out that failed and was never retried", () => {
  it("does not hold back the members (they read the log) and is redone by crash recovery without duplicates", async () => {
    const store = new MemoryStore();
    let failNext = false;
    const faulty = new Proxy(store, {
      get(target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== "function") return value;
        const fn = (value as (...args: unknown[]) => Promise<unknown>).bind(target);
        if (prop !== "markDispatched") return fn;
        return async (...args: unknown[]) => {
          if (failNext) {
            failNext = false;
            throw new Error("simulated store outage");
          }
          return fn(...args);
        };
      },
    });
    const [a, b] = await startFederation(
      ["a.example", "b.example"],
      () => ({}),
      (d) => (d === "a.example" ? { store: faulty } : {}),
    );
    try {
      const alice = await MlsClient.connect(a!.url, "alice@a.example/phone");
      const bob = await MlsClient.connect(b!.url, "bob@b.example/laptop");
      await bob.publishKeyPackages(1);
      const groupId = await alice.createGroup();
      await alice.addUsers(groupId, ["bob@b.example"]);
      await bob.sync({ waitMs: 3000 });

      failNext = true;
      await expect(alice.send(groupId, "first")).rejects.toMatchObject({ status: expect.any(Number) });
      const first = (await store.getGroup(groupId))!.nextSeq - 1;
      const second = await alice.send(groupId, "second"); // its fan-out succeeds; the client never retries "first"
      const apps = (m: InboxEntry[]) => m.filter((e) => e.groupId === groupId && e.kind === "application");
      const seqs = async () => apps(await inbox(bob, (m) => apps(m).length >= 2)).map((e) => e.seq);
      // The outbox item was written before the dispatch mark failed, so b has both …
      expect(await seqs()).toEqual([first, second.seq]);
      // … and the fan-out is still owed (the mark stays where it was): recovery redoes it, and
      // b's replica and bob's inbox take nothing twice.
      expect(await store.undispatched()).toEqual([{ groupId, fromSeq: first }]);
      expect(await a!.ds.ctx.dispatcher.recover()).toBe(2);
      await new Promise((r) => setTimeout(r, 300));
      expect(await seqs()).toEqual([first, second.seq]);
      expect(await store.undispatched()).toEqual([]);
    } finally {
      await stopAll([a!, b!]);
    }
  });
});
