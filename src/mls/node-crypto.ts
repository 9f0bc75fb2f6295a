import {
  createCipheriv,
  createDecipheriv,
  createECDH,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  ECDH,
  generateKeyPairSync,
  randomBytes,
  sign as nodeSign,
  timingSafeEqual,
  verify as nodeVerify,
  type KeyObject,
} from "node:crypto";
import { defaultCryptoProvider } from "ts-mls";
import type { Ciphersuite, CiphersuiteImpl } from "ts-mls/crypto/ciphersuite.js";
import type { Hash, HashAlgorithm } from "ts-mls/crypto/hash.js";
import type { Hpke } from "ts-mls/crypto/hpke.js";
import type { Kdf } from "ts-mls/crypto/kdf.js";
import type { CryptoProvider } from "ts-mls/crypto/provider.js";
import type { Rng } from "ts-mls/crypto/rng.js";
import type { Signature, SignatureAlgorithm } from "ts-mls/crypto/signature.js";
import { CryptoError } from "ts-mls/mlsError.js";

/**
 * A ts-mls CryptoProvider backed by synchronous node:crypto (OpenSSL) for what a DS and a client
 * do most: SHA-2, HMAC, HKDF, Ed25519/Ed448/ECDSA signatures, AES-GCM and ChaCha20-Poly1305 AEAD.
 * Most of the default provider's cost is per-call WebCrypto overhead (importKey + a promise per
 * operation); here every operation is one synchronous OpenSSL call. HPKE (KEM) stays the default
 * implementation, as does every algorithm node:crypto lacks (ML-DSA, X-Wing): the provider starts
 * from the default CiphersuiteImpl and replaces parts, so it interoperates by construction — the
 * algorithms are the same, only the implementation differs (test/unit/node-crypto.test.ts).
 *
 * Key formats follow the default provider so states and keys move freely between the two:
 * Ed25519 private keys are accepted as 32-byte seeds or PKCS#8 DER and generated as PKCS#8
 * (like WebCrypto); ECDSA private keys are raw scalars (like noble); public keys are raw.
 */

const nodeHashName: Record<HashAlgorithm, string> = { "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512" };

function u8(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export function makeNodeHash(alg: HashAlgorithm): Hash {
  const name = nodeHashName[alg];
  const mac = (key: Uint8Array, data: Uint8Array) => createHmac(name, key).update(data).digest();
  return {
    digest: async (data) => u8(createHash(name).update(data).digest()),
    mac: async (key, data) => u8(mac(key, data)),
    verifyMac: async (key, tag, data) => {
      const expected = mac(key, data);
      return expected.byteLength === tag.byteLength && timingSafeEqual(expected, tag);
    },
  };
}

/** HKDF (RFC 5869) as two separate steps, as MLS uses them: Extract and Expand. */
export function makeNodeKdf(alg: HashAlgorithm): Kdf {
  const name = nodeHashName[alg];
  const size = createHash(name).digest().byteLength;
  return {
    size,
    // An empty salt is HMAC with an empty key, which RFC 5869 defines as HashLen zero bytes: the same MAC.
    extract: async (salt, ikm) => u8(createHmac(name, salt).update(ikm).digest()),
    expand: async (prk, info, len) => {
      if (len > 255 * size) throw new CryptoError(`HKDF-Expand length ${len} too large`);
      const out = Buffer.allocUnsafe(Math.ceil(len / size) * size);
      let previous = Buffer.alloc(0);
      for (let i = 0, off = 0; off < len; i++, off += size) {
        previous = createHmac(name, prk)
          .update(previous)
          .update(info)
          .update(Buffer.of(i + 1))
          .digest();
        previous.copy(out, off);
      }
      return u8(out.subarray(0, len));
    },
  };
}

// DER prefixes that turn a raw public key / Ed seed into SPKI / PKCS#8 (RFC 8410).
const ED25519_SPKI = Buffer.from("302a300506032b6570032100", "hex");
const ED25519_PKCS8 = Buffer.from("302e020100300506032b657004220420", "hex");
const ED448_SPKI = Buffer.from("3043300506032b6571033a00", "hex");
const ED448_PKCS8 = Buffer.from("3047020100300506032b6571043b0439", "hex");

/** Small cache of parsed public keys: a DS verifies the same identity keys over and over. */
class KeyCache {
  private readonly map = new Map<string, KeyObject>();
  constructor(private readonly max = 4096) {}
  get(raw: Uint8Array, make: () => KeyObject): KeyObject {
    const id = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("base64");
    let key = this.map.get(id);
    if (!key) {
      key = make();
      if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value!);
      this.map.set(id, key);
    }
    return key;
  }
}

