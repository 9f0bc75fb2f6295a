import { SframeError } from "./sframe-error.js";

/** RFC 9605 §4.5 cipher suite constants (sizes in bytes). */
export interface SframeSuite {
  id: number;
  name: string;
  hash: "SHA-256" | "SHA-512";
  nh: number;
  /** AES key size of the CTR+HMAC construction (§4.5.1); absent for AES-GCM. */
  nka?: number;
  nk: number;
  nn: number;
  nt: number;
}

const SUITES: readonly SframeSuite[] = [
  { id: 0x0001, name: "AES_128_CTR_HMAC_SHA256_80", hash: "SHA-256", nh: 32, nka: 16, nk: 48, nn: 12, nt: 10 },
  { id: 0x0002, name: "AES_128_CTR_HMAC_SHA256_64", hash: "SHA-256", nh: 32, nka: 16, nk: 48, nn: 12, nt: 8 },
  { id: 0x0003, name: "AES_128_CTR_HMAC_SHA256_32", hash: "SHA-256", nh: 32, nka: 16, nk: 48, nn: 12, nt: 4 },
  { id: 0x0004, name: "AES_128_GCM_SHA256_128", hash: "SHA-256", nh: 32, nk: 16, nn: 12, nt: 16 },
  { id: 0x0005, name: "AES_256_GCM_SHA512_128", hash: "SHA-512", nh: 64, nk: 32, nn: 12, nt: 16 },
];

export const SFRAME_SUITE_IDS: readonly number[] = SUITES.map((s) => s.id);

export function sframeSuite(id: number): SframeSuite {
  const suite = SUITES.find((s) => s.id === id);
  if (!suite) throw new SframeError("unknown_suite", `cipher suite ${id} is not one of RFC 9605's 0x0001–0x0005`);
  return suite;
}

/** WebCrypto wants ArrayBuffer-backed views; every array here is one (never a SharedArrayBuffer). */
export function bufferSource(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes as Uint8Array<ArrayBuffer>;
}

function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new Error("WebCrypto (globalThis.crypto.subtle) is required for SFrame");
  return s;
}

/** The AEAD of a suite with its key imported: AEAD.Encrypt / AEAD.Decrypt of RFC 5116 (tag appended). */
export interface FrameAead {
  seal(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array>;
  open(nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array): Promise<Uint8Array>;
}

/** §4.5.1 derive_subkeys: the first Nka bytes encrypt, the remaining Nh authenticate. */
export function deriveSubkeys(suite: SframeSuite, key: Uint8Array): { encKey: Uint8Array; authKey: Uint8Array } {
  if (suite.nka === undefined) throw new SframeError("unknown_suite", `${suite.name} is not an AES-CTR+HMAC suite`);
  return { encKey: key.subarray(0, suite.nka), authKey: key.subarray(suite.nka) };
}

export async function importAead(suite: SframeSuite, key: Uint8Array): Promise<FrameAead> {
  if (key.length !== suite.nk) throw new SframeError("bad_input", `${suite.name} takes a ${suite.nk}-byte key`);
  return suite.nka === undefined ? importGcm(suite, key) : importCtrHmac(suite, key);
}

async function importGcm(suite: SframeSuite, key: Uint8Array): Promise<FrameAead> {
  const aesKey = await subtle().importKey("raw", bufferSource(key), "AES-GCM", false, ["encrypt", "decrypt"]);
  const params = (nonce: Uint8Array, aad: Uint8Array): AesGcmParams => ({
    name: "AES-GCM",
    iv: bufferSource(nonce),
    additionalData: bufferSource(aad),
    tagLength: suite.nt * 8,
  });
  return {
    seal: async (nonce, aad, plaintext) =>
      new Uint8Array(await subtle().encrypt(params(nonce, aad), aesKey, bufferSource(plaintext))),
    open: async (nonce, aad, ciphertext) => {
      if (ciphertext.length < suite.nt) throw new SframeError("auth_failed", "ciphertext shorter than the tag");
      try {
        return new Uint8Array(await subtle().decrypt(params(nonce, aad), aesKey, bufferSource(ciphertext)));
      } catch {
        throw new SframeError("auth_failed", "authentication tag mismatch");
      }
    },
  };
}

function bigEndian64(value: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(value));
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Compares without an early exit, so the time taken does not reveal where a forged tag differs. */
function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** §4.5.1: AES-CTR then HMAC over lengths, nonce, AAD and ciphertext, truncated to Nt (encrypt-then-MAC). */
async function importCtrHmac(suite: SframeSuite, key: Uint8Array): Promise<FrameAead> {
  const { encKey, authKey } = deriveSubkeys(suite, key);
  const aesKey = await subtle().importKey("raw", bufferSource(encKey), "AES-CTR", false, ["encrypt", "decrypt"]);
  const macKey = await subtle().importKey("raw", bufferSource(authKey), { name: "HMAC", hash: suite.hash }, false, ["sign"]);
  // initial_counter = nonce || 0x00000000: the low 32 bits count blocks.
  const ctrParams = (nonce: Uint8Array): AesCtrParams => ({
    name: "AES-CTR",
    counter: bufferSource(concat(nonce, new Uint8Array(4))),
    length: 32,
  });
  const tag = async (nonce: Uint8Array, aad: Uint8Array, ct: Uint8Array) => {
    const authData = concat(bigEndian64(aad.length), bigEndian64(ct.length), bigEndian64(suite.nt), nonce, aad, ct);
    const mac = new Uint8Array(await subtle().sign("HMAC", macKey, bufferSource(authData)));
    return mac.subarray(0, suite.nt);
  };
  return {
    seal: async (nonce, aad, plaintext) => {
      const ct = new Uint8Array(await subtle().encrypt(ctrParams(nonce), aesKey, bufferSource(plaintext)));
      return concat(ct, await tag(nonce, aad, ct));
    },
    open: async (nonce, aad, ciphertext) => {
      if (ciphertext.length < suite.nt) throw new SframeError("auth_failed", "ciphertext shorter than the tag");
      const inner = ciphertext.subarray(0, ciphertext.length - suite.nt);
      const expected = await tag(nonce, aad, inner);
      if (!constantTimeEqual(expected, ciphertext.subarray(inner.length))) {
        throw new SframeError("auth_failed", "authentication tag mismatch");
      }
      return new Uint8Array(await subtle().decrypt(ctrParams(nonce), aesKey, bufferSource(inner)));
    },
  };
}

export { concat };
