import {
  createApplicationMessage,
  createCommit,
  createGroup,
  createGroupInfoWithExternalPubAndRatchetTree,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  generateKeyPackage,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
} from "ts-mls";
import * as c from "../../src/federation/mimi/codec.js";
import { basicCredential } from "../../src/federation/mimi/envelope.js";
import { MimiCodecError } from "../../src/federation/mimi/wire.js";
import { mlsParts, treeOfGroupInfo } from "../../src/mls/mimi-parts.js";

/** Real MLS structures (ts-mls) to embed in MIMI bodies. */
async function mlsFixtures() {
  const cs = await getCiphersuiteImpl(getCiphersuiteFromName("MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"));
  const kp = async (id: string) =>
    generateKeyPackage(
      { credentialType: "basic", identity: new TextEncoder().encode(id) },
      defaultCapabilities(),
      defaultLifetime,
      [],
      cs,
    );
  const alice = await kp("alice@a.example/phone");
  const bob = await kp("bob@b.example/laptop");
  const state = await createGroup(new TextEncoder().encode("room-1"), alice.publicPackage, alice.privatePackage, [], cs);
  const commit = await createCommit(
    { state, cipherSuite: cs, pskIndex: emptyPskIndex },
    {
      extraProposals: [{ proposalType: "add", add: { keyPackage: bob.publicPackage } }],
      wireAsPublicMessage: true,
      ratchetTreeExtension: true,
    },
  );
  const gi = await createGroupInfoWithExternalPubAndRatchetTree(commit.newState, [], cs);
  const app = await createApplicationMessage(commit.newState, new TextEncoder().encode("hi"), cs);
  const msg = (m: Parameters<typeof mlsParts.mlsMessage.encode>[0]) => ({ value: m, bytes: mlsParts.mlsMessage.encode(m) });
  return {
    keyPackage: c.mlsOf("keyPackage", bob.publicPackage),
    welcome: c.mlsOf("welcome", commit.welcome!),
    groupInfo: c.mlsOf("groupInfo", gi),
    tree: c.mlsOf("ratchetTree", treeOfGroupInfo(gi)!),
    commit: msg(commit.commit),
    app: msg({ version: "mls10", wireformat: "mls_private_message", privateMessage: app.privateMessage }),
    welcomeMessage: msg({ version: "mls10", wireformat: "mls_welcome", welcome: commit.welcome! }),
    capabilities: c.mlsOf("capabilities", defaultCapabilities()),
  };
}

type Case = {
  name: string;
  bytes: Uint8Array;
  decode: (b: Uint8Array) => unknown;
  encode: (v: never) => Uint8Array;
  lengthAt: number;
  enumAt: number;
};

