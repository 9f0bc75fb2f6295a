import { MlsClient, FedgateError, type MlsEvent } from "../../src/client/index.js";
import { startProvider, stopAll, type Provider } from "../helpers/providers.js";

function texts(events: MlsEvent[]): string[] {
  return events.flatMap((e) => (e.kind === "message" ? [`${e.sender}: ${e.text}`] : []));
}

function errors(events: MlsEvent[]): MlsEvent[] {
  return events.filter((e) => e.kind === "error");
}

describe("a single provider runs a whole group life cycle with real MLS clients", () => {
  let a: Provider;
  let alice: MlsClient;
  let bob: MlsClient;
  let carol: MlsClient;

  beforeAll(async () => {
    a = await startProvider("a.example");
    [alice, bob, carol] = (await Promise.all(
      ["alice@a.example/phone", "bob@a.example/laptop", "carol@a.example/tablet"].map((c) => MlsClient.connect(a.url, c)),
    )) as [MlsClient, MlsClient, MlsClient];
    for (const c of [alice, bob, carol]) {
      const up = await c.publishKeyPackages(3);
      expect(up.accepted).toHaveLength(3);
      expect(up.rejected).toEqual([]);
    }
  });
  afterAll(() => stopAll([a]));

  let groupId: string;

  it("adds two users in one commit and both join from the Welcome in their inbox", async () => {
    groupId = await alice.createGroup();
    const { added, missing } = await alice.addUsers(groupId, ["bob@a.example", "carol@a.example"]);
    expect(added).toEqual(["bob@a.example/laptop", "carol@a.example/tablet"]);
    expect(missing).toEqual([]);
    expect(alice.epoch(groupId)).toBe(1);
    const [bobEvents, carolEvents] = await Promise.all([bob.sync(), carol.sync()]);
    expect(bobEvents).toEqual([{ kind: "joined", groupId, sender: "alice@a.example/phone" }]);
    expect(carolEvents).toEqual([{ kind: "joined", groupId, sender: "alice@a.example/phone" }]);
    expect(bob.members(groupId)).toEqual(["alice@a.example/phone", "bob@a.example/laptop", "carol@a.example/tablet"]);
    const view = await alice.api.group(groupId);
    expect(view).toMatchObject({
      epoch: 1,
      hub: "a.example",
      members: ["alice@a.example/phone", "bob@a.example/laptop", "carol@a.example/tablet"],
    });
  });

  it("delivers application messages that every other member decrypts", async () => {
    await alice.send(groupId, "hello from alice");
    await bob.send(groupId, "hi, bob here");
    await carol.send(groupId, "carol too");
    const [ea, eb, ec] = await Promise.all([alice.sync(), bob.sync(), carol.sync()]);
    expect(texts(ea).sort()).toEqual(["bob@a.example/laptop: hi, bob here", "carol@a.example/tablet: carol too"]);
    expect(texts(eb).sort()).toEqual(["alice@a.example/phone: hello from alice", "carol@a.example/tablet: carol too"]);
    expect(texts(ec).sort()).toEqual(["alice@a.example/phone: hello from alice", "bob@a.example/laptop: hi, bob here"]);
  });

  it("never echoes a commit to its sender, and others apply bob's update", async () => {
    const { epoch } = await bob.update(groupId);
    expect(epoch).toBe(2);
    const [ea, eb, ec] = await Promise.all([alice.sync(), bob.sync(), carol.sync()]);
    expect(eb).toEqual([]);
    expect(ea).toEqual([expect.objectContaining({ kind: "commit", sender: "bob@a.example/laptop", epoch: 2 })]);
    expect(ec).toEqual([expect.objectContaining({ kind: "commit", epoch: 2 })]);
  });

  it("removes carol, who then receives nothing more", async () => {
    await alice.removeClients(groupId, ["carol@a.example/tablet"]);
    const [eb, ec] = await Promise.all([bob.sync(), carol.sync()]);
    expect(eb).toEqual([expect.objectContaining({ kind: "commit", epoch: 3 })]);
    expect(ec).toEqual([{ kind: "removed", groupId, sender: "alice@a.example/phone" }]);
    await alice.send(groupId, "carol is gone");
    expect(texts(await bob.sync())).toEqual(["alice@a.example/phone: carol is gone"]);
    expect(await carol.sync()).toEqual([]);
    await expect(carol.api.messages(groupId)).rejects.toMatchObject({ status: 403, code: "not_a_member" });
  });

  it("answers a stale commit with 409 and the expected epoch, and the client recovers by catching up", async () => {
    // Bob has not seen anything since alice's last message; alice commits first.
    const staleState = bob.state(groupId);
    await alice.update(groupId);
    const err = await bob.api.commit(groupId, { commit: await staleCommit(bob, groupId) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FedgateError);
    expect(err).toMatchObject({ status: 409, code: "stale_epoch", details: { expectedEpoch: 4 } });
    expect(bob.state(groupId)).toBe(staleState);
    // The client library does the same dance itself: catch up, rebuild, commit again.
    const result = await bob.update(groupId);
    expect(result).toMatchObject({ epoch: 5, attempts: 2 });
    const ea = await alice.sync();
    expect(errors(ea)).toEqual([]);
    expect(alice.epoch(groupId)).toBe(5);
    await alice.send(groupId, "still in sync");
    const eb = await bob.sync();
    expect(texts(eb)).toContain("alice@a.example/phone: still in sync");
  });
});

/** A commit bob builds on his current (stale) state, without adopting it. */
async function staleCommit(client: MlsClient, groupId: string): Promise<string> {
  const { createCommit, encodeMlsMessage } = await import("ts-mls");
  const { toB64u } = await import("../../src/client/b64.js");
  const r = await createCommit({ state: client.state(groupId), cipherSuite: client.cs });
  return toB64u(encodeMlsMessage(r.commit));
}
