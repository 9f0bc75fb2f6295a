import { MlsClient, type MlsEvent } from "../../src/client/index.js";
import { signRequest } from "../../src/federation/service-auth.js";
import { startMixedFederation, type MimiProvider } from "../helpers/mimi.js";
import { redisUrl, stopAll, uniquePrefix } from "../helpers/providers.js";
import type { TestPki } from "../helpers/pki.js";

const texts = (events: MlsEvent[]) => events.flatMap((e) => (e.kind === "message" ? [e.text] : []));

describe("a mixed triangle: a.example speaks fedgate to b.example and MIMI to c.example (on Redis)", () => {
  let providers: MimiProvider[];
  let pki: TestPki;
  let alice: MlsClient, bob: MlsClient, carol: MlsClient;
  let groupId: string;

  beforeAll(async () => {
    // c.example (the MIMI follower) runs on the Redis store, the others on memory.
    ({ providers, pki } = await startMixedFederation(
      ["a.example", "b.example", "c.example"],
      (x, y) => ([x, y].includes("c.example") ? "mimi" : "fedgate"),
      undefined,
      (d) => (d === "c.example" ? { store: { kind: "redis", redisUrl: redisUrl(), prefix: uniquePrefix() } } : {}),
    ));
    const [a, b, c] = providers as [MimiProvider, MimiProvider, MimiProvider];
    alice = await MlsClient.connect(a.url, "alice@a.example/phone", { commitFormat: "public" });
    bob = await MlsClient.connect(b.url, "bob@b.example/laptop", { commitFormat: "public" });
    carol = await MlsClient.connect(c.url, "carol@c.example/desk", { commitFormat: "public" });
    for (const cl of [alice, bob, carol]) await cl.publishKeyPackages(3, { lastResort: true });
  });
  afterAll(async () => {
    await stopAll(providers);
    pki.dispose();
  });

  it("claims over both bindings and builds one group across the three providers", async () => {
    const viaFedgate = await alice.api.claim("bob@b.example", [1]);
    const viaMimi = await alice.api.claim("carol@c.example", [1]);
    expect([viaFedgate.bundles[0]?.client, viaMimi.bundles[0]?.client]).toEqual(["bob@b.example/laptop", "carol@c.example/desk"]);
    groupId = await alice.createGroup();
    await alice.addUsers(groupId, ["bob@b.example", "carol@c.example"]);
    for (const cl of [bob, carol]) await cl.syncUntil((ev) => ev.some((e) => e.kind === "joined"));
    expect(await bob.api.group(groupId)).toMatchObject({ hub: "a.example", epoch: 1 });
    expect(await carol.api.group(groupId)).toMatchObject({ hub: "a.example", epoch: 1 });
  });

  it("delivers every member's messages to everyone else whichever binding carries them", async () => {
    await alice.send(groupId, "from A");
    await bob.send(groupId, "from B");
    await carol.send(groupId, "from C");
    for (const [cl, want] of [
      [alice, ["from B", "from C"]],
      [bob, ["from A", "from C"]],
      [carol, ["from A", "from B"]],
    ] as const) {
      const events = await cl.syncUntil((ev) => texts(ev).length >= 2);
      expect(texts(events).sort()).toEqual([...want]);
    }
  });

  it("orders commits from a fedgate follower and a MIMI follower on the one hub", async () => {
    const results = await Promise.allSettled([bob.update(groupId), carol.update(groupId)]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled"]);
    const deadline = Date.now() + 10_000;
    while (new Set([alice, bob, carol].map((cl) => cl.epoch(groupId))).size > 1 && Date.now() < deadline) {
      for (const cl of [alice, bob, carol]) await cl.sync({ waitMs: 100 });
    }
    expect([alice, bob, carol].map((cl) => cl.epoch(groupId))).toEqual([3, 3, 3]);
    await carol.removeClients(groupId, ["bob@b.example/laptop"]);
    await bob.syncUntil((ev) => ev.some((e) => e.kind === "removed"));
    await alice.send(groupId, "bye bob");
    expect(texts(await carol.syncUntil((ev) => texts(ev).length >= 1))).toEqual(["bye bob"]);
  });

  it("refuses a fedgate request signed by a peer configured to speak MIMI", async () => {
    const [a, , c] = providers as [MimiProvider, MimiProvider, MimiProvider];
    const body = Buffer.from(JSON.stringify({ groups: {}, messages: [] }));
    const path = "/federation/v1/deliver";
    const token = await signRequest(c.ds.ctx.signingKey, "c.example", "a.example", { method: "POST", path, body }, 60);
    const res = await fetch(a.url + path, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body,
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { reason: string } }).error.reason).toBe("mimi_peer");
  });

  it("drops a MIMI follower's last member: removal delivered, then the follower's view no longer lists it", async () => {
    await alice.removeClients(groupId, ["carol@c.example/desk"]);
    await carol.syncUntil((ev) => ev.some((e) => e.kind === "removed"));
    await expect(carol.api.group(groupId)).rejects.toMatchObject({ status: 403, code: "not_a_member" });
    await alice.send(groupId, "carol gone");
    expect(await carol.sync({ waitMs: 300 })).toEqual([]);
  });
});
