import { randomBytes } from "node:crypto";
import { fromB64u, toB64u } from "../../src/encoding.js";

describe("fromB64u decodes only canonical base64url without padding", () => {
  it("round-trips random bytes of every length modulo 3", () => {
    for (const n of [0, 1, 2, 3, 4, 5, 31, 32, 33, 1000]) {
      const bytes = randomBytes(n);
      const text = toB64u(bytes);
      expect(text).toMatch(/^[A-Za-z0-9_-]*$/);
      expect(Buffer.from(fromB64u(text)!)).toEqual(bytes);
    }
  });

  it("decodes the URL-safe alphabet, including - and _", () => {
    expect(Array.from(fromB64u("-_-_")!)).toEqual([0xfb, 0xff, 0xbf]);
  });

  it("rejects = padding", () => {
    expect(fromB64u("QQ")).toEqual(new Uint8Array([0x41]));
    expect(fromB64u("QQ==")).toBeUndefined();
    expect(fromB64u("QUI=")).toBeUndefined();
  });

  it("rejects the standard alphabet's + and /", () => {
    expect(fromB64u("+/+/")).toBeUndefined();
    expect(fromB64u("ab/c")).toBeUndefined();
  });

  it("rejects whitespace, dots and non-ASCII characters", () => {
    for (const bad of ["QU JD", "QUJD\n", " QUJD", "QU.D", "QUJé", "QUJD\u0000"]) expect(fromB64u(bad)).toBeUndefined();
  });

  it("rejects a length that no byte string encodes to", () => {
    expect(fromB64u("Q")).toBeUndefined();
    expect(fromB64u("QUJDR")).toBeUndefined();
  });

  it("rejects non-zero trailing bits that a canonical encoder never writes", () => {
    // "QQ" is 0x41; "QR" decodes to the same byte with a stray low bit set.
    expect(fromB64u("QR")).toBeUndefined();
    expect(fromB64u("QUI")).toEqual(new Uint8Array([0x41, 0x42]));
    expect(fromB64u("QUJ")).toBeUndefined();
  });
});
