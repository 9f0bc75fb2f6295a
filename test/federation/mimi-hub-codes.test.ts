import { request as httpsRequest } from "node:https";
import {
  createApplicationMessage,
  createCommit,
  createGroup,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  generateKeyPackage,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
} from "ts-mls";
import { MlsClient } from "../../src/client/index.js";
import * as c from "../../src/federation/mimi/codec.js";
import { mlsParts, treeOfGroupInfo } from "../../src/mls/mimi-parts.js";
import { startMixedFederation, type MimiProvider } from "../helpers/mimi.js";
import { stopAll } from "../helpers/providers.js";
import type { TestPki } from "../helpers/pki.js";

/** POSTs a MIMI body to the hub a.example as b.example (mTLS with b's certificate). */
function asB(
  a: MimiProvider,
  b: MimiProvider,
  endpoint: string,
  room: string,
  body: Uint8Array,
): Promise<{ status: number; body: Uint8Array }> {
  return new Promise((resolve, reject) => {
    const u = new URL(a.mimiUrl);
    const req = httpsRequest(
      {
        host: u.hostname,
        port: u.port,
        path: `/mimi/v1/${endpoint}/${encodeURIComponent(room)}`,
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
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: new Uint8Array(Buffer.concat(chunks)) }));
      },
    );
    req.on("error", reject);
    req.end(Buffer.from(body));
  });
}

describe("MIMI hub answers: notAllowed, epochTooOld, notAuthorized, noSuchRoom", () => {
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

  /** A commit of a look-alike group with the room's id, built outside the room (its sender is not b's). */
  async function foreignCommit(publicMessage: boolean) {
    const cs = await getCiphersuiteImpl(getCiphersuiteFromName("MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"));
    const kp = await generateKeyPackage(
      { credentialType: "basic", identity: new TextEncoder().encode("mallory@b.example/x") },
      defaultCapabilities(),
      defaultLifetime,
      [],
      cs,
    );
    const state = await createGroup(Buffer.from(groupId, "base64url"), kp.publicPackage, kp.privatePackage, [], cs);
    const commit = await createCommit(
      { state, cipherSuite: cs, pskIndex: emptyPskIndex },
      { wireAsPublicMessage: publicMessage, ratchetTreeExtension: true },
    );
    return { cs, commit, state: commit.newState };
  }

  it("answers notAllowed to a PrivateMessage commit (MIMI hubs read handshakes)", async () => {
    const { commit } = await foreignCommit(false);
    const { createGroupInfoWithExternalPubAndRatchetTree } = await import("ts-mls");
    const { cs, state } = await foreignCommit(true);
    const gi = await createGroupInfoWithExternalPubAndRatchetTree(state, [], cs);
    const body = c.encodeUpdateRequest({
      proposalOrCommit: { value: commit.commit, bytes: mlsParts.mlsMessage.encode(commit.commit) },
      kind: "commit",
      groupInfoOption: { representation: "full", groupInfo: c.mlsOf("groupInfo", gi) },
      ratchetTreeOption: { representation: "full", ratchetTree: c.mlsOf("ratchetTree", treeOfGroupInfo(gi)!) },
    });
    const res = await asB(a, b, "update", room, body);
    expect(res.status).toBe(200);
    expect(c.decodeUpdateRoomResponse(res.body)).toMatchObject({ responseCode: "notAllowed" });
  });

  it("answers notAllowed to a commit whose committer (leaf 0 of the room: alice) is not b's client", async () => {
    const { cs, state, commit } = await foreignCommit(true);
    const { createGroupInfoWithExternalPubAndRatchetTree } = await import("ts-mls");
    const gi = await createGroupInfoWithExternalPubAndRatchetTree(state, [], cs);
    const body = c.encodeUpdateRequest({
      proposalOrCommit: { value: commit.commit, bytes: mlsParts.mlsMessage.encode(commit.commit) },
      kind: "commit",
      groupInfoOption: { representation: "full", groupInfo: c.mlsOf("groupInfo", gi) },
      ratchetTreeOption: { representation: "distributionService" },
    });
    const answer = c.decodeUpdateRoomResponse((await asB(a, b, "update", room, body)).body);
    expect(answer).toMatchObject({
      responseCode: "notAllowed",
      errorDescription: "b.example may submit only its own clients' handshakes",
    });
    expect((await alice.api.group(groupId)).epoch).toBe(1);
  });

  it("answers epochTooOld to an application message of an older epoch; the follower's client sees stale_epoch", async () => {
    await alice.update(groupId);
    const err = await bob.send(groupId, "late").catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 409, code: "stale_epoch", details: { expectedEpoch: 2 } });
  });

  it("answers notAllowed to a message sent in the name of another provider's client", async () => {
    const { cs, state } = await foreignCommit(false);
    const app = await createApplicationMessage(state, new TextEncoder().encode("x"), cs);
    const appMessage = {
      version: "mls10" as const,
      wireformat: "mls_private_message" as const,
      privateMessage: app.privateMessage,
    };
    const body = c.encodeSubmitMessageRequest({
      appMessage: { value: appMessage, bytes: mlsParts.mlsMessage.encode(appMessage) },
      sendingUri: "mimi://a.example/d/alice/phone",
    });
    expect(c.decodeSubmitMessageResponse((await asB(a, b, "submitMessage", room, body)).body)).toEqual({
      statusCode: "notAllowed",
    });
  });

  it("answers groupInfo with notAuthorized for a stranger and noSuchRoom for an unknown room", async () => {
    const { basicCredential } = await import("../../src/federation/mimi/envelope.js");
    const { mimiSign, mimiSignatureKeyPair, mimiHpkeKeyPair } = await import("../../src/mls/mimi-parts.js");
    const key = await mimiSignatureKeyPair(1);
    const hpke = await mimiHpkeKeyPair(1);
    const tbs = {
      cipherSuite: 1,
      requestingSignatureKey: key.publicKey,
      requestingCredential: basicCredential("stranger@b.example/x"),
      groupInfoPublicKey: hpke.publicKey,
      joiningCode: new Uint8Array(),
    };
    const signature = await mimiSign(1, key.signKey, "GroupInfoRequestTBS", c.encodeGroupInfoRequestTBS(tbs));
    const body = c.encodeGroupInfoRequest({ ...tbs, signature });
    expect(c.decodeGroupInfoResponse((await asB(a, b, "groupInfo", room, body)).body)).toEqual({
      status: "notAuthorized",
      roomId: room,
    });
    const nowhere = "mimi://a.example/r/bm93aGVyZQ";
    expect(c.decodeGroupInfoResponse((await asB(a, b, "groupInfo", nowhere, body)).body)).toEqual({
      status: "noSuchRoom",
      roomId: nowhere,
    });
  });
});
