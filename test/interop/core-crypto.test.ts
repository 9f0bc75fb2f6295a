import { randomUUID } from "node:crypto";
import { MlsClient, type MlsEvent } from "../../src/client/index.js";
import { connectCoreCrypto } from "../helpers/core-crypto.js";
import { startFederation, stopAll, type Provider } from "../helpers/providers.js";

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
});
