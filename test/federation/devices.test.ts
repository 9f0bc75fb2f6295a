import { joinGroupExternal, encodeMlsMessage, decodeMlsMessage, generateKeyPackage, defaultCapabilities } from "ts-mls";
import { MlsClient, FedgateApi, type MlsEvent } from "../../src/client/index.js";
import { fromB64u, toB64u } from "../../src/client/b64.js";
import { startFederation, stopAll, type Provider } from "../helpers/providers.js";

const texts = (ev: MlsEvent[]) => ev.flatMap((e) => (e.kind === "message" ? [`${e.sender}: ${e.text}`] : []));

describe("multi-device users across providers", () => {
  let providers: Provider[];
  let a: Provider, b: Provider;
  let alicePhone: MlsClient, bob: MlsClient;
  let groupId: string;

  beforeAll(async () => {
    providers = await startFederation(["a.example", "b.example"]);
    [a, b] = providers as [Provider, Provider];
    alicePhone = await MlsClient.connect(a.url, "alice@a.example/phone");
    bob = await MlsClient.connect(b.url, "bob@b.example/laptop");
    await alicePhone.publishKeyPackages(2);
    await bob.publishKeyPackages(2);
    groupId = await bob.createGroup();
    await bob.addUsers(groupId, ["alice@a.example"]);
    await alicePhone.syncUntil((ev) => ev.some((e) => e.kind === "joined"));
  });
  afterAll(() => stopAll(providers));

  it("lists a user's devices with a version, locally and through the peer", async () => {
    const local = await alicePhone.api.devices("alice@a.example");
    const remote = await bob.api.devices("alice@a.example");
    expect(remote).toEqual(local);
    expect(local.devices.map((d) => d.client)).toEqual(["alice@a.example/phone"]);
    expect(local.version).toBeGreaterThanOrEqual(1);
  });

  it("pushes a device_update to a client on B when alice adds a device on A, and bob adds it to the common group", async () => {
    const aliceTablet = await MlsClient.connect(a.url, "alice@a.example/tablet");
    await aliceTablet.publishKeyPackages(1);
    const ev = await bob.syncUntil((e) => e.some((x) => x.kind === "device_update"));
    const update = ev.find((x) => x.kind === "device_update");
    expect(update).toMatchObject({ kind: "device_update", user: "alice@a.example" });
    expect(update?.kind === "device_update" && update.devices.map((d) => d.client)).toEqual([
      "alice@a.example/phone",
      "alice@a.example/tablet",
    ]);
    // Bob claims alice's devices; one bundle per device, and adds only the new one.
    const claim = await bob.api.claim("alice@a.example", [1]);
    expect(claim.bundles.map((x) => x.client)).toEqual(["alice@a.example/phone", "alice@a.example/tablet"]);
    await bob.addKeyPackages(
      groupId,
      claim.bundles.filter((x) => x.client === "alice@a.example/tablet"),
    );
    await aliceTablet.syncUntil((e) => e.some((x) => x.kind === "joined"));
    await alicePhone.syncUntil((e) => e.some((x) => x.kind === "commit"));
    await bob.send(groupId, "hello both devices");
    for (const dev of [alicePhone, aliceTablet]) {
      const got = await dev.syncUntil((e) => texts(e).length > 0);
      expect(texts(got)).toEqual(["bob@b.example/laptop: hello both devices"]);
    }
    // alice's phone also learnt of its sibling (it shares a group with its own user).
    expect((await alicePhone.api.devices("alice@a.example")).devices).toHaveLength(2);
  });

  it("adds every device of a user atomically under the lease, also when the adder is on B and the hub on A", async () => {
    const carolA = await MlsClient.connect(a.url, "carol@a.example/1");
    const carolB = await MlsClient.connect(a.url, "carol@a.example/2");
    await carolA.publishKeyPackages(1);
    await carolB.publishKeyPackages(1);
    const hubGroup = await alicePhone.createGroup();
    await alicePhone.addUsers(hubGroup, ["bob@b.example"]);
    await bob.syncUntil((e) => e.some((x) => x.kind === "joined" && x.groupId === hubGroup));
    const lease = await bob.api.lease(hubGroup, 5000);
    const claim = await bob.api.claim("carol@a.example", [1]);
    expect(claim.bundles).toHaveLength(2);
    // A series of two commits; alice cannot interleave one in between.
    await bob.addKeyPackages(hubGroup, [claim.bundles[0]!], { leaseToken: lease.leaseToken });
    await expect(alicePhone.update(hubGroup)).rejects.toMatchObject({ status: 423, code: "group_locked" });
    await bob.addKeyPackages(hubGroup, [claim.bundles[1]!], { leaseToken: lease.leaseToken });
    await bob.api.releaseLease(hubGroup, lease.leaseToken);
    const log = await alicePhone.api.commitLog(hubGroup);
    expect(log.entries.map((e) => e.sender)).toEqual(["alice@a.example/phone", "bob@b.example/laptop", "bob@b.example/laptop"]);
    for (const c of [carolA, carolB]) await c.syncUntil((e) => e.some((x) => x.kind === "joined"));
  });

  it("lets a new device join its user's groups by external commit, and refuses a stranger's", async () => {
    const aliceLaptop = await MlsClient.connect(a.url, "alice@a.example/laptop");
    const answer = await aliceLaptop.joinExternal(groupId);
    expect(answer.epoch).toBeGreaterThan(0);
    const ev = await bob.syncUntil((e) => e.some((x) => x.kind === "commit" && x.sender === "alice@a.example/laptop"));
    expect(ev.filter((x) => x.kind === "error")).toEqual([]);
    await aliceLaptop.send(groupId, "laptop here");
    await bob.syncUntil((e) => texts(e).includes("alice@a.example/laptop: laptop here"));

    const eve = await new FedgateApi(a.url, "eve@a.example/1").login();
    await expect(eve.groupInfo(groupId)).rejects.toMatchObject({ status: 403, code: "not_a_member" });
    // Even holding the GroupInfo (leaked), a stranger's external commit is refused.
    const { groupInfo } = await aliceLaptop.api.groupInfo(groupId);
    const gi = decodeMlsMessage(fromB64u(groupInfo), 0)![0];
    if (gi.wireformat !== "mls_group_info") throw new Error("not a GroupInfo");
    const kp = await generateKeyPackage(
      { credentialType: "basic", identity: new TextEncoder().encode("eve@a.example/1") },
      defaultCapabilities(),
      { notBefore: 0n, notAfter: 2n ** 40n },
      [],
      aliceLaptop.cs,
    );
    const { publicMessage } = await joinGroupExternal(gi.groupInfo, kp.publicPackage, kp.privatePackage, false, aliceLaptop.cs);
    const commit = toB64u(encodeMlsMessage({ version: "mls10", wireformat: "mls_public_message", publicMessage }));
    const before = await bob.api.group(groupId);
    await expect(eve.commit(groupId, { commit })).rejects.toMatchObject({ status: 403, code: "not_a_member" });
    expect((await bob.api.group(groupId)).epoch).toBe(before.epoch);
  });

  it("removes a device on the user's request and tells the peers", async () => {
    const spare = await MlsClient.connect(a.url, "alice@a.example/spare");
    await spare.publishKeyPackages(1);
    await bob.sync({ waitMs: 500 });
    const before = await bob.api.devices("alice@a.example");
    expect(before.devices.map((d) => d.client)).toContain("alice@a.example/spare");
    await alicePhone.api.removeDevice("alice@a.example/spare");
    const ev = await bob.syncUntil((e) => e.some((x) => x.kind === "device_update" && x.version > before.version));
    const update = ev.find((x) => x.kind === "device_update" && x.version > before.version);
    expect(update?.kind === "device_update" && update.devices.map((d) => d.client)).not.toContain("alice@a.example/spare");
    expect((await bob.api.devices("alice@a.example")).devices.map((d) => d.client)).not.toContain("alice@a.example/spare");
    await expect(bob.api.removeDevice("alice@a.example/phone")).rejects.toMatchObject({ status: 403, code: "forbidden" });
  });

  it("serves single-client mode: one virtual client whose traffic reaches every device of its user", async () => {
    const dan1 = await MlsClient.connect(b.url, "dan@b.example/1");
    const dan2 = await MlsClient.connect(b.url, "dan@b.example/2");
    const up = await dan1.publishKeyPackages(2, { virtual: true });
    expect(up.accepted).toHaveLength(2);
    await dan1.shareKeyPackagesWith(dan2);
    const claim = await alicePhone.api.claim("dan@b.example", [1]);
    expect(claim.bundles.map((x) => x.client)).toEqual(["dan@b.example/*"]);
    const g = await alicePhone.createGroup();
    await alicePhone.addKeyPackages(g, claim.bundles);
    for (const d of [dan1, dan2]) await d.syncUntil((e) => e.some((x) => x.kind === "joined" && x.groupId === g));
    await alicePhone.send(g, "to every dan");
    for (const d of [dan1, dan2])
      expect(texts(await d.syncUntil((e) => texts(e).length > 0))).toEqual(["alice@a.example/phone: to every dan"]);
    // Either device speaks as the virtual client.
    await dan2.send(g, "dan via device 2");
    const got = await alicePhone.syncUntil((e) => e.some((x) => x.kind === "message" && x.groupId === g));
    expect(got.filter((x) => x.kind === "message" && x.groupId === g)).toEqual([
      expect.objectContaining({ sender: "dan@b.example/*", text: "dan via device 2" }),
    ]);
  });
});
