import { SframeError, checkU64 } from "./sframe-error.js";

/**
 * RFC 9605 §4.3 header: a config byte X|K(3)|Y|C(3), then the KID and CTR in the minimum number
 * of big-endian bytes when they do not fit the 3 bits. Decoding is strict: a truncated header or
 * a non-minimal encoding (an extended field for a value < 8, a leading zero byte) is refused, so
 * every (KID, CTR) has exactly one encoding and the header bound into the AAD is canonical.
 */
export interface SframeHeader {
  kid: bigint;
  ctr: bigint;
  /** The encoded header bytes (a view into the input when decoded). */
  bytes: Uint8Array;
}

function byteLength(value: bigint): number {
  let n = 0;
  for (let v = value; v > 0n; v >>= 8n) n++;
  return n;
}

function writeBigEndian(out: Uint8Array, offset: number, value: bigint, length: number): void {
  for (let i = length - 1, v = value; i >= 0; i--, v >>= 8n) out[offset + i] = Number(v & 0xffn);
}

export function encodeSframeHeader(kid: bigint, ctr: bigint): Uint8Array {
  checkU64("KID", kid);
  checkU64("CTR", ctr);
  const kidLen = kid < 8n ? 0 : byteLength(kid);
  const ctrLen = ctr < 8n ? 0 : byteLength(ctr);
  const out = new Uint8Array(1 + kidLen + ctrLen);
  const k = kidLen === 0 ? Number(kid) : 0x08 | (kidLen - 1);
  const c = ctrLen === 0 ? Number(ctr) : 0x08 | (ctrLen - 1);
  out[0] = (k << 4) | c;
  writeBigEndian(out, 1, kid, kidLen);
  writeBigEndian(out, 1 + kidLen, ctr, ctrLen);
  return out;
}

function readField(bits: number, input: Uint8Array, offset: number, name: string): [bigint, number] {
  if ((bits & 0x08) === 0) return [BigInt(bits & 0x07), 0];
  const length = (bits & 0x07) + 1;
  if (offset + length > input.length) throw new SframeError("bad_header", `truncated ${name}`);
  let value = 0n;
  for (let i = 0; i < length; i++) value = (value << 8n) | BigInt(input[offset + i]!);
  if (input[offset] === 0 || value < 8n) throw new SframeError("bad_header", `${name} is not minimally encoded`);
  return [value, length];
}

/** Parses the header at the start of `input` (an SFrame ciphertext or a bare header). */
export function decodeSframeHeader(input: Uint8Array): SframeHeader {
  if (input.length < 1) throw new SframeError("bad_header", "empty input");
  const config = input[0]!;
  const [kid, kidLen] = readField(config >> 4, input, 1, "KID");
  const [ctr, ctrLen] = readField(config & 0x0f, input, 1 + kidLen, "CTR");
  return { kid, ctr, bytes: input.subarray(0, 1 + kidLen + ctrLen) };
}
