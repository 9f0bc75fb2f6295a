import {
  createCommit,
  decodeMlsMessage,
  defaultCapabilities,
  encodeMlsMessage,
  generateKeyPackage,
  joinGroupExternal,
} from "ts-mls";
import { MlsClient } from "../../src/client/index.js";
import { fromB64u, toB64u } from "../../src/client/b64.js";
import { startProvider, stopAll, type Provider } from "../helpers/providers.js";

describe("the stated roster change of a PublicMessage commit is cross-checked", () => {
  let a: Provider;
  beforeAll(async () => {
    a = await startProvider("a.example");
  });
  afterAll(() => stopAll([a]));

  it("refuses a bundle whose `added` and `removed` do not match the commit's proposals, and accepts the truth", async () => {
    const alice = await MlsClient.connect(a.url, "alice@a.example/1");
    const bob = await MlsClient.connect(a.url, "bob@a.example/1");
    const carol = await MlsClient.connect(a.url, "carol@a.example/1");
    await bob.publishKeyPackages(1);
    await carol.publishKeyPackages(2);
    const groupId = await alice.createGroup();
    await alice.addUsers(groupId, ["carol@a.example"]);

    const claim = await alice.api.claim("bob@a.example", [1]);
    const kp = decodeMlsMessage(fromB64u(claim.bundles[0]!.keyPackage), 0)![0];
    if (kp.wireformat !== "mls_key_package") throw new Error("no KeyPackage");
    const r = await createCommit(
      { state: alice.state(groupId), cipherSuite: alice.cs },
      {
        wireAsPublicMessage: true,
        extraProposals: [
          { proposalType: "add", add: { keyPackage: kp.keyPackage } },
          { proposalType: "remove", remove: { removed: 1 } },
        ],
      },
    );
    const commit = toB64u(encodeMlsMessage(r.commit));
    const welcome = toB64u(encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: r.welcome! }));
    const lie = await alice.api
      .commit(groupId, { commit, welcome, added: ["bob@a.example/1"], removed: ["alice@a.example/1"] })
      .catch((e: unknown) => e);
    expect(lie).toMatchObject({ status: 400, code: "roster_mismatch", details: { proposed: ["carol@a.example/1"] } });
    const missing = await alice.api.commit(groupId, { commit, welcome, added: ["bob@a.example/1"] }).catch((e: unknown) => e);
    expect(missing).toMatchObject({ status: 400, code: "roster_mismatch" });
    expect((await alice.api.group(groupId)).epoch).toBe(1);
    await expect(
      alice.api.commit(groupId, { commit, welcome, added: ["bob@a.example/1"], removed: ["carol@a.example/1"] }),
    ).resolves.toMatchObject({ epoch: 2 });
    expect((await alice.api.group(groupId)).members).toEqual(["alice@a.example/1", "bob@a.example/1"]);
  });

  it("refuses an external commit whose new leaf names another client than the submitter", async () => {
    const alice = await MlsClient.connect(a.url, "alice@a.example/1");
    const groupId = await alice.createGroup();
    const alice2 = await MlsClient.connect(a.url, "alice@a.example/2");
    // alice's second device builds an external commit whose credential names alice's third device.
    const { groupInfo } = await alice2.api.groupInfo(groupId);
    const gi = decodeMlsMessage(fromB64u(groupInfo), 0)![0];
    if (gi.wireformat !== "mls_group_info") throw new Error("no GroupInfo");
    const kp = await generateKeyPackage(
      { credentialType: "basic", identity: new TextEncoder().encode("alice@a.example/3") },
      defaultCapabilities(),
      { notBefore: 0n, notAfter: 2n ** 40n },
      [],
      alice2.cs,
    );
    const joined = await joinGroupExternal(gi.groupInfo, kp.publicPackage, kp.privatePackage, false, alice2.cs);
    const commit = toB64u(
      encodeMlsMessage({ version: "mls10", wireformat: "mls_public_message", publicMessage: joined.publicMessage }),
    );
    await expect(alice2.api.commit(groupId, { commit })).rejects.toMatchObject({
      status: 400,
      code: "roster_mismatch",
      details: { proposed: ["alice@a.example/3"] },
    });
    expect((await alice.api.group(groupId)).members).toEqual(["alice@a.example/1"]);
    // Its own external join is accepted.
    await expect(alice2.joinExternal(groupId)).resolves.toMatchObject({ epoch: 1 });
  });
});
