import { randomBytes } from "node:crypto";
import {
  createGroup,
  createGroupInfoWithExternalPubAndRatchetTree,
  defaultCapabilities,
  encodeMlsMessage,
  generateKeyPackage,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  type CiphersuiteImpl,
  type CiphersuiteName,
  type Extension,
  type KeyPackage,
  type Lifetime,
  type PrivateKeyPackage,
} from "ts-mls";
import { makeKeyPackageRef, signKeyPackage } from "ts-mls/keyPackage.js";
import { DsError } from "../../src/errors.js";
import { toB64u } from "../../src/encoding.js";
import { LAST_RESORT_EXTENSION, validateKeyPackage, type KeyPackagePolicy } from "../../src/mls/key-package.js";

const SUITE_1: CiphersuiteName = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519";
const SUITE_3: CiphersuiteName = "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519";
const ALICE = "alice@a.example/phone";
const NOW = Math.floor(Date.now() / 1000);
const DAY = 24 * 3600;

const policy: KeyPackagePolicy = {
  allowedSuites: [1],
  maxLifetimeSeconds: 90 * DAY,
  maxBytes: 8192,
  clockSkewSeconds: 300,
  identitySchemes: ["fedgate"] as const,
};

let cs1: CiphersuiteImpl;

beforeAll(async () => {
  cs1 = await getCiphersuiteImpl(getCiphersuiteFromName(SUITE_1));
});

interface Made {
  kp: KeyPackage;
  priv: PrivateKeyPackage;
  bytes: Uint8Array;
}

function wire(kp: KeyPackage): Uint8Array {
  return encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: kp });
}

async function make(
  opts: { identity?: string; lifetime?: Lifetime; extensions?: Extension[]; suites?: CiphersuiteName[] } = {},
): Promise<Made> {
  const caps = defaultCapabilities();
  const { publicPackage, privatePackage } = await generateKeyPackage(
    { credentialType: "basic", identity: new TextEncoder().encode(opts.identity ?? ALICE) },
    opts.suites ? { ...caps, ciphersuites: opts.suites } : caps,
    opts.lifetime ?? { notBefore: BigInt(NOW - 60), notAfter: BigInt(NOW + 30 * DAY) },
    opts.extensions ?? [],
    cs1,
  );
  return { kp: publicPackage, priv: privatePackage, bytes: wire(publicPackage) };
}

async function rejection(bytes: Uint8Array, p: KeyPackagePolicy = policy, client = ALICE): Promise<DsError> {
  const err: unknown = await validateKeyPackage(bytes, client, p, NOW).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DsError);
  return err as DsError;
}

function flipped(bytes: Uint8Array, index: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[index] = copy[index]! ^ 0x01;
  return copy;
}

describe("validateKeyPackage accepts real KeyPackages", () => {
  it("accepts a fresh KeyPackage and reports the ref that ts-mls computes", async () => {
    const { kp, bytes } = await make();
    const valid = await validateKeyPackage(bytes, ALICE, policy, NOW);
    expect(valid.ref).toBe(toB64u(await makeKeyPackageRef(kp, cs1.hash)));
    expect(valid).toMatchObject({
      client: ALICE,
      cipherSuite: 1,
      notAfter: NOW + 30 * DAY,
      lastResort: false,
      identityKey: toB64u(kp.leafNode.signaturePublicKey),
      keyPackage: toB64u(bytes),
    });
  });

  it("detects the last_resort extension (0x000A) among the KeyPackage extensions", async () => {
    const { bytes } = await make({ extensions: [{ extensionType: LAST_RESORT_EXTENSION, extensionData: new Uint8Array() }] });
    expect((await validateKeyPackage(bytes, ALICE, policy, NOW)).lastResort).toBe(true);
  });

  it("accepts a KeyPackage of exactly the maximum size", async () => {
    const { bytes } = await make();
    await expect(validateKeyPackage(bytes, ALICE, { ...policy, maxBytes: bytes.byteLength }, NOW)).resolves.toMatchObject({
      client: ALICE,
    });
  });
});

