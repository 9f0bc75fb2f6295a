import { MemoryClientStorage, MlsClient, type MlsEvent } from "../../src/client/index.js";
import { startFederation, stopAll, type Provider } from "../helpers/providers.js";

const joined = (events: MlsEvent[]) => events.some((e) => e.kind === "joined");
const said = (text: string) => (events: MlsEvent[]) => events.some((e) => e.kind === "message" && e.text === text);

describe("client state: storage, the live stream, leaving, KeyPackage replenishment", () => {
  let a: Provider;
  let b: Provider;

  beforeAll(async () => {
    const providers = await startFederation(["a.example", "b.example"], () => ({ limits: { keyPackagesLowWater: 2 } }));
    a = providers[0]!;
    b = providers[1]!;
  });
  afterAll(() => stopAll([a, b]));

  it("restores groups, KeyPackage keys, the cursor and the token from storage after a restart", async () => {
    const storage = new MemoryClientStorage();
    const alice = await MlsClient.connect(a.url, "alice@a.example/web");
    const bob = await MlsClient.connect(b.url, "bob@b.example/web", { storage });
    await bob.publishKeyPackages(2, { lastResort: true });
    const first = await alice.createGroup();
    await alice.addUsers(first, ["bob@b.example"]);
    await bob.syncUntil(joined);

    // "Reload": a new client object over the same storage; a KeyPackage published before is used after.
    const bob2 = await MlsClient.connect(b.url, "bob@b.example/web", { storage });
    expect(bob2.api.currentToken).toBe(bob.api.currentToken);
    expect(bob2.groupIds()).toEqual([first]);
    expect(bob2.epoch(first)).toBe(1);
    const second = await alice.createGroup();
    await alice.addUsers(second, ["bob@b.example"]);
    await alice.send(first, "after the reload");
    const events = await bob2.syncUntil((ev) => joined(ev) && said("after the reload")(ev));
    expect(events.filter((e) => e.kind === "joined").map((e) => (e.kind === "joined" ? e.groupId : ""))).toEqual([second]);
    await bob2.send(first, "bob is back");
    await alice.syncUntil(said("bob is back"));
    expect((await storage.loadGroups()).map((g) => g.groupId).sort()).toEqual([first, second].sort());
    expect(await storage.loadCursor()).toBeGreaterThan(0);
  });

  it("follows the live stream with the bearer token in a header, and stops when aborted", async () => {
    const alice = await MlsClient.connect(a.url, "alice@a.example/stream");
    const bob = await MlsClient.connect(b.url, "bob@b.example/stream");
    await bob.publishKeyPackages(1);
    const groupId = await alice.createGroup();
    const received: MlsEvent[] = [];
    const stop = new AbortController();
    let notify = () => {};
    const listening = bob.listen((events) => {
      received.push(...events);
      notify();
    }, stop.signal);
    const until = (want: (ev: MlsEvent[]) => boolean) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`stream gave only ${JSON.stringify(received)}`)), 10_000);
        notify = () => want(received) && (clearTimeout(timer), resolve());
        notify();
      });
    await alice.addUsers(groupId, ["bob@b.example"]);
    await until(joined);
    await alice.send(groupId, "live");
    await until(said("live"));
    stop.abort();
    await listening;
  });

  it("ends the stream with an unauthenticated error when the token is refused (no reconnect loop)", async () => {
    const storage = new MemoryClientStorage();
    await storage.saveToken("not-a-token");
    const mallory = await MlsClient.connect(b.url, "mallory@b.example/web", { storage });
    const stop = new AbortController();
    await expect(mallory.listen(() => {}, stop.signal)).rejects.toMatchObject({ code: "unauthenticated", status: 401 });
  });

  it("leaves a group with a Remove proposal that another member's next commit carries", async () => {
    const alice = await MlsClient.connect(a.url, "alice@a.example/leave");
    const carol = await MlsClient.connect(b.url, "carol@b.example/leave");
    await carol.publishKeyPackages(1);
    const groupId = await alice.createGroup();
    await alice.addUsers(groupId, ["carol@b.example"]);
    await carol.syncUntil(joined);
    await carol.leave(groupId);
    expect(carol.groupIds()).toEqual([]);
    await alice.syncUntil((ev) => ev.some((e) => e.kind === "proposal"));
    await alice.commitPending(groupId);
    expect(alice.members(groupId)).toEqual(["alice@a.example/leave"]);
    expect((await alice.api.group(groupId)).members).toEqual(["alice@a.example/leave"]);
  });

  it("tops the KeyPackage pool up when the DS reports it low, and withdraws packages whose keys are lost", async () => {
    const dave = await MlsClient.connect(b.url, "dave@b.example/web", { replenish: { target: 4 } });
    expect(await dave.ensureKeyPackages()).toBe(5);
    expect(await dave.ensureKeyPackages()).toBe(0);
    const alice = await MlsClient.connect(a.url, "alice@a.example/claims");
    await alice.api.claim("dave@b.example", [1]);
    await dave.sync();
    expect((await dave.api.listKeyPackages()).keyPackages.filter((k) => !k.lastResort)).toHaveLength(3);
    await alice.api.claim("dave@b.example", [1]); // 2 left = limits.keyPackagesLowWater: the DS notifies dave
    await dave.sync();
    const pool = (await dave.api.listKeyPackages()).keyPackages;
    expect(pool.filter((k) => !k.lastResort)).toHaveLength(4);
    expect(pool.filter((k) => k.lastResort)).toHaveLength(1);

    // Same device, storage lost: the old packages are useless (no private keys) and are withdrawn.
    const fresh = await MlsClient.connect(b.url, "dave@b.example/web");
    expect(await fresh.ensureKeyPackages(4)).toBe(5);
    const after = (await fresh.api.listKeyPackages()).keyPackages.map((k) => k.ref);
    expect(after.filter((ref) => pool.some((k) => k.ref === ref))).toEqual([]);
  });
});
