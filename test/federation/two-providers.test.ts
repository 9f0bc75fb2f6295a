import { MlsClient, type MlsEvent } from "../../src/client/index.js";
import { startFederation, stopAll, type Provider } from "../helpers/providers.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function texts(events: MlsEvent[]): string[] {
  return events.flatMap((e) => (e.kind === "message" ? [`${e.sender}: ${e.text}`] : []));
}

describe("three providers share one conversation through server fan-out", () => {
  let providers: Provider[];
  let a: Provider, b: Provider, c: Provider;
  let alice: MlsClient, bob: MlsClient, carol: MlsClient, dave: MlsClient;
  let groupId: string;

  beforeAll(async () => {
    providers = await startFederation(["a.example", "b.example", "c.example"]);
    [a, b, c] = providers as [Provider, Provider, Provider];
    alice = await MlsClient.connect(a.url, "alice@a.example/phone");
    bob = await MlsClient.connect(b.url, "bob@b.example/laptop");
    carol = await MlsClient.connect(b.url, "carol@b.example/phone");
    dave = await MlsClient.connect(c.url, "dave@c.example/desk");
    for (const cl of [alice, bob, carol, dave]) await cl.publishKeyPackages(3, { lastResort: true });
  });
  afterAll(() => stopAll(providers));

  it("claims remote KeyPackages through the client's own DS with suite negotiation", async () => {
    const answer = await alice.api.claim("bob@b.example", [2, 1]);
    expect(answer).toMatchObject({ user: "bob@b.example", version: "mls10", cipherSuite: 1, missing: [] });
    expect(answer.bundles.map((x) => x.client)).toEqual(["bob@b.example/laptop"]);
    const none = await alice.api.claim("bob@b.example", [2]).catch((e: unknown) => e);
    expect(none).toMatchObject({ status: 409, code: "no_common_cipher_suite" });
    const peer = await alice.api.peer("b.example");
    expect(peer).toMatchObject({ domain: "b.example", protocolVersions: ["mls10"], cipherSuites: [1, 2, 3] });
    const devices = await alice.api.devices("carol@b.example");
    expect(devices.devices.map((d) => d.client)).toEqual(["carol@b.example/phone"]);
  });

  it("lets a hub on A add members of B and C who join from Welcomes delivered by their own DS", async () => {
    groupId = await alice.createGroup();
    await alice.addUsers(groupId, ["bob@b.example", "carol@b.example", "dave@c.example"]);
    for (const cl of [bob, carol, dave]) {
      const events = await cl.syncUntil((ev) => ev.some((e) => e.kind === "joined"));
      expect(events).toContainEqual({ kind: "joined", groupId, sender: "alice@a.example/phone" });
    }
    const fromB = await bob.api.group(groupId);
    expect(fromB).toMatchObject({ hub: "a.example", epoch: 1 });
    expect(fromB.members).toHaveLength(4);
  });

  it("delivers every member's messages to everyone else, decrypted", async () => {
    await alice.send(groupId, "hi from A");
    await bob.send(groupId, "hi from B");
    await dave.send(groupId, "hi from C");
    const want = (me: MlsClient) =>
      ["alice@a.example/phone: hi from A", "bob@b.example/laptop: hi from B", "dave@c.example/desk: hi from C"].filter(
        (t) => !t.startsWith(me.id),
      );
    for (const cl of [alice, bob, carol, dave]) {
      const events = await cl.syncUntil((ev) => texts(ev).length >= want(cl).length);
      expect(texts(events).sort()).toEqual(want(cl).sort());
    }
  });

  it("forwards a follower's commit to the hub and removes across providers", async () => {
    const { epoch } = await carol.removeClients(groupId, ["dave@c.example/desk"]);
    expect(epoch).toBe(2);
    for (const cl of [alice, bob]) {
      const events = await cl.syncUntil((ev) => ev.some((e) => e.kind === "commit"));
      expect(events).toContainEqual(expect.objectContaining({ kind: "commit", sender: "carol@b.example/phone", epoch: 2 }));
    }
    const daveEvents = await dave.syncUntil((ev) => ev.some((e) => e.kind === "removed"));
    expect(daveEvents).toContainEqual({ kind: "removed", groupId, sender: "carol@b.example/phone" });
    await alice.send(groupId, "dave is out");
    await bob.syncUntil((ev) => texts(ev).includes("alice@a.example/phone: dave is out"));
    // Once the hub has nothing left for c.example, whatever it sent there is in dave's inbox: nothing is.
    const deadline = Date.now() + 10_000;
    while ((await a.ds.ctx.store.outboxStats("c.example")).depth > 0 && Date.now() < deadline) await sleep(20);
    expect((await a.ds.ctx.store.outboxStats("c.example")).depth).toBe(0);
    expect(await dave.sync()).toEqual([]);
  });

  it("resolves commit races across providers to one winner per epoch, with identical commit logs", async () => {
    for (let round = 0; round < 3; round++) {
      const results = await Promise.allSettled([alice.update(groupId), bob.update(groupId), carol.update(groupId)]);
      expect(results.every((r) => r.status === "fulfilled")).toBe(true);
      const epochs = results.map((r) => (r.status === "fulfilled" ? r.value.epoch : -1)).sort();
      // All three eventually commit, each on its own epoch: exactly one winner per epoch.
      expect(new Set(epochs).size).toBe(3);
      for (const cl of [alice, bob, carol]) await cl.sync({ waitMs: 200 });
    }
    const deadline = Date.now() + 10_000;
    for (;;) {
      for (const cl of [alice, bob, carol]) await cl.sync({ waitMs: 100 });
      if (new Set([alice, bob, carol].map((cl) => cl.epoch(groupId))).size === 1 || Date.now() > deadline) break;
    }
    const epochs = [alice, bob, carol].map((cl) => cl.epoch(groupId));
    expect(new Set(epochs).size).toBe(1);
    const logs = await Promise.all([alice, bob, carol].map((cl) => cl.api.commitLog(groupId)));
    expect(logs[0]!.entries.length).toBe(epochs[0]);
    expect(logs[1]).toEqual(logs[0]);
    expect(logs[2]).toEqual(logs[0]);
    // Everyone still decrypts everyone after the races.
    await bob.send(groupId, "after the race");
    for (const cl of [alice, carol]) await cl.syncUntil((ev) => texts(ev).includes("bob@b.example/laptop: after the race"));
  });

  it("lets a client of B hold the hub's lease through its own DS", async () => {
    const lease = await bob.api.lease(groupId, 5000);
    const blocked = await alice.update(groupId).catch((e: unknown) => e);
    expect(blocked).toMatchObject({ status: 423, code: "group_locked" });
    const { epoch } = await bob.update(groupId, { leaseToken: lease.leaseToken });
    await bob.api.releaseLease(groupId, lease.leaseToken);
    await alice.syncUntil((ev) => ev.some((e) => e.kind === "commit" && e.epoch === epoch));
    await expect(alice.update(groupId)).resolves.toMatchObject({ epoch: epoch + 1 });
  });
});