/**
 * Parsed private keys, by the identity of the key's byte array (a client state keeps the same one
 * for every signature it makes): parsing PKCS#8 on each signature cost more than the signature.
 * Weak, so nothing outlives the array; a digest of the bytes guards against an array changed in place.
 */
const privateKeys = new WeakMap<Uint8Array, { digest: string; key: KeyObject }>();

function cachedPrivateKey(signKey: Uint8Array, make: () => KeyObject): KeyObject {
  const digest = createHash("sha256").update(signKey).digest("base64");
  const hit = privateKeys.get(signKey);
  if (hit && hit.digest === digest) return hit.key;
  const key = make();
  privateKeys.set(signKey, { digest, key });
  return key;
}

function edSignature(spki: Buffer, pkcs8: Buffer, seedLength: number, type: "ed25519" | "ed448"): Signature {
  const publicKeys = new KeyCache();
  const privateKey = (signKey: Uint8Array): KeyObject =>
    cachedPrivateKey(signKey, () =>
      createPrivateKey({
        key: signKey.byteLength === seedLength ? Buffer.concat([pkcs8, signKey]) : Buffer.from(signKey),
        format: "der",
        type: "pkcs8",
      }),
    );
  return {
    sign: async (signKey, message) => u8(nodeSign(null, message, privateKey(signKey))),
    verify: async (publicKey, message, signature) => {
      if (publicKey.byteLength !== seedLength) return false; // Ed25519: 32, Ed448: 57 (seed and public key alike)
      try {
        const key = publicKeys.get(publicKey, () =>
          createPublicKey({ key: Buffer.concat([spki, publicKey]), format: "der", type: "spki" }),
        );
        return nodeVerify(null, message, key, signature);
      } catch {
        return false;
      }
    },
    keygen: async () => {
      const { publicKey, privateKey: priv } = generateKeyPairSync(type as "ed25519");
      const spkiDer = publicKey.export({ format: "der", type: "spki" });
      return {
        publicKey: u8(spkiDer.subarray(spkiDer.byteLength - seedLength)),
        signKey: u8(priv.export({ format: "der", type: "pkcs8" })),
      };
    },
  };
}

const ecdsa: Partial<Record<SignatureAlgorithm, { curve: string; jwkCurve: string; hash: string; size: number }>> = {
  P256: { curve: "prime256v1", jwkCurve: "P-256", hash: "sha256", size: 32 },
  P384: { curve: "secp384r1", jwkCurve: "P-384", hash: "sha384", size: 48 },
  P521: { curve: "secp521r1", jwkCurve: "P-521", hash: "sha512", size: 66 },
};

