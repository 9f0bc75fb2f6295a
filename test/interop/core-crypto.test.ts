import { randomUUID } from "node:crypto";
import { createProposal, encodeMlsMessage } from "ts-mls";
import { MlsClient, toB64u, type MlsEvent } from "../../src/client/index.js";
import { connectCoreCrypto } from "../helpers/core-crypto.js";
import { startFederation, startProvider, stopAll, type Provider } from "../helpers/providers.js";

/** A client id core-crypto can be: `<uuid>@<domain>/<hex>` (Wire identity `<uuid>:<hex>@<domain>`). */
const wireClient = (domain: string, device = "1") => `${randomUUID()}@${domain}/${device}`;
const texts = (ev: MlsEvent[], groupId: string) =>
  ev.flatMap((e) => (e.kind === "message" && e.groupId === groupId ? [e.text] : []));
const has = (kind: MlsEvent["kind"], groupId: string) => (ev: MlsEvent[]) =>
  ev.some((e) => e.kind === kind && "groupId" in e && e.groupId === groupId);

/** ts-mls in a group with core-crypto members: wire identities and PublicMessage commits. */
const tsMls = (url: string, client: string) => MlsClient.connect(url, client, { identityScheme: "wire", commitFormat: "public" });

describe("interop: ts-mls (mls-fedgate SDK) and Wire's core-crypto 10.3.0 (openmls) across two providers", () => {
  let providers: Provider[];
  let a: Provider, b: Provider;

  beforeAll(async () => {
    providers = await startFederation(["a.example", "b.example"], () => ({
      identity: { schemes: ["fedgate", "wire"] },
      keyPackages: { lastResortBySlot: true },
    }));
    [a, b] = providers as [Provider, Provider];
  });
  afterAll(() => stopAll(providers));

  it("0. announces identity schemes, lists each device's identities, and a fedgate-only provider refuses core-crypto's uploads", async () => {
    const doc = (await (await fetch(`${b.url}/.well-known/mls-federation`)).json()) as { identitySchemes: string[] };
    expect(doc.identitySchemes).toEqual(["fedgate", "wire"]);
    const cc = await connectCoreCrypto(b.url, wireClient("b.example", "ab12"));
    const up = await cc.publishKeyPackages(1, { lastResort: true }); // core-crypto: no last_resort extension
    expect(up).toMatchObject({ rejected: [], accepted: [{ lastResort: false }, { lastResort: true }] });
    const viewer = await MlsClient.connect(a.url, "viewer@a.example/1");
    const [uuid, device] = [cc.user.slice(0, cc.user.indexOf("@")), "ab12"];
    expect((await viewer.api.devices(cc.user)).devices).toEqual([
      { client: cc.id, cipherSuites: [1], identities: { fedgate: cc.id, wire: `${uuid}:${device}@b.example` } },
    ]);

    const plain = await startProvider("c.example"); // defaults: identity.schemes ["fedgate"], no lastResortBySlot
    try {
      const refused = await connectCoreCrypto(plain.url, wireClient("c.example"));
      const answer = await refused.publishKeyPackages(1, { lastResort: true });
      expect(answer.accepted).toEqual([]);
      expect(answer.rejected.map((r) => r.code)).toEqual(["credential_mismatch", "credential_mismatch"]);
      const fedgate = await MlsClient.connect(plain.url, "carl@c.example/1");
      await fedgate.publishKeyPackages(1);
      // A last-resort KeyPackage without the extension is refused where the slot does not mark it.
      const bare = await refusedLastResort(plain.url);
      expect(bare).toMatchObject({ accepted: [], rejected: [{ code: "invalid_key_package" }] });
    } finally {
      await stopAll([plain]);
    }
  });

  it("1. a ts-mls creator on A adds a core-crypto client of B (server fan-out); messages, updates both ways; removal stops delivery", async () => {
    const alice = await tsMls(a.url, wireClient("a.example"));
    const bob = await connectCoreCrypto(b.url, wireClient("b.example", "b0b"));
    await alice.publishKeyPackages(2);
    expect((await bob.publishKeyPackages(3)).accepted).toHaveLength(3);

    const g = await alice.createGroup();
    const { added } = await alice.addUsers(g, [bob.user]);
    expect(added).toEqual([bob.id]);
    await bob.syncUntil(has("joined", g));
    expect(await bob.members(g)).toEqual([alice.id, bob.id].sort());

    await alice.send(g, "hello from ts-mls");
    expect(texts(await bob.syncUntil((ev) => texts(ev, g).length > 0), g)).toEqual(["hello from ts-mls"]);
    await bob.send(g, "hello from core-crypto");
    expect(texts(await alice.syncUntil((ev) => texts(ev, g).length > 0), g)).toEqual(["hello from core-crypto"]);

    const byBob = await bob.update(g);
    await alice.syncUntil((ev) => ev.some((e) => e.kind === "commit" && e.epoch === byBob.epoch));
    const byAlice = await alice.update(g);
    await bob.syncUntil((ev) => ev.some((e) => e.kind === "commit" && e.epoch === byAlice.epoch));
    expect([alice.epoch(g), await bob.epoch(g)]).toEqual([byAlice.epoch, byAlice.epoch]);
    await bob.send(g, "after both updates");
    expect(texts(await alice.syncUntil((ev) => texts(ev, g).length > 0), g)).toEqual(["after both updates"]);

    await alice.removeClients(g, [bob.id]);
    await bob.syncUntil(has("removed", g));
    expect((await a.ds.ctx.groups.get(alice.id, g)).members).toEqual([alice.id]);
    await alice.send(g, "bob is gone");
    expect((await bob.sync({ waitMs: 300 })).filter((e) => "groupId" in e && e.groupId === g)).toEqual([]);
  });

  it("2. core-crypto creates a group on B and adds ts-mls clients of both providers; everyone reads everyone", async () => {
    const carol = await connectCoreCrypto(b.url, wireClient("b.example", "c"));
    const dave = await tsMls(a.url, wireClient("a.example"));
    const erin = await tsMls(b.url, wireClient("b.example"));
    for (const c of [dave, erin]) await c.publishKeyPackages(2);
    await carol.publishKeyPackages(1);

    const g = await carol.createGroup();
    await carol.addUsers(g, [dave.user, erin.user]);
    for (const c of [dave, erin]) await c.syncUntil(has("joined", g));
    expect(dave.members(g).sort()).toEqual([carol.id, dave.id, erin.id].sort());
    expect((await b.ds.ctx.groups.get(carol.id, g)).hub).toBe("b.example");

    await carol.send(g, "from core-crypto");
    for (const c of [dave, erin])
      expect(texts(await c.syncUntil((ev) => texts(ev, g).length > 0), g)).toEqual(["from core-crypto"]);
    // A ts-mls commit (PublicMessage) that core-crypto and the other ts-mls client both process.
    const { epoch } = await dave.update(g);
    for (const c of [carol, erin]) await c.syncUntil((ev) => ev.some((e) => e.kind === "commit" && e.epoch === epoch));
    await erin.send(g, "from ts-mls on B");
    expect(texts(await carol.syncUntil((ev) => texts(ev, g).length > 0), g)).toEqual(["from ts-mls on B"]);
    expect(texts(await dave.syncUntil((ev) => texts(ev, g).length > 0), g)).toEqual(["from ts-mls on B"]);
  });

  it("3. external joins both ways from the stored GroupInfo, whichever implementation committed last", async () => {
    const carol = await connectCoreCrypto(b.url, wireClient("b.example", "c"));
    const dave = await tsMls(a.url, wireClient("a.example"));
    await dave.publishKeyPackages(1);
    const g = await carol.createGroup();
    await carol.addUsers(g, [dave.user]); // the last commit (and the stored GroupInfo) is core-crypto's
    await dave.syncUntil(has("joined", g));

    // ts-mls joins from core-crypto's GroupInfo: a second device of dave's user.
    const dave2 = await tsMls(a.url, dave.user + "/2");
    const joined = await dave2.joinExternal(g);
    await carol.syncUntil((ev) => ev.some((e) => e.kind === "commit" && e.epoch === joined.epoch));
    await dave.syncUntil((ev) => ev.some((e) => e.kind === "commit" && e.epoch === joined.epoch));

    // core-crypto joins from ts-mls's GroupInfo (dave2's external commit wrote the latest one).
    const carol2 = await connectCoreCrypto(b.url, carol.user + "/c2");
    const again = await carol2.joinExternal(g);
    expect(again.epoch).toBe(joined.epoch + 1);
    for (const c of [carol, dave, dave2])
      await c.syncUntil((ev) => ev.some((e) => e.kind === "commit" && e.epoch === again.epoch));
    expect(await carol2.members(g)).toEqual([carol.id, carol2.id, dave.id, dave2.id].sort());

    await carol2.send(g, "joined by external commit");
    for (const c of [carol, dave, dave2]) {
      expect(texts(await c.syncUntil((ev) => texts(ev, g).length > 0), g)).toEqual(["joined by external commit"]);
    }
  });

  it("4. a user's ts-mls device and core-crypto device are claimed (one bundle each) and added atomically under a lease", async () => {
    const alice = await tsMls(a.url, wireClient("a.example"));
    const bob = await connectCoreCrypto(b.url, wireClient("b.example", "b"));
    await bob.publishKeyPackages(1);
    const user = randomUUID();
    const franksPhone = await tsMls(b.url, `${user}@b.example/1`);
    const franksLaptop = await connectCoreCrypto(b.url, `${user}@b.example/2`);
    await franksPhone.publishKeyPackages(1);
    await franksLaptop.publishKeyPackages(1);
    const g = await alice.createGroup();
    await alice.addUsers(g, [bob.user]);
    await bob.syncUntil(has("joined", g));

    const { leaseToken } = await alice.api.lease(g, 10_000);
    // While alice holds the lease, another member's commit is refused through core-crypto's transport.
    await expect(bob.update(g)).rejects.toMatchObject({ code: "group_locked" });
    const claim = await alice.api.claim(`${user}@b.example`, [1]);
    expect(claim.bundles.map((x) => x.client).sort()).toEqual([franksPhone.id, franksLaptop.id].sort());
    await alice.addKeyPackages(g, claim.bundles, { leaseToken });
    await alice.api.releaseLease(g, leaseToken);

    await franksPhone.syncUntil(has("joined", g));
    await franksLaptop.syncUntil(has("joined", g));
    expect((await a.ds.ctx.groups.get(alice.id, g)).members.sort()).toEqual(
      [alice.id, bob.id, franksPhone.id, franksLaptop.id].sort(),
    );
    await franksLaptop.send(g, "laptop here");
    for (const c of [alice, bob, franksPhone]) {
      expect(texts(await c.syncUntil((ev) => texts(ev, g).length > 0), g)).toEqual(["laptop here"]);
    }
  });

  it("5. a core-crypto committer that loses a commit race gets stale_epoch through its transport, catches up and commits again", async () => {
    const alice = await tsMls(a.url, wireClient("a.example"));
    const bob = await connectCoreCrypto(b.url, wireClient("b.example", "b"));
    await bob.publishKeyPackages(1);
    const g = await alice.createGroup();
    await alice.addUsers(g, [bob.user]);
    await bob.syncUntil(has("joined", g));

    const won = await alice.update(g); // bob has not processed it: his commit is for the old epoch
    const late = await bob.update(g);
    expect(bob.rejections).toEqual([expect.stringMatching(/^stale_epoch: /)]);
    expect(late).toMatchObject({ attempts: 2, epoch: won.epoch + 1 });
    await alice.syncUntil((ev) => ev.some((e) => e.kind === "commit" && e.epoch === late.epoch));
    expect([alice.epoch(g), await bob.epoch(g)]).toEqual([late.epoch, late.epoch]);
    const log = await alice.api.commitLog(g);
    expect(log.entries.map((e) => e.sender)).toEqual([alice.id, alice.id, bob.id]);
  });

  it("6. a core-crypto member of a ts-mls send group processes the sender's inline commit of another member's proposal", async () => {
    const alice = await tsMls(a.url, wireClient("a.example"));
    const bob = await connectCoreCrypto(b.url, wireClient("b.example", "b"));
    const carol = await tsMls(b.url, wireClient("b.example"));
    const dave = await tsMls(a.url, wireClient("a.example"));
    await bob.publishKeyPackages(1);
    for (const c of [carol, dave]) await c.publishKeyPackages(1);
    const g = await alice.createGroup({ mode: "send-group" });
    await alice.addUsers(g, [bob.user, carol.user, dave.user]);
    for (const c of [bob, carol, dave]) await c.syncUntil(has("joined", g));

    // carol proposes removing dave; only alice (the designated sender) receives the proposal.
    const daveLeaf = dave.state(g).privatePath.leafIndex;
    const { message } = await createProposal(
      carol.state(g),
      true,
      { proposalType: "remove", remove: { removed: daveLeaf } },
      carol.cs,
    );
    await carol.api.send(g, toB64u(encodeMlsMessage(message)));
    await alice.syncUntil(has("proposal", g));
    const { epoch } = await alice.update(g);
    const seen = await bob.syncUntil(
      (ev) => ev.some((e) => e.kind === "commit" && e.epoch === epoch) || ev.some((e) => e.kind === "error"),
    );
    expect(seen.filter((e) => e.kind === "error")).toEqual([]);
    await dave.syncUntil(has("removed", g));
    expect(await bob.members(g)).toEqual([alice.id, bob.id, carol.id].sort());
    await alice.send(g, "to the three of you");
    expect(texts(await bob.syncUntil((ev) => texts(ev, g).length > 0), g)).toEqual(["to the three of you"]);
  });

  it("7. core-crypto refuses a PrivateMessage commit (why ts-mls members of mixed groups use commitFormat public)", async () => {
    const alice = await MlsClient.connect(a.url, wireClient("a.example"), { identityScheme: "wire", commitFormat: "private" });
    const bob = await connectCoreCrypto(b.url, wireClient("b.example", "b"));
    await bob.publishKeyPackages(1);
    const g = await alice.createGroup();
    await alice.addUsers(g, [bob.user]);
    await bob.syncUntil(has("joined", g));
    await alice.update(g);
    const [event] = await bob.syncUntil((ev) => ev.some((e) => e.kind === "error" || e.kind === "commit"));
    expect(event).toMatchObject({ kind: "error", error: expect.stringMatching(/wire format/i) });
  });
});

/** A ts-mls client's KeyPackage (no last_resort extension) uploaded in the lastResort slot. */
async function refusedLastResort(url: string) {
  const client = await MlsClient.connect(url, "lr@c.example/1");
  const { accepted } = await client.publishKeyPackages(1);
  const [listed] = (await client.api.listKeyPackages()).keyPackages;
  expect(listed?.ref).toBe(accepted[0]!.ref);
  const claim = await (await MlsClient.connect(url, "other@c.example/1")).api.claim("lr@c.example", [1]);
  return client.api.uploadKeyPackages([], claim.bundles[0]!.keyPackage);
}
