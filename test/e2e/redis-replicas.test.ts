import { createCommit, encodeMlsMessage } from "ts-mls";
import { MlsClient, FedgateApi, FedgateError } from "../../src/client/index.js";
import { toB64u } from "../../src/client/b64.js";
import { SteppableClock } from "../helpers/clock.js";
import { redisStoreConfig, testRedisKind, startProvider, stopAll, testKey, type Provider } from "../helpers/providers.js";

/** Two DS instances of one provider sharing one real Redis: ordering and claims hold across them. */
describe("two replicas of one provider on a shared Redis", () => {
  let r1: Provider;
  let r2: Provider;
  // Both replicas read time from this clock: a lease expiry is a step forward, not a sleep.
  const clock = new SteppableClock();

  beforeAll(async () => {
    const store = redisStoreConfig(testRedisKind());
    const key = await testKey();
    r1 = await startProvider("a.example", { store }, { signingKey: key, clock });
    r2 = await startProvider("a.example", { store }, { signingKey: key, clock });
  });
  afterAll(() => stopAll([r1, r2]));

  it("accepts exactly one of 20 simultaneous commits for one epoch, sent through both replicas", async () => {
    const owner = await MlsClient.connect(r1.url, "owner@a.example/1");
    const others = await Promise.all(
      Array.from({ length: 19 }, (_, i) => MlsClient.connect(i % 2 ? r1.url : r2.url, `m${i}@a.example/1`)),
    );
    for (const c of others) await c.publishKeyPackages(1);
    const groupId = await owner.createGroup();
    await owner.addUsers(
      groupId,
      others.map((c) => c.user),
    );
    for (const c of others) await c.sync({ waitMs: 2000 });
    const everyone = [owner, ...others];
    expect(new Set(everyone.map((c) => c.epoch(groupId)))).toEqual(new Set([1]));
    // Every member builds a commit on epoch 1; all are sent at once, alternating replicas.
    const commits = await Promise.all(
      everyone.map(async (c) =>
        toB64u(encodeMlsMessage((await createCommit({ state: c.state(groupId), cipherSuite: c.cs })).commit)),
      ),
    );
    const apis = everyone.map((c, i) => new FedgateApi(i % 2 ? r1.url : r2.url, c.id));
    await Promise.all(apis.map((api) => api.login()));
    const outcomes = await Promise.allSettled(apis.map((api, i) => api.commit(groupId, { commit: commits[i]! })));
    const accepted = outcomes.filter((o) => o.status === "fulfilled");
    const stale = outcomes.filter(
      (o) => o.status === "rejected" && o.reason instanceof FedgateError && o.reason.code === "stale_epoch",
    );
    expect(accepted).toHaveLength(1);
    expect(stale).toHaveLength(19);
    for (const o of stale) expect((o as PromiseRejectedResult).reason.details.expectedEpoch).toBe(2);
    expect((await apis[0]!.group(groupId)).epoch).toBe(2);
  });

  it("hands 10 KeyPackages to 20 concurrent claims exactly once, then the last-resort one", async () => {
    const target = await MlsClient.connect(r1.url, "target@a.example/1");
    await target.publishKeyPackages(10, { lastResort: true });
    const claimers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => new FedgateApi(i % 2 ? r1.url : r2.url, `claimer${i}@a.example/1`).login()),
    );
    const answers = await Promise.all(claimers.map((api) => api.claim("target@a.example", [1])));
    const fresh = answers.filter((a) => !a.bundles[0]!.lastResort).map((a) => a.bundles[0]!.keyPackage);
    const lastResort = answers.filter((a) => a.bundles[0]!.lastResort).map((a) => a.bundles[0]!.keyPackage);
    expect(fresh).toHaveLength(10);
    expect(new Set(fresh).size).toBe(10);
    expect(lastResort).toHaveLength(10);
    expect(new Set(lastResort).size).toBe(1);
  });

  it("answers no_key_package when the pool is empty and there is no last-resort package", async () => {
    const target = await MlsClient.connect(r2.url, "lonely@a.example/1");
    await target.publishKeyPackages(2);
    const claimer = await new FedgateApi(r1.url, "claimer@a.example/9").login();
    await claimer.claim("lonely@a.example", [1]);
    await claimer.claim("lonely@a.example", [1]);
    await expect(claimer.claim("lonely@a.example", [1])).rejects.toMatchObject({ status: 404, code: "no_key_package" });
  });

  it("blocks commits through replica 2 while a lease taken on replica 1 is held, until released or expired", async () => {
    const alice = await MlsClient.connect(r1.url, "alice@a.example/1");
    const bob = await MlsClient.connect(r2.url, "bob@a.example/1");
    await bob.publishKeyPackages(1);
    const groupId = await alice.createGroup();
    await alice.addUsers(groupId, ["bob@a.example"]);
    await bob.sync({ waitMs: 2000 });

    const lease = await alice.api.lease(groupId, 10_000);
    await expect(bob.update(groupId)).rejects.toMatchObject({
      status: 423,
      code: "group_locked",
      details: { leaseExpiresAt: lease.expiresAt },
    });
    await alice.update(groupId, { leaseToken: lease.leaseToken });
    await alice.api.releaseLease(groupId, lease.leaseToken);
    await bob.sync({ waitMs: 1000 });
    await expect(bob.update(groupId)).resolves.toMatchObject({ epoch: 3 });

    await alice.sync({ waitMs: 1000 });
    await alice.api.lease(groupId, 20_000);
    await expect(bob.update(groupId)).rejects.toMatchObject({ code: "group_locked" });
    clock.advance(20_001);
    await expect(bob.update(groupId)).resolves.toMatchObject({ epoch: 4 });
  });

  it("lets long-polling clients on one replica wake up for messages accepted on the other", async () => {
    const alice = await MlsClient.connect(r1.url, "alice2@a.example/1");
    const bob = await MlsClient.connect(r2.url, "bob2@a.example/1");
    await bob.publishKeyPackages(1);
    const groupId = await alice.createGroup();
    await alice.addUsers(groupId, ["bob2@a.example"]);
    await bob.sync({ waitMs: 2000 });
    const started = Date.now();
    const waiting = bob.sync({ waitMs: 10_000 });
    setTimeout(() => void alice.send(groupId, "wake up"), 200);
    const events = await waiting;
    expect(events).toContainEqual(expect.objectContaining({ kind: "message", text: "wake up" }));
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe("a hub running as two replicas on one Redis, with follower replicas submitting to both", () => {
  const providers: Provider[] = [];
  afterAll(() => stopAll(providers));

  it("orders commits from both follower replicas and delivers to everyone", async () => {
    const { freePort } = await import("../helpers/global-setup.js");
    const ports = await Promise.all([0, 1, 2, 3].map(() => freePort()));
    const url = (i: number) => `http://127.0.0.1:${ports[i]}`;
    const storeA = redisStoreConfig(testRedisKind());
    const storeB = redisStoreConfig(testRedisKind());
    const [keyA, keyB] = [await testKey(), await testKey()];
    // a1 ↔ b1 and a2 ↔ b2: each follower replica talks to a different hub replica.
    const start = (domain: string, i: number, store: object, peer: string, peerIndex: number, signingKey: typeof keyA) =>
      startProvider(
        domain,
        { port: ports[i], store, federation: { peers: { [peer]: { url: url(peerIndex) } } } },
        { signingKey },
      );
    providers.push(
      await start("a.example", 0, storeA, "b.example", 2, keyA),
      await start("a.example", 1, storeA, "b.example", 3, keyA),
      await start("b.example", 2, storeB, "a.example", 0, keyB),
      await start("b.example", 3, storeB, "a.example", 1, keyB),
    );
    const alice = await MlsClient.connect(url(0), "alice@a.example/1");
    const bob = await MlsClient.connect(url(2), "bob@b.example/1");
    const carol = await MlsClient.connect(url(3), "carol@b.example/1");
    await bob.publishKeyPackages(1);
    await carol.publishKeyPackages(1);
    const groupId = await alice.createGroup();
    await alice.addUsers(groupId, ["bob@b.example", "carol@b.example"]);
    for (const c of [bob, carol]) expect((await c.sync({ waitMs: 3000 })).some((e) => e.kind === "joined")).toBe(true);

    // bob (via b1 → a1) and carol (via b2 → a2) race for the same epoch: one wins, the other retries.
    const [rb, rc] = await Promise.all([bob.update(groupId), carol.update(groupId)]);
    expect([rb.epoch, rc.epoch].sort()).toEqual([2, 3]);
    expect([rb.attempts, rc.attempts].filter((n) => n === 1)).toHaveLength(1);
    for (let i = 0; i < 10 && new Set([alice, bob, carol].map((c) => c.epoch(groupId))).size > 1; i++) {
      for (const c of [alice, bob, carol]) await c.sync({ waitMs: 300 });
    }
    expect([alice, bob, carol].map((c) => c.epoch(groupId))).toEqual([3, 3, 3]);
    await alice.send(groupId, "from the hub");
    for (const c of [bob, carol]) {
      const got = await c.sync({ waitMs: 3000 });
      expect(got).toContainEqual(expect.objectContaining({ kind: "message", text: "from the hub" }));
    }
  });
});