/** ECDSA with DER signatures over the hashed message, as the default (noble, prehash) provider signs. */
function ecdsaSignature(p: { curve: string; jwkCurve: string; hash: string; size: number }): Signature {
  const publicKeys = new KeyCache();
  const b64u = (b: Uint8Array) => Buffer.from(b).toString("base64url");
  const publicKeyObject = (raw: Uint8Array) =>
    publicKeys.get(raw, () => {
      // SEC1 point (uncompressed, or compressed and expanded here) → JWK.
      const full =
        raw[0] === 4
          ? Buffer.from(raw)
          : (ECDH.convertKey(Buffer.from(raw), p.curve, undefined, undefined, "uncompressed") as Buffer);
      return createPublicKey({
        key: { kty: "EC", crv: p.jwkCurve, x: b64u(full.subarray(1, 1 + p.size)), y: b64u(full.subarray(1 + p.size)) },
        format: "jwk",
      });
    });
  return {
    sign: async (signKey, message) => {
      const key = cachedPrivateKey(signKey, () => {
        const ecdh = createECDH(p.curve);
        const d = Buffer.alloc(p.size);
        Buffer.from(signKey).copy(d, p.size - Math.min(p.size, signKey.byteLength));
        ecdh.setPrivateKey(d);
        const pub = ecdh.getPublicKey();
        return createPrivateKey({
          key: {
            kty: "EC",
            crv: p.jwkCurve,
            d: b64u(d),
            x: b64u(pub.subarray(1, 1 + p.size)),
            y: b64u(pub.subarray(1 + p.size)),
          },
          format: "jwk",
        });
      });
      return u8(nodeSign(p.hash, message, { key, dsaEncoding: "der" }));
    },
    verify: async (publicKey, message, signature) => {
      try {
        return nodeVerify(p.hash, message, { key: publicKeyObject(publicKey), dsaEncoding: "der" }, signature);
      } catch {
        return false;
      }
    },
    keygen: async () => {
      const ecdh = createECDH(p.curve);
      ecdh.generateKeys();
      const d = Buffer.alloc(p.size);
      const raw = ecdh.getPrivateKey();
      raw.copy(d, p.size - raw.byteLength);
      return { signKey: u8(d), publicKey: u8(ecdh.getPublicKey()) };
    },
  };
}

function nodeSignature(alg: SignatureAlgorithm): Signature | undefined {
  if (alg === "Ed25519") return edSignature(ED25519_SPKI, ED25519_PKCS8, 32, "ed25519");
  if (alg === "Ed448") return edSignature(ED448_SPKI, ED448_PKCS8, 57, "ed448");
  const p = ecdsa[alg];
  return p ? ecdsaSignature(p) : undefined;
}

const aeadCipher: Record<string, { name: string; keyLength: number }> = {
  AES128GCM: { name: "aes-128-gcm", keyLength: 16 },
  AES256GCM: { name: "aes-256-gcm", keyLength: 32 },
  CHACHA20POLY1305: { name: "chacha20-poly1305", keyLength: 32 },
};

/** The default HPKE with its AEAD (MLS message protection) replaced by node:crypto. */
function withNodeAead(hpke: Hpke, aead: string): Hpke {
  const c = aeadCipher[aead];
  if (!c) return hpke;
  const name = c.name as "aes-128-gcm";
  return {
    ...hpke,
    encryptAead: async (key, nonce, aad, plaintext) => {
      const cipher = createCipheriv(name, key, nonce, { authTagLength: 16 });
      if (aad && aad.byteLength > 0) cipher.setAAD(aad, { plaintextLength: plaintext.byteLength });
      return u8(Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]));
    },
    decryptAead: async (key, nonce, aad, ciphertext) => {
      try {
        if (ciphertext.byteLength < 16) throw new Error("ciphertext shorter than the tag");
        const body = ciphertext.subarray(0, ciphertext.byteLength - 16);
        const decipher = createDecipheriv(name, key, nonce, { authTagLength: 16 });
        decipher.setAuthTag(ciphertext.subarray(ciphertext.byteLength - 16));
        if (aad && aad.byteLength > 0) decipher.setAAD(aad, { plaintextLength: body.byteLength });
        return u8(Buffer.concat([decipher.update(body), decipher.final()]));
      } catch (e) {
        throw new CryptoError(`${String(e)}`);
      }
    },
  };
}

const nodeRng: Rng = { randomBytes: (n) => u8(randomBytes(n)) };

/** @see the module comment. */
export const nodeCryptoProvider: CryptoProvider = {
  async getCiphersuiteImpl(cs: Ciphersuite): Promise<CiphersuiteImpl> {
    const base = await defaultCryptoProvider.getCiphersuiteImpl(cs);
    return {
      ...base,
      hash: makeNodeHash(cs.hash),
      kdf: makeNodeKdf(kdfHash(cs.hpke.kdf)),
      signature: nodeSignature(cs.signature) ?? base.signature,
      hpke: withNodeAead(base.hpke, cs.hpke.aead),
      rng: nodeRng,
    };
  },
};

function kdfHash(kdf: string): HashAlgorithm {
  if (kdf === "HKDF-SHA256") return "SHA-256";
  if (kdf === "HKDF-SHA384") return "SHA-384";
  return "SHA-512";
}
