import { createCommit, createProposal, decodeMlsMessage, encodeMlsMessage } from "ts-mls";
import { decodeNode } from "ts-mls/ratchetTree.js";
import { MlsClient, FedgateError, type MlsEvent } from "../../src/client/index.js";
import { fromB64u, toB64u } from "../../src/client/b64.js";
import type { DeliveredMessage } from "../../src/domain/fanout.js";
import { startFederation, stopAll, type Provider } from "../helpers/providers.js";

const texts = (ev: MlsEvent[]) => ev.flatMap((e) => (e.kind === "message" ? [`${e.sender}: ${e.text}`] : []));

describe("Multi-MLS send groups, commit gossip and group metadata across two providers", () => {
  let providers: Provider[];
  let a: Provider;
  let alice: MlsClient, bob: MlsClient, carol: MlsClient;
  let groupId: string;
  /** Test-only equivocation: when set, the hub delivers these bytes to b.example instead of the logged commit. */
  let equivocate: { seq: number; message: string } | undefined;

  beforeAll(async () => {
    providers = await startFederation(
      ["a.example", "b.example"],
      () => ({}),
      (d) =>
        d === "a.example"
          ? {
              hooks: {
                tamperDelivery: (_peer: string, messages: DeliveredMessage[]) =>
                  messages.map((m) => (equivocate && m.seq === equivocate.seq ? { ...m, message: equivocate.message } : m)),
              },
            }
          : {},
    );
    a = providers[0]!;
    alice = await MlsClient.connect(a.url, "alice@a.example/1");
    bob = await MlsClient.connect(providers[1]!.url, "bob@b.example/1");
    carol = await MlsClient.connect(providers[1]!.url, "carol@b.example/1");
    for (const c of [alice, bob, carol]) await c.publishKeyPackages(5);
    groupId = await alice.createGroup({ mode: "send-group" });
    await alice.addUsers(groupId, ["bob@b.example", "carol@b.example"]);
    for (const c of [bob, carol]) await c.syncUntil((ev) => ev.some((e) => e.kind === "joined"));
  });
  afterAll(() => stopAll(providers));

  it("lets only the designated sender commit or send; others get 403 not_designated_sender", async () => {
    await expect(bob.send(groupId, "may I?")).rejects.toMatchObject({ status: 403, code: "not_designated_sender" });
    const commit = await createCommit({ state: bob.state(groupId), cipherSuite: bob.cs });
    const err = await bob.api.commit(groupId, { commit: toB64u(encodeMlsMessage(commit.commit)) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FedgateError);
    expect(err).toMatchObject({ status: 403, code: "not_designated_sender" });
    await expect(bob.api.lease(groupId, 1000)).rejects.toMatchObject({ status: 400, code: "bad_request" });
    await alice.send(groupId, "only I speak here");
    for (const c of [bob, carol])
      expect(texts(await c.syncUntil((ev) => texts(ev).length > 0))).toEqual(["alice@a.example/1: only I speak here"]);
  });

  it("accepts proposals from members and delivers them to the designated sender only", async () => {
    const { message } = await createProposal(
      bob.state(groupId),
      false,
      { proposalType: "remove", remove: { removed: 2 } },
      bob.cs,
    );
    const { seq } = await bob.api.send(groupId, toB64u(encodeMlsMessage(message)));
    const got = await alice.syncUntil((ev) => ev.some((e) => e.kind === "proposal"));
    expect(got).toContainEqual({ kind: "proposal", groupId, sender: "bob@b.example/1", seq });
    // Once the hub has nothing left for b.example, what it sent there is in carol's inbox: no proposal.
    const deadline = Date.now() + 10_000;
    while ((await a.ds.ctx.store.outboxStats("b.example")).depth > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await a.ds.ctx.store.outboxStats("b.example")).depth).toBe(0);
    expect((await carol.sync()).filter((e) => e.kind === "proposal")).toEqual([]);
  });

  it("has the designated sender commit a member's proposal inline, so members who never saw it can process the commit", async () => {
    // bob's Remove(carol) from the previous test reached alice only. A commit referring to it would
    // leave carol unable to process it; alice commits it by value, as her own proposal.
    const { epoch } = await alice.update(groupId);
    await bob.syncUntil((ev) => ev.some((e) => e.kind === "commit" && e.epoch === epoch));
    const got = await carol.syncUntil((ev) => ev.some((e) => e.kind === "removed" || e.kind === "error"));
    expect(got.filter((e) => e.kind === "error")).toEqual([]);
    expect(got).toContainEqual({ kind: "removed", groupId, sender: "alice@a.example/1" });
    expect((await alice.api.group(groupId)).members.sort()).toEqual(["alice@a.example/1", "bob@b.example/1"]);
    expect(alice.members(groupId)).toEqual(["alice@a.example/1", "bob@b.example/1"]);
  });

  it("detects a hub that equivocates: B's delivered commit differs from the hub's log", async () => {
    // alice builds a second, different commit for the same epoch; the hook sends it to b.example.
    const alt = await createCommit({ state: alice.state(groupId), cipherSuite: alice.cs });
    const view = await alice.api.group(groupId);
    const nextSeq = (await alice.api.messages(groupId, 0)).messages.reduce((m, e) => Math.max(m, e.seq), 0) + 1;
    equivocate = { seq: nextSeq, message: toB64u(encodeMlsMessage(alt.commit)) };
    const before = await metric(a.url, "mlsfg_commit_conflicts_total");
    await alice.update(groupId);
    equivocate = undefined;
    const got = await bob.syncUntil((ev) => ev.some((e) => e.kind === "commit_conflict"));
    expect(got).toContainEqual(expect.objectContaining({ kind: "commit_conflict", groupId, epoch: view.epoch }));
    // The follower's own commit log shows the hash of what it received, not the hub's.
    const [hubLog, followerLog] = await Promise.all([alice.api.commitLog(groupId), bob.api.commitLog(groupId)]);
    expect(followerLog.entries.at(-1)?.sha256).not.toBe(hubLog.entries.at(-1)?.sha256);
    expect(followerLog.entries.at(-1)?.epoch).toBe(hubLog.entries.at(-1)?.epoch);
    expect(before).toBe(0);
    expect(await metric(providers[1]!.url, "mlsfg_commit_conflicts_total")).toBe(1);
  });

  it("links a reply-all send group seeded from a secret exported from the original group", async () => {
    const g2 = await alice.createGroup({ mode: "send-group" });
    await alice.addUsers(g2, ["bob@b.example", "carol@b.example"]);
    for (const c of [bob, carol]) await c.syncUntil((ev) => ev.some((e) => e.kind === "joined" && e.groupId === g2));
    const reply = await bob.createReplyGroup(g2);
    expect(reply).toBe(await alice.replyGroupId(g2, bob.id));
    for (const c of [alice, carol]) await c.syncUntil((ev) => ev.some((e) => e.kind === "joined" && e.groupId === reply));
    const view = await alice.api.group(reply);
    expect(view).toMatchObject({ replyTo: g2, mode: "send-group", owner: "bob@b.example/1", hub: "b.example" });
    // Every participant can recompute the id from the parent group: it cannot be made up by an outsider.
    expect(await carol.replyGroupId(g2, bob.id)).toBe(reply);
    await bob.send(reply, "replying to all");
    for (const c of [alice, carol]) {
      const ev = await c.syncUntil((e) => e.some((x) => x.kind === "message" && x.groupId === reply));
      expect(texts(ev)).toContain("bob@b.example/1: replying to all");
    }
  });

  it("serves the ratchet tree, a single leaf's path, and a full verification when asked", async () => {
    const g3 = await alice.createGroup();
    await alice.addUsers(g3, ["bob@b.example", "carol@b.example"]);
    await bob.syncUntil((ev) => ev.some((e) => e.kind === "joined" && e.groupId === g3));
    const full = (await bob.api.tree(g3)) as { nodes: { index: number; node: string | null }[]; epoch: number };
    expect(full.epoch).toBe(1);
    expect(full.nodes).toHaveLength(bob.state(g3).ratchetTree.length);
    const part = (await bob.api.tree(g3, 1)) as {
      leaves: { node: string | null }[];
      directPath: { index: number; copathResolution: unknown[] }[];
    };
    expect(part.leaves.filter((l) => l.node !== null)).toHaveLength(3);
    const leaf1 = decodeNode(fromB64u(part.leaves[1]!.node!), 0)![0];
    expect(
      leaf1.nodeType === "leaf" && new TextDecoder().decode((leaf1.leaf.credential as { identity: Uint8Array }).identity),
    ).toBe("bob@b.example/1");
    expect(part.directPath.length).toBeGreaterThan(0);
    const verified = (await bob.api.request("GET", `/v1/groups/${g3}/tree?verify=true`)) as { verification: { valid: boolean } };
    expect(verified.verification.valid).toBe(true);
    // What the DS stores decodes as this group's GroupInfo at the current epoch.
    const gi = decodeMlsMessage(fromB64u((await bob.api.groupInfo(g3)).groupInfo), 0)![0];
    expect(gi.wireformat === "mls_group_info" && Number(gi.groupInfo.groupContext.epoch)).toBe(1);
  });
});

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(name + " ") || l.startsWith(name + "{"));
  return line ? Number(line.split(" ").at(-1)) : 0;
}
