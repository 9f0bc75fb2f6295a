import { request as httpsRequest } from "node:https";
import {
  createCommit,
  createGroupInfoWithExternalPub,
  emptyPskIndex,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  type ClientState,
} from "ts-mls";
import { MlsClient } from "../../src/client/index.js";
import * as c from "../../src/federation/mimi/codec.js";
import { mlsParts, treeOfGroupInfo } from "../../src/mls/mimi-parts.js";
import { startMixedFederation, type MimiProvider } from "../helpers/mimi.js";
import { stopAll } from "../helpers/providers.js";
import type { TestPki } from "../helpers/pki.js";

/** POSTs a MIMI update to the hub a.example as b.example (mTLS with b's certificate). */
function updateAsB(a: MimiProvider, b: MimiProvider, room: string, body: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const u = new URL(a.mimiUrl);
    const req = httpsRequest(
      {
        host: u.hostname,
        port: u.port,
        path: `/mimi/v1/update/${encodeURIComponent(room)}`,
        method: "POST",
        ca: a.ca.cert,
        servername: "a.example",
        cert: b.tls.cert,
        key: b.tls.key,
        headers: { from: "mimi@b.example", host: "a.example", "content-type": "application/octet-stream" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (d: Buffer) => chunks.push(d));
        res.on("end", () =>
          res.statusCode === 200
            ? resolve(new Uint8Array(Buffer.concat(chunks)))
            : reject(new Error(`update answered ${res.statusCode}: ${Buffer.concat(chunks).toString()}`)),
        );
      },
    );
    req.on("error", reject);
    req.end(Buffer.from(body));
  });
}

