/**
 * Group feeds (issue 10, src/domain/feeds.ts) with real MLS clients on every store topology: a
 * member that reads late gets everything sent while it was a member, in order and once — its
 * removal included, nothing after it — and a member added again reads on from its new Welcome.
 */
import { MlsClient, type MlsEvent } from "../../src/client/index.js";
import { startFederation, stopAll, type Provider } from "../helpers/providers.js";

const texts = (events: MlsEvent[]) => events.flatMap((e) => (e.kind === "message" ? [e.text] : []));

describe("group feeds: what a member reads, whenever it reads", () => {
  let a: Provider;
  let b: Provider;
  let alice: MlsClient;
  let bob: MlsClient;
  let carol: MlsClient;

  beforeAll(async () => {
    [a, b] = (await startFederation(["a.example", "b.example"])) as [Provider, Provider];
    [alice, bob, carol] = (await Promise.all(
      ["alice@a.example/phone", "bob@a.example/laptop", "carol@a.example/tablet"].map((c) => MlsClient.connect(a.url, c)),
    )) as [MlsClient, MlsClient, MlsClient];
    for (const c of [bob, carol]) await c.publishKeyPackages(3);
  });
  afterAll(() => stopAll([a, b]));

  it("gives a late reader every message of its membership, its removal, nothing after, and again after it is added back", async () => {
    const groupId = await alice.createGroup();
    await alice.addUsers(groupId, ["bob@a.example", "carol@a.example"]);
    await Promise.all([bob.sync(), carol.sync()]);

    // carol does not read for a while: 30 messages, then her removal, then more.
    for (let i = 0; i < 30; i++) await alice.send(groupId, `m${i}`);
    await alice.removeClients(groupId, ["carol@a.example/tablet"]);
    await alice.send(groupId, "after carol");
    expect(texts(await bob.sync())).toEqual([...Array.from({ length: 30 }, (_, i) => `m${i}`), "after carol"]);

    const late = await carol.sync();
    expect(texts(late)).toEqual(Array.from({ length: 30 }, (_, i) => `m${i}`));
    expect(late.at(-1)).toEqual({ kind: "removed", groupId, sender: "alice@a.example/phone" });
    expect(await carol.sync()).toEqual([]);
    // Her inbox read dropped the group from her membership index: nothing more is looked up there.
    expect(await a.ds.ctx.store.groupsOf("carol@a.example/tablet")).toEqual([]);

    // Added back: she joins from the new Welcome and reads what comes after it only.
    await alice.addUsers(groupId, ["carol@a.example"]);
    await alice.send(groupId, "welcome back");
    const back = await carol.sync();
    expect(back.find((e) => e.kind === "joined")).toMatchObject({ groupId });
    expect(texts(back)).toEqual(["welcome back"]);
    expect(texts(await bob.sync())).toEqual(["welcome back"]);
  });

  it("wakes a waiting reader with one wake-up per accept, for a group it joined while waiting", async () => {
    const dave = await MlsClient.connect(a.url, "dave@a.example/desk");
    await dave.publishKeyPackages(2);
    const groupId = await alice.createGroup();
    // dave long-polls before he is in any group; the Welcome wakes him, then a message does.
    const first = dave.sync({ waitMs: 5000 });
    await new Promise((r) => setTimeout(r, 100));
    let started = Date.now();
    await alice.addUsers(groupId, ["dave@a.example"]);
    expect((await first).find((e) => e.kind === "joined")).toMatchObject({ groupId });
    expect(Date.now() - started).toBeLessThan(4000);
    started = Date.now();
    const second = dave.sync({ waitMs: 5000 });
    await new Promise((r) => setTimeout(r, 100));
    await alice.send(groupId, "are you there?");
    expect(texts(await second)).toEqual(["are you there?"]);
    // Woken by the group's wake-up, not by the end of the wait.
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it("reads a group of another provider through the follower's feed: woken by its Welcome, then by each delivery; removal ends it", async () => {
    const erin = await MlsClient.connect(b.url, "erin@b.example/phone");
    const fred = await MlsClient.connect(b.url, "fred@b.example/phone");
    for (const c of [erin, fred]) await c.publishKeyPackages(2);
    const groupId = await alice.createGroup();
    const first = erin.sync({ waitMs: 5000 });
    await new Promise((r) => setTimeout(r, 100));
    let started = Date.now();
    await alice.addUsers(groupId, ["erin@b.example", "fred@b.example"]);
    expect((await first).find((e) => e.kind === "joined")).toMatchObject({ groupId });
    expect(Date.now() - started).toBeLessThan(4000);
    await fred.sync();
    const second = erin.sync({ waitMs: 5000 });
    await new Promise((r) => setTimeout(r, 100));
    started = Date.now();
    await alice.send(groupId, "across");
    expect(texts(await second)).toEqual(["across"]);
    expect(Date.now() - started).toBeLessThan(4000);
    // fred reads late: both messages once and in order, then his removal, nothing after.
    await alice.send(groupId, "second");
    await alice.removeClients(groupId, ["fred@b.example/phone"]);
    await alice.send(groupId, "after fred");
    const late = await fred.sync();
    expect(texts(late)).toEqual(["across", "second"]);
    expect(late.at(-1)).toEqual({ kind: "removed", groupId, sender: "alice@a.example/phone" });
    expect(texts(await erin.sync())).toEqual(["second", "after fred"]);
    expect(await fred.sync()).toEqual([]);
    // The follower's store wrote feed steps, not one inbox reference per entry and member.
    expect((await b.ds.ctx.store.replicaFeed(groupId)).open).toEqual(["erin@b.example/phone"]);
  });
});
