/**
 * Edges docs/API.md states, checked against a real DS with real ts-mls clients so the page and
 * the code cannot drift apart again (issue 8): `after=-1`, `limit=0`, `null` blank leaves in the
 * tree view, device-list `version` semantics, the virtual client in device lists, and releasing
 * an expired lease.
 */
import { MlsClient } from "../../src/client/index.js";
import { SteppableClock } from "../helpers/clock.js";
import { startProvider, stopAll, type Provider } from "../helpers/providers.js";

describe("edges of the client API, as docs/API.md states them", () => {
  let a: Provider;
  let alice: MlsClient, bob: MlsClient, carol: MlsClient;
  let groupId: string;
  const clock = new SteppableClock();

  beforeAll(async () => {
    a = await startProvider("a.example", {}, { clock });
    alice = await MlsClient.connect(a.url, "alice@a.example/phone");
    bob = await MlsClient.connect(a.url, "bob@a.example/laptop");
    carol = await MlsClient.connect(a.url, "carol@a.example/tablet");
    for (const c of [bob, carol]) await c.publishKeyPackages(2);
    groupId = await alice.createGroup();
    await alice.addUsers(groupId, ["bob@a.example", "carol@a.example"]);
    for (const c of [bob, carol]) await c.syncUntil((ev) => ev.some((e) => e.kind === "joined"));
    await alice.send(groupId, "one");
    await alice.send(groupId, "two");
  });
  afterAll(() => stopAll([a]));

  it("refuses after=-1 on the group log, takes it on the commit log, and reads limit=0 as 1", async () => {
    await expect(alice.api.request("GET", `/v1/groups/${groupId}/messages?after=-1`)).rejects.toMatchObject({
      status: 400,
      code: "bad_request",
    });
    const page = await alice.api.request<{ messages: unknown[]; more: boolean }>("GET", `/v1/groups/${groupId}/messages?limit=0`);
    expect(page).toMatchObject({ messages: [expect.objectContaining({ seq: 1 })], more: true });

    const all = await alice.api.request<{ entries: { epoch: number }[] }>("GET", `/v1/groups/${groupId}/commit-log?after=-1`);
    expect(all.entries.map((e) => e.epoch)).toEqual([0]);
    expect((await alice.api.commitLog(groupId)).entries).toEqual(all.entries);
    expect((await alice.api.commitLog(groupId, 0)).entries).toEqual([]);

    const inbox = await bob.api.request<{ messages: unknown[] }>("GET", "/v1/inbox?after=0&limit=0");
    expect(inbox.messages.length).toBeLessThanOrEqual(1);
    await expect(bob.api.request("GET", "/v1/inbox?after=-1")).rejects.toMatchObject({ status: 400, code: "bad_request" });
  });

  it("counts device-set changes in the device-list version, not KeyPackage changes, and lists the virtual client", async () => {
    const dave = await MlsClient.connect(a.url, "dave@a.example/phone");
    const v1 = await dave.api.devices("dave@a.example");
    expect(v1).toMatchObject({
      user: "dave@a.example",
      version: 1,
      devices: [{ client: "dave@a.example/phone", cipherSuites: [] }],
    });
    expect(v1.devices).toHaveLength(1);
    await dave.publishKeyPackages(2);
    expect(await dave.api.devices("dave@a.example")).toMatchObject({ version: 1, devices: [{ cipherSuites: [1] }] });

    const laptop = await MlsClient.connect(a.url, "dave@a.example/laptop");
    expect((await dave.api.devices("dave@a.example")).version).toBe(2);
    await laptop.publishKeyPackages(1, { virtual: true });
    const withVirtual = await dave.api.devices("dave@a.example");
    expect(withVirtual).toMatchObject({ version: 3 });
    expect(withVirtual.devices.map((d) => d.client)).toEqual([
      "dave@a.example/*",
      "dave@a.example/laptop",
      "dave@a.example/phone",
    ]);
    expect(withVirtual.devices[0]).toMatchObject({ client: "dave@a.example/*", cipherSuites: [1] });

    await dave.api.removeDevice("dave@a.example/*");
    await dave.api.removeDevice("dave@a.example/laptop");
    expect(await dave.api.devices("dave@a.example")).toMatchObject({ version: 5, devices: [{ client: "dave@a.example/phone" }] });
  });

  it("releases an expired lease with its token until another acquire replaces it", async () => {
    const first = await alice.api.lease(groupId, 1000);
    clock.advance(1001); // expired
    await expect(alice.api.releaseLease(groupId, first.leaseToken)).resolves.toBeUndefined();
    await expect(alice.api.releaseLease(groupId, first.leaseToken)).rejects.toMatchObject({ status: 404, code: "not_found" });

    const second = await alice.api.lease(groupId, 1000);
    clock.advance(1001);
    const third = await bob.api.lease(groupId, 1000); // takes over the expired lease: a new token
    expect(third.leaseToken).not.toBe(second.leaseToken);
    await expect(alice.api.releaseLease(groupId, second.leaseToken)).rejects.toMatchObject({ status: 404, code: "not_found" });
    await bob.api.releaseLease(groupId, third.leaseToken);
  });

  it("shows a removed member's blank leaf as null in the tree view, with and without leaf", async () => {
    await alice.removeClients(groupId, ["bob@a.example/laptop"]);
    const members = (await alice.api.group(groupId)).members;
    expect(members).not.toContain("bob@a.example/laptop");
    const whole = (await alice.api.tree(groupId)) as { nodes: { index: number; node: string | null }[] };
    const leaves = whole.nodes.filter((n) => n.index % 2 === 0);
    // bob's leaf is blank, and so is the fourth leaf of the (full, 7-node) tree ts-mls carries.
    expect(leaves.map((n) => n.node === null)).toEqual([false, true, false, true]);
    const mine = (await alice.api.tree(groupId, 0)) as { leaves: { index: number; node: string | null }[] };
    expect(mine.leaves).toEqual([
      { index: 0, node: expect.any(String) },
      { index: 2, node: null },
      { index: 4, node: expect.any(String) },
      { index: 6, node: null },
    ]);
    await expect(alice.api.tree(groupId, 1)).rejects.toMatchObject({ status: 404, code: "not_found" });
  });
});