describe("MIMI update with a GroupInfo that does not embed its tree (-06 RatchetTreeOption.full)", () => {
  let providers: MimiProvider[];
  let pki: TestPki;
  let a: MimiProvider, b: MimiProvider;
  let alice: MlsClient, bob: MlsClient;
  let groupId: string;
  let room: string;

  beforeAll(async () => {
    ({ providers, pki } = await startMixedFederation(["a.example", "b.example"], () => "mimi"));
    [a, b] = providers as [MimiProvider, MimiProvider];
    alice = await MlsClient.connect(a.url, "alice@a.example/phone", { commitFormat: "public" });
    bob = await MlsClient.connect(b.url, "bob@b.example/laptop", { commitFormat: "public" });
    await bob.publishKeyPackages(2);
    groupId = await alice.createGroup();
    room = `mimi://a.example/r/${groupId}`;
    await alice.addUsers(groupId, ["bob@b.example"]);
    await bob.syncUntil((ev) => ev.some((e) => e.kind === "joined"));
  });
  afterAll(async () => {
    await stopAll(providers);
    pki.dispose();
  });

  /** Bob's own commit (a path update) made with ts-mls, with a GroupInfo made WITHOUT the ratchet_tree extension. */
  async function treelessCommit(state: ClientState) {
    const cs = await getCiphersuiteImpl(getCiphersuiteFromName("MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"));
    const made = await createCommit(
      { state, cipherSuite: cs, pskIndex: emptyPskIndex },
      { wireAsPublicMessage: true, ratchetTreeExtension: false },
    );
    const gi = await createGroupInfoWithExternalPub(made.newState, [], cs);
    expect(treeOfGroupInfo(gi)).toBeUndefined();
    return { commit: made.commit, gi, tree: made.newState.ratchetTree };
  }

  const body = (made: Awaited<ReturnType<typeof treelessCommit>>, rto: c.RatchetTreeOption) =>
    c.encodeUpdateRequest({
      proposalOrCommit: { value: made.commit, bytes: mlsParts.mlsMessage.encode(made.commit) },
      kind: "commit",
      groupInfoOption: { representation: "full", groupInfo: c.mlsOf("groupInfo", made.gi) },
      ratchetTreeOption: rto,
    });

  it("refuses it without a tree, or with a tree that is not the GroupInfo's (tree hash), changing nothing", async () => {
    const before = bob.state(groupId);
    const made = await treelessCommit(before);
    const none = c.decodeUpdateRoomResponse(await updateAsB(a, b, room, body(made, { representation: "distributionService" })));
    expect(none).toMatchObject({ responseCode: "notAllowed" });
    // The previous epoch's tree: a real tree, but not the one the GroupInfo's tree hash names.
    const wrong = c.decodeUpdateRoomResponse(
      await updateAsB(
        a,
        b,
        room,
        body(made, { representation: "full", ratchetTree: c.mlsOf("ratchetTree", before.ratchetTree) }),
      ),
    );
    expect(wrong).toMatchObject({ responseCode: "notAllowed" });
    expect(String((wrong as { errorDescription: string }).errorDescription)).toMatch(/tree hash/);
    expect((await alice.api.group(groupId)).epoch).toBe(1);
    expect((await a.ds.ctx.store.getGroupInfo(groupId))?.ratchetTree).toBeUndefined();
  });

  it("accepts it with the tree in RatchetTreeOption.full, stores the tree beside it and serves both", async () => {
    const made = await treelessCommit(bob.state(groupId));
    const answer = c.decodeUpdateRoomResponse(
      await updateAsB(a, b, room, body(made, { representation: "full", ratchetTree: c.mlsOf("ratchetTree", made.tree) })),
    );
    expect(answer).toMatchObject({ responseCode: "success" });
    expect((await alice.api.group(groupId)).epoch).toBe(2);
    const stored = await a.ds.ctx.store.getGroupInfo(groupId);
    expect(stored).toMatchObject({ epoch: 2 });
    expect(Buffer.from(stored!.ratchetTree!, "base64url")).toEqual(Buffer.from(mlsParts.ratchetTree.encode(made.tree)));
    // The hub's /v1 answer carries the tree beside the GroupInfo, and the tree view reads it.
    const served = await alice.api.groupInfo(groupId);
    expect(served.ratchetTree).toBe(stored!.ratchetTree);
    // Alice's client applies the commit from the log like any other.
    await alice.syncUntil(() => alice.epoch(groupId) === 2);
  });

  it("lets new devices join externally with the tree fetched via MIMI groupInfo (at b) and via the hub's /v1 answer (at a)", async () => {
    // bob's tablet at b: b's DS asks the hub by MIMI groupInfo, which answers with RatchetTreeOption.full.
    const tablet = await MlsClient.connect(b.url, "bob@b.example/tablet", { commitFormat: "public" });
    const viaB = await tablet.api.groupInfo(groupId);
    expect(viaB.ratchetTree).toBeDefined();
    expect(await tablet.joinExternal(groupId)).toMatchObject({ epoch: 3 });
    await alice.syncUntil(() => alice.epoch(groupId) === 3);
    expect((await alice.api.group(groupId)).members).toContain("bob@b.example/tablet");
    await alice.send(groupId, "hello tablet");
    await tablet.syncUntil((ev) => ev.some((e) => e.kind === "message" && e.text === "hello tablet"));

    // Another tree-less commit (the tablet's), then alice's tablet joins from the hub's own /v1 answer.
    const made = await treelessCommit(tablet.state(groupId));
    const answer = c.decodeUpdateRoomResponse(
      await updateAsB(a, b, room, body(made, { representation: "full", ratchetTree: c.mlsOf("ratchetTree", made.tree) })),
    );
    expect(answer).toMatchObject({ responseCode: "success" });
    const aliceTablet = await MlsClient.connect(a.url, "alice@a.example/tablet", { commitFormat: "public" });
    expect((await aliceTablet.api.groupInfo(groupId)).ratchetTree).toBeDefined();
    expect(await aliceTablet.joinExternal(groupId)).toMatchObject({ epoch: 5 });
    await alice.syncUntil(() => alice.epoch(groupId) === 5);
    await aliceTablet.send(groupId, "hello all");
    await alice.syncUntil((ev) => ev.some((e) => e.kind === "message" && e.text === "hello all"));
  });
});
