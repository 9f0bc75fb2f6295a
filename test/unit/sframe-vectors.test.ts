import { readFileSync } from "node:fs";
import { sframe, deriveKeySalt, frameNonce, sframeLabels } from "../../src/client/sframe.js";
import { decodeSframeHeader, encodeSframeHeader } from "../../src/client/sframe-header.js";
import { deriveSubkeys, importAead, sframeSuite } from "../../src/client/sframe-suites.js";

// RFC 9605 Appendix C, in the JSON published with it (see test/fixtures/rfc9605/README.md).
// kid/ctr exceed 2^53, so they are quoted before parsing and read as bigints.
const raw = readFileSync(new URL("../fixtures/rfc9605/test-vectors.json", import.meta.url), "utf8");
const vectors = JSON.parse(raw.replace(/"(kid|ctr)": (\d+)/g, '"$1": "$2"')) as {
  header: { kid: string; ctr: string; encoded: string }[];
  aes_ctr_hmac: ({ cipher_suite: number } & Record<"key" | "enc_key" | "auth_key" | "nonce" | "aad" | "pt" | "ct", string>)[];
  sframe: ({ cipher_suite: number; kid: string; ctr: string } & Record<
    "base_key" | "sframe_key_label" | "sframe_salt_label" | "sframe_key" | "sframe_salt" | "metadata" | "nonce" | "pt" | "ct",
    string
  >)[];
};

const hex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("RFC 9605 Appendix C test vectors", () => {
  it("has every vector of the appendix (289 headers, 3 AES-CTR-HMAC, 5 SFrame suites)", () => {
    expect(vectors.header).toHaveLength(289);
    expect(vectors.aes_ctr_hmac.map((v) => v.cipher_suite)).toEqual([1, 2, 3]);
    expect(vectors.sframe.map((v) => v.cipher_suite)).toEqual([1, 2, 3, 4, 5]);
  });

  it("C.1: encodes every (KID, CTR) to the given header and decodes it back", () => {
    for (const v of vectors.header) {
      const kid = BigInt(v.kid);
      const ctr = BigInt(v.ctr);
      expect(toHex(encodeSframeHeader(kid, ctr))).toBe(v.encoded);
      const decoded = decodeSframeHeader(hex(v.encoded));
      expect({ kid: decoded.kid, ctr: decoded.ctr, length: decoded.bytes.length }).toEqual({
        kid,
        ctr,
        length: v.encoded.length / 2,
      });
    }
  });

  it.each(vectors.aes_ctr_hmac.map((v) => [v.cipher_suite, v] as const))(
    "C.2: the AES-CTR + HMAC AEAD of suite %i encrypts to ct and decrypts to pt",
    async (suiteId, v) => {
      const suite = sframeSuite(suiteId);
      const { encKey, authKey } = deriveSubkeys(suite, hex(v.key));
      expect(toHex(encKey)).toBe(v.enc_key);
      expect(toHex(authKey)).toBe(v.auth_key);
      const aead = await importAead(suite, hex(v.key));
      expect(toHex(await aead.seal(hex(v.nonce), hex(v.aad), hex(v.pt)))).toBe(v.ct);
      expect(toHex(await aead.open(hex(v.nonce), hex(v.aad), hex(v.ct)))).toBe(v.pt);
    },
  );

  it.each(vectors.sframe.map((v) => [v.cipher_suite, v] as const))(
    "C.3: suite %i derives sframe_key/sframe_salt, encrypts to ct and decrypts to pt",
    async (suiteId, v) => {
      const kid = BigInt(v.kid);
      const ctr = BigInt(v.ctr);
      const labels = sframeLabels(suiteId, kid);
      expect(toHex(labels.keyLabel)).toBe(v.sframe_key_label);
      expect(toHex(labels.saltLabel)).toBe(v.sframe_salt_label);
      const { key, salt } = await deriveKeySalt(suiteId, hex(v.base_key), kid);
      expect(toHex(key)).toBe(v.sframe_key);
      expect(toHex(salt)).toBe(v.sframe_salt);
      expect(toHex(frameNonce(salt, ctr))).toBe(v.nonce);
      const ct = await sframe.encrypt(suiteId, hex(v.base_key), kid, ctr, hex(v.metadata), hex(v.pt));
      expect(toHex(ct)).toBe(v.ct);
      const opened = await sframe.decrypt(suiteId, hex(v.base_key), hex(v.metadata), hex(v.ct));
      expect({ kid: opened.kid, ctr: opened.ctr, pt: toHex(opened.plaintext) }).toEqual({ kid, ctr, pt: v.pt });
    },
  );
});
