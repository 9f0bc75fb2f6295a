import { randomBytes } from "node:crypto";
import {
  createApplicationMessage,
  createGroup,
  defaultCapabilities,
  encodeMlsMessage,
  generateKeyPackage,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  type CiphersuiteImpl,
} from "ts-mls";
import { DsError } from "../../src/errors.js";
import { toB64u } from "../../src/encoding.js";
import { decodeMlsField, decodeMlsStrict } from "../../src/mls/codec.js";

let cs: CiphersuiteImpl;
/** A real PrivateMessage (application data) of a fresh one-member group. */
let message: Uint8Array;

beforeAll(async () => {
  cs = await getCiphersuiteImpl(getCiphersuiteFromName("MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"));
  const now = BigInt(Math.floor(Date.now() / 1000));
  const kp = await generateKeyPackage(
    { credentialType: "basic", identity: new TextEncoder().encode("alice@a.example/phone") },
    defaultCapabilities(),
    { notBefore: now - 60n, notAfter: now + 3600n },
    [],
    cs,
  );
  const state = await createGroup(randomBytes(16), kp.publicPackage, kp.privatePackage, [], cs);
  const { privateMessage } = await createApplicationMessage(state, new TextEncoder().encode("hello"), cs);
  message = encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage });
});

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DsError);
    return (e as DsError).code;
  }
  throw new Error("expected a DsError, but the call returned");
}

describe("decodeMlsStrict accepts only whole, canonical MLS messages within the size cap", () => {
  it("decodes a real PrivateMessage and keeps its framing", () => {
    const decoded = decodeMlsStrict(message, 1 << 16);
    expect(decoded.wireformat).toBe("mls_private_message");
    expect(encodeMlsMessage(decoded)).toEqual(message);
  });

  it("rejects empty input", () => {
    expect(codeOf(() => decodeMlsStrict(new Uint8Array(), 1 << 16))).toBe("invalid_mls");
  });

  it("rejects random bytes", () => {
    for (let i = 0; i < 20; i++) expect(codeOf(() => decodeMlsStrict(randomBytes(50 + i * 7), 1 << 16))).toBe("invalid_mls");
  });

  it("rejects a message cut short anywhere", () => {
    for (let n = 1; n < message.byteLength; n += 7)
      expect(codeOf(() => decodeMlsStrict(message.subarray(0, n), 1 << 16))).toBe("invalid_mls");
  });

  it("rejects trailing bytes after a complete message", () => {
    expect(codeOf(() => decodeMlsStrict(new Uint8Array([...message, 0, 0]), 1 << 16))).toBe("invalid_mls");
  });

  it("rejects a message whose group id length is encoded as a non-minimal varint", () => {
    // MLSMessage header (4), then the PrivateMessage's group_id: 1-byte varint length 16.
    expect(message[4]).toBe(16);
    const nonCanonical = new Uint8Array([...message.subarray(0, 4), 0x40, 16, ...message.subarray(5)]);
    expect(codeOf(() => decodeMlsStrict(nonCanonical, 1 << 16))).toBe("invalid_mls");
  });

  it("rejects a protocol version other than mls10", () => {
    const v2 = Uint8Array.from(message);
    v2[1] = 2;
    expect(codeOf(() => decodeMlsStrict(v2, 1 << 16))).toBe("invalid_mls");
  });

  it("refuses input over the cap with payload_too_large before decoding it", () => {
    expect(codeOf(() => decodeMlsStrict(message, message.byteLength - 1))).toBe("payload_too_large");
    expect(codeOf(() => decodeMlsStrict(randomBytes(1000), 999))).toBe("payload_too_large");
    expect(decodeMlsStrict(message, message.byteLength).wireformat).toBe("mls_private_message");
  });
});

describe("decodeMlsField checks the JSON field before the MLS bytes", () => {
  it("decodes base64url text into the bytes and the message", () => {
    const { bytes, message: decoded } = decodeMlsField(toB64u(message), "message", 1 << 16);
    expect(bytes).toEqual(message);
    expect(decoded.wireformat).toBe("mls_private_message");
  });

  it("rejects a field that is not a string with bad_request", () => {
    for (const v of [undefined, null, 42, ["x"], { a: 1 }])
      expect(codeOf(() => decodeMlsField(v, "message", 1 << 16))).toBe("bad_request");
  });

  it("rejects padded, standard-alphabet or otherwise malformed base64 with invalid_mls", () => {
    const std = Buffer.from(message).toString("base64");
    for (const bad of [`${toB64u(message)}=`, std.includes("+") || std.includes("/") ? std : `${std}+`, "not base64!", ""]) {
      expect(codeOf(() => decodeMlsField(bad, "message", 1 << 16))).toBe("invalid_mls");
    }
  });

  it("refuses over-long text with payload_too_large without decoding it", () => {
    expect(codeOf(() => decodeMlsField("A".repeat(2000), "message", 1000))).toBe("payload_too_large");
    expect(codeOf(() => decodeMlsField(toB64u(message), "message", message.byteLength - 1))).toBe("payload_too_large");
  });

  it("names the field in its error message", () => {
    try {
      decodeMlsField(7, "welcome", 100);
      throw new Error("unreachable");
    } catch (e) {
      expect((e as DsError).message).toMatch(/^welcome /);
    }
  });
});
