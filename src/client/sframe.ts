import { SframeError, checkU64 } from "./sframe-error.js";
import { decodeSframeHeader, encodeSframeHeader, type SframeHeader } from "./sframe-header.js";
import { bufferSource, concat, importAead, sframeSuite, type FrameAead, type SframeSuite } from "./sframe-suites.js";

/**
 * SFrame (RFC 9605) on WebCrypto only, so the same code runs in Node, in a page and in an
 * RTCRtpScriptTransform worker. `sframe.encrypt`/`sframe.decrypt` are the stateless operations
 * of §4.4; counters, replay and key lifetimes live in SframeKeyRing and CallKeys.
 */

/** Shortest base key accepted: the RFC's own test vectors use 16 bytes for every suite. */
export const MIN_BASE_KEY_BYTES = 16;

const utf8 = new TextEncoder();

function bigEndian(value: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = length - 1, v = value; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

/** §4.4.2 labels: "SFrame 1.0 Secret key " / "... salt " + KID (8 bytes BE) + cipher suite (2 bytes BE). */
export function sframeLabels(suite: number, kid: bigint): { keyLabel: Uint8Array; saltLabel: Uint8Array } {
  checkU64("KID", kid);
  const tail = concat(bigEndian(kid, 8), bigEndian(BigInt(suite), 2));
  return {
    keyLabel: concat(utf8.encode("SFrame 1.0 Secret key "), tail),
    saltLabel: concat(utf8.encode("SFrame 1.0 Secret salt "), tail),
  };
}

/** §4.4.2 derive_key_salt: HKDF-Expand(HKDF-Extract("", base_key), label, Nk / Nn). */
export async function deriveKeySalt(
  suiteId: number,
  baseKey: Uint8Array,
  kid: bigint,
): Promise<{ key: Uint8Array; salt: Uint8Array }> {
  const suite = sframeSuite(suiteId);
  if (!ArrayBuffer.isView(baseKey) || baseKey.length < MIN_BASE_KEY_BYTES) {
    throw new SframeError("bad_input", `base key must be at least ${MIN_BASE_KEY_BYTES} bytes`);
  }
  const { keyLabel, saltLabel } = sframeLabels(suiteId, kid);
  const subtle = globalThis.crypto.subtle;
  const ikm = await subtle.importKey("raw", bufferSource(baseKey), "HKDF", false, ["deriveBits"]);
  // WebCrypto's HKDF is Extract-then-Expand; an empty salt is the RFC's HKDF-Extract("", base_key).
  const expand = async (info: Uint8Array, bytes: number) =>
    new Uint8Array(
      await subtle.deriveBits(
        { name: "HKDF", hash: suite.hash, salt: new Uint8Array(0), info: bufferSource(info) },
        ikm,
        bytes * 8,
      ),
    );
  return { key: await expand(keyLabel, suite.nk), salt: await expand(saltLabel, suite.nn) };
}

/** The keys for one KID, imported once and reused for every frame of that KID. */
export interface FrameKey {
  suite: SframeSuite;
  kid: bigint;
  salt: Uint8Array;
  aead: FrameAead;
}

export async function deriveFrameKey(suiteId: number, baseKey: Uint8Array, kid: bigint): Promise<FrameKey> {
  const suite = sframeSuite(suiteId);
  const { key, salt } = await deriveKeySalt(suiteId, baseKey, kid);
  const aead = await importAead(suite, key);
  key.fill(0);
  return { suite, kid, salt, aead };
}

/** §4.4.3: nonce = sframe_salt XOR CTR (big-endian, Nn bytes). */
export function frameNonce(salt: Uint8Array, ctr: bigint): Uint8Array {
  const ctrBytes = bigEndian(ctr, salt.length);
  return salt.map((b, i) => b ^ ctrBytes[i]!);
}

/** header || AEAD.Encrypt(sframe_key, nonce, header || metadata, plaintext) */
export async function sealFrame(key: FrameKey, ctr: bigint, metadata: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array> {
  const header = encodeSframeHeader(key.kid, ctr);
  const body = await key.aead.seal(frameNonce(key.salt, ctr), concat(header, metadata), plaintext);
  return concat(header, body);
}

/** Opens a frame whose header was already parsed (and whose KID selected `key`). */
export async function openFrame(
  key: FrameKey,
  header: SframeHeader,
  metadata: Uint8Array,
  ciphertext: Uint8Array,
): Promise<Uint8Array> {
  if (header.kid !== key.kid) throw new SframeError("unknown_key", "frame KID does not match the key");
  const body = ciphertext.subarray(header.bytes.length);
  return key.aead.open(frameNonce(key.salt, header.ctr), concat(header.bytes, metadata), body);
}

export const sframe: {
  /** Returns the SFrame ciphertext: header || encrypted payload || tag. */
  encrypt(
    suite: number,
    baseKey: Uint8Array,
    kid: bigint,
    ctr: bigint,
    metadata: Uint8Array,
    plaintext: Uint8Array,
  ): Promise<Uint8Array>;
  /** Parses the header, derives the key from baseKey, checks the tag. */
  decrypt(
    suite: number,
    baseKey: Uint8Array,
    metadata: Uint8Array,
    ciphertext: Uint8Array,
  ): Promise<{ kid: bigint; ctr: bigint; plaintext: Uint8Array }>;
} = {
  async encrypt(suite, baseKey, kid, ctr, metadata, plaintext) {
    checkU64("CTR", ctr);
    return sealFrame(await deriveFrameKey(suite, baseKey, kid), ctr, metadata, plaintext);
  },
  async decrypt(suite, baseKey, metadata, ciphertext) {
    sframeSuite(suite);
    const header = decodeSframeHeader(ciphertext);
    const key = await deriveFrameKey(suite, baseKey, header.kid);
    return { kid: header.kid, ctr: header.ctr, plaintext: await openFrame(key, header, metadata, ciphertext) };
  },
};