describe("validateKeyPackage rejects bytes that are not a canonical KeyPackage with invalid_mls", () => {
  it("rejects random bytes", async () => {
    for (let i = 0; i < 20; i++) {
      expect((await rejection(randomBytes(64 + i * 13))).code).toBe("invalid_mls");
    }
  });

  it("rejects empty input", async () => {
    expect((await rejection(new Uint8Array())).code).toBe("invalid_mls");
  });

  it("rejects every truncation of a valid KeyPackage", async () => {
    const { bytes } = await make();
    for (const n of [1, 4, 8, 40, Math.floor(bytes.byteLength / 2), bytes.byteLength - 1]) {
      expect((await rejection(bytes.subarray(0, n))).code).toBe("invalid_mls");
    }
  });

  it("rejects a valid KeyPackage followed by one trailing byte", async () => {
    const { bytes } = await make();
    const err = await rejection(new Uint8Array([...bytes, 0]));
    expect(err.code).toBe("invalid_mls");
    expect(err.message).toMatch(/trailing/);
  });

  it("rejects a KeyPackage whose init_key length is encoded as a non-minimal varint", async () => {
    const { bytes } = await make();
    // MLSMessage header (4) + version (2) + suite (2), then the 1-byte varint length 0x20 of init_key.
    expect(bytes[8]).toBe(0x20);
    const nonCanonical = new Uint8Array([...bytes.subarray(0, 8), 0x40, 0x20, ...bytes.subarray(9)]);
    const err = await rejection(nonCanonical);
    expect(err.code).toBe("invalid_mls");
    expect(err.message).toMatch(/canonical/);
  });

  it("rejects an MLS message that is not a KeyPackage with invalid_key_package", async () => {
    const { kp, priv } = await make();
    const state = await createGroup(randomBytes(16), kp, priv, [], cs1);
    const groupInfo = await createGroupInfoWithExternalPubAndRatchetTree(state, [], cs1);
    const bytes = encodeMlsMessage({ version: "mls10", wireformat: "mls_group_info", groupInfo });
    expect((await rejection(bytes, { ...policy, maxBytes: 1 << 16 })).code).toBe("invalid_key_package");
  });
});