describe("MIMI codecs (draft-ietf-mimi-protocol-06 structures)", () => {
  let cases: Case[];

  beforeAll(async () => {
    const f = await mlsFixtures();
    const kmr: c.KeyMaterialRequest = {
      requestingUser: "mimi://a.example/u/alice",
      targetUser: "mimi://b.example/u/bob",
      roomId: "",
      acceptableCiphersuites: [1, 3],
      requiredCapabilities: c.mlsOf("requiredCapabilities", {
        extensionTypes: [],
        proposalTypes: [],
        credentialTypes: ["basic"],
      }),
      requesterSignatureKey: new Uint8Array(32).fill(7),
      requesterCredential: basicCredential("alice@a.example/phone"),
      signature: new Uint8Array(64).fill(9),
    };
    const kmResp: c.KeyMaterialResponse = {
      userStatus: "partialSuccess",
      userUri: "mimi://b.example/u/bob",
      clients: [
        { clientStatus: "success", clientUri: "mimi://b.example/d/bob/laptop", keyPackage: f.keyPackage },
        { clientStatus: "keyMaterialExhausted", clientUri: "mimi://b.example/d/bob/tablet" },
        { clientStatus: "nothingCompatible", clientUri: "mimi://b.example/d/bob/tv", clientCapabilities: f.capabilities },
      ],
    };
    const update: c.HandshakeBundle = {
      proposalOrCommit: f.commit,
      kind: "commit",
      welcome: f.welcome,
      groupInfoOption: { representation: "full", groupInfo: f.groupInfo },
      ratchetTreeOption: { representation: "full", ratchetTree: f.tree },
    };
    const gir: c.GroupInfoRequest = {
      cipherSuite: 1,
      requestingSignatureKey: new Uint8Array(32).fill(1),
      requestingCredential: basicCredential("bob@b.example/tablet"),
      groupInfoPublicKey: new Uint8Array(32).fill(2),
      joiningCode: new Uint8Array(),
      signature: new Uint8Array(64).fill(3),
    };
    const giResp: c.GroupInfoResponse = {
      status: "success",
      roomId: "mimi://a.example/r/cm9vbS0x",
      cipherSuite: 1,
      hubSender: c.mlsOf("externalSender", {
        signaturePublicKey: new Uint8Array(32).fill(4),
        credential: basicCredential("mimi://a.example").value,
      }),
      encrypted: c.mlsOf("hpkeCiphertext", { kemOutput: new Uint8Array(32).fill(5), ciphertext: new Uint8Array(80).fill(6) }),
      signature: new Uint8Array(64).fill(8),
    };
    const tbe: c.GroupInfoRatchetTreeTBE = {
      groupInfo: f.groupInfo,
      ratchetTreeOption: { representation: "outOfBand", treeSignature: new Uint8Array([1, 2]) },
      pendingProposals: [],
    };
    const fanout: c.FanoutMessage[] = [
      { timestamp: 1n, message: f.app, kind: "application" },
      { timestamp: 2n, message: f.commit, kind: "commit", externalProposals: [] },
      { timestamp: 3n, message: f.welcomeMessage, kind: "welcome", ratchetTreeOption: { representation: "distributionService" } },
    ];
    const gLen = f.commit.bytes.length;
    cases = [
      {
        name: "KeyMaterialRequest",
        bytes: c.encodeKeyMaterialRequest(kmr),
        decode: c.decodeKeyMaterialRequest,
        encode: c.encodeKeyMaterialRequest as never,
        lengthAt: 1,
        enumAt: 0,
      },
      {
        name: "KeyMaterialResponse",
        bytes: c.encodeKeyMaterialResponse(kmResp),
        decode: (b) => c.decodeKeyMaterialResponse(b),
        encode: c.encodeKeyMaterialResponse as never,
        lengthAt: 2,
        enumAt: 1,
      },
      {
        name: "UpdateRequest (HandshakeBundle)",
        bytes: c.encodeUpdateRequest(update),
        decode: (b) => c.decodeUpdateRequest(b),
        encode: c.encodeUpdateRequest as never,
        lengthAt: gLen + 1 + f.welcome.bytes.length + 1 + f.groupInfo.bytes.length + 1,
        enumAt: gLen + 1 + f.welcome.bytes.length,
      },
      {
        name: "UpdateRoomResponse wrongEpoch",
        bytes: c.encodeUpdateRoomResponse({ responseCode: "wrongEpoch", errorDescription: "epoch 5", currentEpoch: 5n }),
        decode: c.decodeUpdateRoomResponse,
        encode: c.encodeUpdateRoomResponse as never,
        lengthAt: 1,
        enumAt: 0,
      },
      {
        name: "UpdateRoomResponse invalidProposal",
        bytes: c.encodeUpdateRoomResponse({
          responseCode: "invalidProposal",
          errorDescription: "",
          invalidProposals: [new Uint8Array(32)],
        }),
        decode: c.decodeUpdateRoomResponse,
        encode: c.encodeUpdateRoomResponse as never,
        lengthAt: 2,
        enumAt: 0,
      },
      {
        name: "SubmitMessageRequest",
        bytes: c.encodeSubmitMessageRequest({ appMessage: f.app, sendingUri: "mimi://b.example/d/bob/laptop" }),
        decode: (b) => c.decodeSubmitMessageRequest(b),
        encode: c.encodeSubmitMessageRequest as never,
        lengthAt: 1 + f.app.bytes.length,
        enumAt: 0,
      },
      {
        name: "SubmitMessageResponse accepted+frank",
        bytes: c.encodeSubmitMessageResponse({
          statusCode: "accepted",
          acceptedTimestamp: 9n,
          frank: {
            serverFrank: new Uint8Array(32).fill(1),
            frankingSignatureCiphersuite: 1,
            frankingIntegritySignature: new Uint8Array(64),
          },
        }),
        decode: c.decodeSubmitMessageResponse,
        encode: c.encodeSubmitMessageResponse as never,
        lengthAt: 2 + 8 + 1 + 32 + 2,
        enumAt: 1,
      },
      {
        name: "SubmitMessageResponse epochTooOld",
        bytes: c.encodeSubmitMessageResponse({ statusCode: "epochTooOld", currentEpoch: 3n }),
        decode: c.decodeSubmitMessageResponse,
        encode: c.encodeSubmitMessageResponse as never,
        lengthAt: -1,
        enumAt: 1,
      },
      {
        name: "notify body (3 FanoutMessages)",
        bytes: c.encodeNotifyBody(fanout),
        decode: (b) => c.decodeNotifyBody(b),
        encode: c.encodeNotifyBody as never,
        lengthAt: 8 + f.app.bytes.length + 1 + 8 + gLen,
        enumAt: 8 + f.app.bytes.length + 1 + 8 + gLen + 1 + 8 + f.welcomeMessage.bytes.length,
      },
      {
        name: "GroupInfoRequest",
        bytes: c.encodeGroupInfoRequest(gir),
        decode: c.decodeGroupInfoRequest,
        encode: c.encodeGroupInfoRequest as never,
        lengthAt: 3,
        enumAt: 0,
      },
      {
        name: "GroupInfoResponse",
        bytes: c.encodeGroupInfoResponse(giResp),
        decode: (b) => c.decodeGroupInfoResponse(b),
        encode: c.encodeGroupInfoResponse as never,
        lengthAt: 1,
        enumAt: 1 + 1 + giResp.roomId.length,
      },
      {
        name: "GroupInfoRatchetTreeTBE",
        bytes: c.encodeGroupInfoRatchetTreeTBE(tbe),
        decode: (b) => c.decodeGroupInfoRatchetTreeTBE(b),
        encode: c.encodeGroupInfoRatchetTreeTBE as never,
        lengthAt: f.groupInfo.bytes.length + 1,
        enumAt: f.groupInfo.bytes.length,
      },
    ];
  });

  it("round-trips every structure byte for byte", () => {
    for (const k of cases) expect(Buffer.from(k.encode(k.decode(k.bytes) as never))).toEqual(Buffer.from(k.bytes));
  });

  it("refuses truncated bodies at every cut", () => {
    for (const k of cases) {
      for (const cut of [1, Math.floor(k.bytes.length / 2), k.bytes.length - 1]) {
        expect(() => k.decode(k.bytes.subarray(0, cut))).toThrow(MimiCodecError);
      }
    }
  });

  it("refuses trailing bytes", () => {
    for (const k of cases) {
      if (k.name.startsWith("notify")) continue; // a trailing byte there starts a (truncated) next FanoutMessage
      expect(() => k.decode(Buffer.concat([k.bytes, Buffer.from([0])]))).toThrow(/trailing|truncated|canonical/);
    }
    const notify = cases.find((k) => k.name.startsWith("notify"))!;
    expect(() => notify.decode(Buffer.concat([notify.bytes, Buffer.from([0])]))).toThrow(MimiCodecError);
  });

  it("refuses wrong vector lengths", () => {
    for (const k of cases) {
      if (k.lengthAt < 0) continue;
      const bad = Buffer.from(k.bytes);
      bad[k.lengthAt] = bad[k.lengthAt]! + 1;
      expect(() => k.decode(bad)).toThrow(MimiCodecError);
    }
  });

  it("refuses unknown enum values (protocol, status codes, representations)", () => {
    for (const k of cases) {
      const bad = Buffer.from(k.bytes);
      bad[k.enumAt] = 0xee;
      expect(() => k.decode(bad)).toThrow(/has unknown value 238/);
    }
  });

  it("refuses non-minimal length encodings (canonical only)", () => {
    const body = c.encodeUpdateRoomResponse({ responseCode: "notAllowed", errorDescription: "no" });
    // errorDescription "no" as a 2-byte varint length (0x40 0x02) instead of 0x02.
    const padded = Buffer.concat([body.subarray(0, 1), Buffer.from([0x40, 0x02]), body.subarray(2)]);
    expect(() => c.decodeUpdateRoomResponse(padded)).toThrow(/canonical/);
  });

  it("refuses structures the draft forbids: empty suites, clients with a failing user code, an application in update", () => {
    const kmResp = c.encodeKeyMaterialResponse({
      userStatus: "userUnknown",
      userUri: "mimi://b.example/u/x",
      clients: [{ clientStatus: "keyMaterialExhausted", clientUri: "mimi://b.example/d/x/y" }],
    });
    expect(() => c.decodeKeyMaterialResponse(kmResp)).toThrow(/clients must be empty/);
    const req = cases[0]!.decode(cases[0]!.bytes) as c.KeyMaterialRequest;
    expect(() => c.decodeKeyMaterialRequest(c.encodeKeyMaterialRequest({ ...req, acceptableCiphersuites: [] }))).toThrow(/empty/);
    const sub = cases
      .find((k) => k.name === "SubmitMessageRequest")!
      .decode(cases.find((k) => k.name === "SubmitMessageRequest")!.bytes) as c.SubmitMessageRequest;
    const asUpdate = Buffer.concat([sub.appMessage.bytes, Buffer.from([0])]);
    expect(() => c.decodeUpdateRequest(asUpdate)).toThrow(/proposal or commit/);
  });
});
