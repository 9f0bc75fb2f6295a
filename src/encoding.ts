import { createHash } from "node:crypto";

/** base64url without padding, the wire encoding of every MLS structure. */
export function toB64u(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64url");
}

const B64U = /^[A-Za-z0-9_-]*$/;

/** Strict base64url decode: rejects padding, foreign characters and non-canonical trailing bits. */
export function fromB64u(text: string): Uint8Array | undefined {
  if (!B64U.test(text) || text.length % 4 === 1) return undefined;
  const buf = Buffer.from(text, "base64url");
  if (buf.toString("base64url") !== text) return undefined;
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export function sha256B64u(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("base64url");
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}