describe("validateKeyPackage enforces the KeyPackage policy", () => {
  it("rejects a KeyPackage whose signature byte was flipped", async () => {
    const { bytes } = await make();
    const err = await rejection(flipped(bytes, bytes.byteLength - 1));
    expect(err.code).toBe("invalid_key_package");
    expect(err.message).toMatch(/signature/);
  });

  it("rejects a KeyPackage re-signed with another client's signature key", async () => {
    const { kp } = await make();
    const other = await make();
    const { signature: _unused, ...tbs } = kp;
    const forged = await signKeyPackage(tbs, other.priv.signaturePrivateKey, cs1.signature);
    expect((await rejection(wire(forged))).code).toBe("invalid_key_package");
  });

  it("rejects a KeyPackage whose leaf node was altered even though the outer signature was redone", async () => {
    const { kp, priv } = await make();
    const { signature: _unused, ...tbs } = kp;
    const leafNode = { ...kp.leafNode, lifetime: { ...kp.leafNode.lifetime, notAfter: kp.leafNode.lifetime.notAfter - 1n } };
    const resigned = await signKeyPackage({ ...tbs, leafNode }, priv.signaturePrivateKey, cs1.signature);
    expect((await rejection(wire(resigned))).code).toBe("invalid_key_package");
  });

  it("rejects an expired KeyPackage", async () => {
    const { bytes } = await make({ lifetime: { notBefore: BigInt(NOW - 10 * DAY), notAfter: BigInt(NOW - 1) } });
    const err = await rejection(bytes);
    expect(err.code).toBe("invalid_key_package");
    expect(err.message).toMatch(/expired/);
  });

  it("rejects a KeyPackage that only becomes valid beyond the tolerated clock skew", async () => {
    const { bytes } = await make({ lifetime: { notBefore: BigInt(NOW + 3600), notAfter: BigInt(NOW + DAY) } });
    expect((await rejection(bytes)).code).toBe("invalid_key_package");
  });

  it("rejects a KeyPackage whose lifetime is longer than the configured maximum", async () => {
    const { bytes } = await make({ lifetime: { notBefore: BigInt(NOW - 60), notAfter: BigInt(NOW - 60 + 90 * DAY + 1) } });
    const err = await rejection(bytes);
    expect(err.code).toBe("invalid_key_package");
    expect(err.message).toMatch(/lifetime/);
  });

  it("rejects the ts-mls default, effectively infinite, lifetime", async () => {
    const { bytes } = await make({ lifetime: { notBefore: 0n, notAfter: 2n ** 63n - 1n } });
    expect((await rejection(bytes)).code).toBe("invalid_key_package");
  });

  it("rejects a KeyPackage whose credential names another client with credential_mismatch", async () => {
    const { bytes } = await make({ identity: "mallory@a.example/phone" });
    expect((await rejection(bytes)).code).toBe("credential_mismatch");
  });

  it("rejects a credential that differs from the uploader only by device", async () => {
    const { bytes } = await make({ identity: "alice@a.example/laptop" });
    expect((await rejection(bytes)).code).toBe("credential_mismatch");
  });

  it("accepts a wire-form identity for the client it maps to, only where the wire scheme is accepted", async () => {
    const uuid = "2f1e8a8c-4a3b-4c1d-9e2f-0123456789ab";
    const { bytes } = await make({ identity: `${uuid}:1a2b@a.example` });
    const both: KeyPackagePolicy = { ...policy, identitySchemes: ["fedgate", "wire"] };
    await expect(validateKeyPackage(bytes, `${uuid}@a.example/1a2b`, both, NOW)).resolves.toMatchObject({
      client: `${uuid}@a.example/1a2b`,
    });
    const err = await rejection(bytes, policy, `${uuid}@a.example/1a2b`);
    expect(err.code).toBe("credential_mismatch");
    expect(err.message).toMatch(/no accepted form \(fedgate\)/);
    // The same device under another uuid, or another device, is somebody else.
    expect((await rejection(bytes, both, `${uuid}@a.example/1a2c`)).code).toBe("credential_mismatch");
  });

  it("accepts a notBefore one hour back (core-crypto's habit) while the whole span counts against the cap", async () => {
    const hourBack = { notBefore: BigInt(NOW - 3600), notAfter: BigInt(NOW - 3600 + 90 * DAY) };
    await expect(validateKeyPackage((await make({ lifetime: hourBack })).bytes, ALICE, policy, NOW)).resolves.toBeDefined();
    const over = { notBefore: BigInt(NOW - 3600), notAfter: BigInt(NOW + 90 * DAY) };
    expect((await rejection((await make({ lifetime: over })).bytes)).message).toMatch(/lifetime/);
  });

  it("rejects a cipher suite the policy does not allow with unsupported_cipher_suite", async () => {
    // Suites 1 and 3 share X25519 and Ed25519: the same keys make a genuine, correctly signed suite-3 KeyPackage.
    const { kp, priv } = await make();
    const { signature: _unused, ...tbs } = kp;
    const suite3 = await signKeyPackage({ ...tbs, cipherSuite: SUITE_3 }, priv.signaturePrivateKey, cs1.signature);
    const err = await rejection(wire(suite3));
    expect(err.code).toBe("unsupported_cipher_suite");
    expect(err.details).toEqual({ allowed: [1] });
  });

  it("rejects a KeyPackage whose capabilities omit its own cipher suite", async () => {
    const { bytes } = await make({ suites: [SUITE_3] });
    const err = await rejection(bytes);
    expect(err.code).toBe("invalid_key_package");
    expect(err.message).toMatch(/capabilities/);
  });

  it("rejects a correctly signed KeyPackage whose init_key equals the leaf encryption_key", async () => {
    const { kp, priv } = await make();
    const { signature: _unused, ...tbs } = kp;
    const sameKeys = await signKeyPackage(
      { ...tbs, initKey: kp.leafNode.hpkePublicKey },
      priv.signaturePrivateKey,
      cs1.signature,
    );
    const err = await rejection(wire(sameKeys));
    expect(err.code).toBe("invalid_key_package");
    expect(err.message).toMatch(/init_key/);
  });

  it("rejects a KeyPackage larger than the size cap with payload_too_large before decoding it", async () => {
    const { bytes } = await make();
    expect((await rejection(bytes, { ...policy, maxBytes: bytes.byteLength - 1 })).code).toBe("payload_too_large");
    expect((await rejection(randomBytes(10_000))).code).toBe("payload_too_large");
  });
});
