/**
 * A hub on a federated memory store trims its group logs (issue 8): entries every member has got
 * go after the grace period. A provider whose first member joins later learns where the hub's log
 * starts (`logStart` on the log page), skips the trimmed part and gets everything from its join on.
 */
import { MlsClient, type MlsEvent } from "../../src/client/index.js";
import { MemoryStore } from "../../src/store/memory.js";
import { startFederation, stopAll, type Provider } from "../helpers/providers.js";

function texts(events: MlsEvent[]): string[] {
  return events.flatMap((e) => (e.kind === "message" ? [`${e.sender}: ${e.text}`] : []));
}

describe("a federated hub with a trimmed log", () => {
  let providers: Provider[];
  // The hub's store: delivered entries go at once (no grace), as after DELIVERED_GRACE_MS.
  const hubStore = new MemoryStore({ deliveredGraceMs: 0 });

  beforeAll(async () => {
    providers = await startFederation(["a.example", "b.example", "c.example"], undefined, (d) =>
      d === "a.example" ? { store: hubStore } : {},
    );
  });
  afterAll(async () => {
    await stopAll(providers);
    await hubStore.close();
  });

  it("lets a member of a third provider that joins after the trim get everything from its join on", async () => {
    const [a, b, c] = providers as [Provider, Provider, Provider];
    const alice = await MlsClient.connect(a.url, "alice@a.example/phone");
    const bob = await MlsClient.connect(b.url, "bob@b.example/laptop");
    const dave = await MlsClient.connect(c.url, "dave@c.example/desk");
    for (const cl of [alice, bob, dave]) await cl.publishKeyPackages(3, { lastResort: true });

    const groupId = await alice.createGroup();
    await alice.addUsers(groupId, ["bob@b.example"]);
    await bob.syncUntil((ev) => ev.some((e) => e.kind === "joined"));
    for (let i = 0; i < 3; i++) await alice.send(groupId, `early ${i}`);
    await bob.send(groupId, "early from B");
    await bob.syncUntil((ev) => texts(ev).length >= 3);
    await alice.syncUntil((ev) => texts(ev).length >= 1);

    // Every member (and b.example) got the early entries: the hub trimmed them.
    const trimmedTo = await hubStore.logStart(groupId);
    expect(trimmedTo).toBeGreaterThan(4);
    expect(await hubStore.readLog(groupId, 0, 100)).toEqual([]);

    await alice.addUsers(groupId, ["dave@c.example"]);
    const joined = await dave.syncUntil((ev) => ev.some((e) => e.kind === "joined"));
    expect(joined).toContainEqual({ kind: "joined", groupId, sender: "alice@a.example/phone" });
    // Bob processes the commit that added Dave before he speaks (else Dave cannot read him).
    await bob.syncUntil((ev) => ev.some((e) => e.kind === "commit"));
    await alice.send(groupId, "late from A");
    await bob.send(groupId, "late from B");
    const events = await dave.syncUntil((ev) => texts(ev).length >= 2);
    expect(texts(events).sort()).toEqual(["alice@a.example/phone: late from A", "bob@b.example/laptop: late from B"]);
    await dave.send(groupId, "hi from C");
    for (const cl of [alice, bob]) {
      const got = await cl.syncUntil((ev) => texts(ev).includes("dave@c.example/desk: hi from C"));
      expect(texts(got)).toContain("dave@c.example/desk: hi from C");
    }

    // C's replica skipped the trimmed gap and is contiguous up to the hub's last entry.
    const hubRecord = await hubStore.getGroup(groupId);
    expect(await c.ds.ctx.store.contiguousSeq(groupId)).toBe(hubRecord!.nextSeq - 1);
    expect(await c.ds.ctx.store.readEntries(groupId, [1])).toEqual([undefined]);
  });
});
