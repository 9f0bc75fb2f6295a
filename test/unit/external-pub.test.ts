import {
  createGroup,
  createGroupInfoWithExternalPubAndRatchetTree,
  decodeMlsMessage,
  defaultCapabilities,
  encodeMlsMessage,
  generateKeyPackage,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  joinGroupExternal,
  type CiphersuiteImpl,
} from "ts-mls";

/**
 * ts-mls 1.6.4 as patched by patches/ts-mls+1.6.4.patch (upstream PR #449): the GroupInfo
 * external_pub extension is RFC 9420's ExternalPub { HPKEPublicKey external_pub<V> }, i.e. the
 * key with its own length prefix inside the extension data.
 */
describe("GroupInfo external_pub encoding (patched ts-mls)", () => {
  let cs: CiphersuiteImpl;
  beforeAll(async () => {
    cs = await getCiphersuiteImpl(getCiphersuiteFromName("MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"));
  });

  const member = (name: string) =>
    generateKeyPackage(
      { credentialType: "basic", identity: new TextEncoder().encode(name) },
      defaultCapabilities(),
      { notBefore: 0n, notAfter: 2n ** 40n },
      [],
      cs,
    );

  it("writes ExternalPub as 0x0004, extension length 33, key length 32, key — and reads the key back bare", async () => {
    const alice = await member("alice@a.example/1");
    const state = await createGroup(new Uint8Array([1, 2, 3]), alice.publicPackage, alice.privatePackage, [], cs);
    const gi = await createGroupInfoWithExternalPubAndRatchetTree(state, [], cs);
    const bytes = encodeMlsMessage({ version: "mls10", wireformat: "mls_group_info", groupInfo: gi });
    const decoded = decodeMlsMessage(bytes, 0)![0];
    if (decoded.wireformat !== "mls_group_info") throw new Error("not a GroupInfo");
    const ext = decoded.groupInfo.extensions.find((e) => e.extensionType === "external_pub");
    expect(ext?.extensionData.byteLength).toBe(32);
    const expected = Buffer.concat([Buffer.from([0x00, 0x04, 33, 32]), Buffer.from(ext!.extensionData)]);
    expect(Buffer.from(bytes).includes(expected)).toBe(true);
    // The bare (pre-fix) form is not what is written.
    expect(Buffer.from(bytes).includes(Buffer.concat([Buffer.from([0x00, 0x04, 32]), Buffer.from(ext!.extensionData)]))).toBe(
      false,
    );
    // And a ts-mls client still joins externally from it.
    const bob = await member("bob@a.example/1");
    const joined = await joinGroupExternal(decoded.groupInfo, bob.publicPackage, bob.privatePackage, false, cs);
    expect(joined.newState.groupContext.epoch).toBe(1n);
  });
});
