import { sframe, SframeError, SFRAME_SUITE_IDS, decodeSframeHeader, encodeSframeHeader } from "../../src/client/index.js";

const baseKey = new Uint8Array(16).map((_, i) => i);
const otherKey = new Uint8Array(16).map((_, i) => 100 + i);
const metadata = new TextEncoder().encode("vp8 clear bytes");
const plaintext = new TextEncoder().encode("a media frame payload");
const bytes = (...b: number[]) => new Uint8Array(b);

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof SframeError) return e.code;
    throw e;
  }
  throw new Error("expected a refusal");
}

function syncRefusal(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof SframeError) return e.code;
    throw e;
  }
  throw new Error("expected a refusal");
}

describe("SFrame header decoding is strict", () => {
  it("refuses a header cut inside its KID or CTR field, and an empty input", () => {
    expect(syncRefusal(() => decodeSframeHeader(bytes()))).toBe("bad_header");
    expect(syncRefusal(() => decodeSframeHeader(bytes(0x88)))).toBe("bad_header"); // KID of 1 byte missing
    expect(syncRefusal(() => decodeSframeHeader(bytes(0x19, 0x01)))).toBe("bad_header"); // CTR of 2 bytes, 1 present
    expect(syncRefusal(() => decodeSframeHeader(bytes(0xff, 1, 2, 3, 4, 5, 6, 7)))).toBe("bad_header"); // 8-byte KID, 7 present
  });

  it("refuses non-minimal encodings: an extended field for a value below 8, a leading zero byte", () => {
    expect(syncRefusal(() => decodeSframeHeader(bytes(0x80, 0x05)))).toBe("bad_header");
    expect(syncRefusal(() => decodeSframeHeader(bytes(0x08, 0x00)))).toBe("bad_header");
    expect(syncRefusal(() => decodeSframeHeader(bytes(0x90, 0x00, 0xff)))).toBe("bad_header");
    expect(syncRefusal(() => decodeSframeHeader(bytes(0x09, 0x00, 0x08)))).toBe("bad_header");
    // The minimal forms of the same values decode.
    expect(decodeSframeHeader(bytes(0x50)).kid).toBe(5n);
    expect(decodeSframeHeader(bytes(0x80, 0xff)).kid).toBe(255n);
  });

  it("refuses KIDs and CTRs outside 0..2^64-1 when encoding", () => {
    expect(syncRefusal(() => encodeSframeHeader(-1n, 0n))).toBe("bad_input");
    expect(syncRefusal(() => encodeSframeHeader(0n, 1n << 64n))).toBe("bad_input");
    expect(encodeSframeHeader((1n << 64n) - 1n, 0n)).toHaveLength(9);
  });
});

describe.each(SFRAME_SUITE_IDS.map((s) => [s]))("sframe.encrypt/decrypt with suite %i", (suite) => {
  let ct: Uint8Array;
  beforeAll(async () => {
    ct = await sframe.encrypt(suite, baseKey, 0x123n, 42n, metadata, plaintext);
  });

  it("round-trips and reports the KID and CTR from the header", async () => {
    const out = await sframe.decrypt(suite, baseKey, metadata, ct);
    expect(out).toEqual({ kid: 0x123n, ctr: 42n, plaintext });
  });

  it("refuses another base key, other metadata, a flipped bit anywhere, a truncated frame", async () => {
    expect(await refusal(sframe.decrypt(suite, otherKey, metadata, ct))).toBe("auth_failed");
    expect(await refusal(sframe.decrypt(suite, baseKey, bytes(1), ct))).toBe("auth_failed");
    for (const i of [0, 3, ct.length - 1, Math.floor(ct.length / 2)]) {
      const tampered = ct.slice();
      tampered[i]! ^= 0x01;
      // A flip in the header changes KID or CTR (another key or nonce) or breaks the encoding.
      expect(["auth_failed", "bad_header"]).toContain(await refusal(sframe.decrypt(suite, baseKey, metadata, tampered)));
    }
    expect(await refusal(sframe.decrypt(suite, baseKey, metadata, ct.subarray(0, 4)))).toBe("auth_failed");
  });

  it("gives every (KID, CTR) its own ciphertext", async () => {
    const again = await sframe.encrypt(suite, baseKey, 0x123n, 43n, metadata, plaintext);
    const otherKid = await sframe.encrypt(suite, baseKey, 0x124n, 42n, metadata, plaintext);
    const body = (c: Uint8Array) => Buffer.from(c.subarray(c.length - plaintext.length - 4)).toString("hex");
    expect(new Set([body(ct), body(again), body(otherKid)]).size).toBe(3);
  });
});

describe("sframe input checks", () => {
  it("refuses an unknown cipher suite, a short base key and out-of-range KID/CTR", async () => {
    expect(await refusal(sframe.encrypt(0x0006, baseKey, 1n, 0n, metadata, plaintext))).toBe("unknown_suite");
    expect(await refusal(sframe.decrypt(0, baseKey, metadata, bytes(0x00, 1, 2)))).toBe("unknown_suite");
    expect(await refusal(sframe.encrypt(4, baseKey.subarray(0, 8), 1n, 0n, metadata, plaintext))).toBe("bad_input");
    expect(await refusal(sframe.encrypt(4, baseKey, 1n << 64n, 0n, metadata, plaintext))).toBe("bad_input");
    expect(await refusal(sframe.encrypt(4, baseKey, 1n, -1n, metadata, plaintext))).toBe("bad_input");
  });
});
