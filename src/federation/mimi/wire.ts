import { DsError } from "../../errors.js";
import { bytesEqual } from "../../encoding.js";
import { encodeVarBytes, readVarLength, type MlsPartCodec } from "../../mls/mimi-parts.js";

/**
 * TLS presentation language (RFC 8446 §3) with MLS variable-length vectors (RFC 9420 §2.1.2):
 * the reader refuses truncation, trailing bytes, oversized vectors and unknown enum values; the
 * structure decoders re-encode what they read and compare, so only canonical encodings pass.
 */
export class MimiCodecError extends DsError {
  constructor(message: string) {
    super("bad_request", `MIMI body: ${message}`, { reason: "mimi_codec" });
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

export class Reader {
  private offset = 0;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly what = "body",
  ) {}

  get done(): boolean {
    return this.offset === this.bytes.byteLength;
  }

  private need(n: number, field: string): void {
    if (this.offset + n > this.bytes.byteLength) throw new MimiCodecError(`${this.what} is truncated in ${field}`);
  }

  u8(field: string): number {
    this.need(1, field);
    return this.bytes[this.offset++]!;
  }

  u16(field: string): number {
    this.need(2, field);
    const v = (this.bytes[this.offset]! << 8) | this.bytes[this.offset + 1]!;
    this.offset += 2;
    return v;
  }

  u64(field: string): bigint {
    this.need(8, field);
    const v = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.offset, 8).getBigUint64(0);
    this.offset += 8;
    return v;
  }

  fixed(n: number, field: string): Uint8Array {
    this.need(n, field);
    const v = this.bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }

  /** `opaque field<V>` with a cap on its length. */
  opaque(field: string, max: number): Uint8Array {
    this.need(1, field);
    let header: { length: number; headerSize: number };
    try {
      header = readVarLength(this.bytes, this.offset);
    } catch {
      throw new MimiCodecError(`${field} has an invalid length prefix`);
    }
    if (header.length > max) throw new MimiCodecError(`${field} is ${header.length} bytes, at most ${max} allowed`);
    this.offset += header.headerSize;
    return this.fixed(header.length, field);
  }

  text(field: string, max: number): string {
    const raw = this.opaque(field, max);
    try {
      return utf8.decode(raw);
    } catch {
      throw new MimiCodecError(`${field} is not UTF-8`);
    }
  }

  /** `T field<V>`: a length-prefixed run of items, each read whole from the run. */
  vector<T>(field: string, maxBytes: number, maxItems: number, item: (r: Reader) => T): T[] {
    const run = new Reader(this.opaque(field, maxBytes), field);
    const out: T[] = [];
    while (!run.done) {
      if (out.length === maxItems) throw new MimiCodecError(`${field} has more than ${maxItems} items`);
      out.push(item(run));
    }
    return out;
  }

  optional<T>(field: string, read: (r: Reader) => T): T | undefined {
    const present = this.u8(`${field} presence`);
    if (present === 0) return undefined;
    if (present !== 1) throw new MimiCodecError(`${field} presence octet is ${present}, not 0 or 1`);
    return read(this);
  }

  enumOf<T extends string>(field: string, values: Readonly<Record<number, T>>, width: 1 | 2 = 1): T {
    const n = width === 1 ? this.u8(field) : this.u16(field);
    const v = values[n];
    if (v === undefined) throw new MimiCodecError(`${field} has unknown value ${n}`);
    return v;
  }

  /** An embedded MLS structure decoded by ts-mls; returns the value and its exact bytes (checked canonical). */
  mls<T>(field: string, codec: MlsPartCodec<T>, maxBytes: number): { value: T; bytes: Uint8Array } {
    const start = this.offset;
    let decoded: [T, number] | undefined;
    try {
      decoded = codec.decode(this.bytes.subarray(0, Math.min(this.bytes.byteLength, start + maxBytes)), start);
    } catch (e) {
      throw new MimiCodecError(`${field} does not decode: ${(e as Error).message}`);
    }
    if (!decoded) throw new MimiCodecError(`${field} does not decode (truncated, too large or malformed)`);
    const [value, consumed] = decoded;
    const bytes = this.bytes.subarray(start, start + consumed);
    let again: Uint8Array;
    try {
      again = codec.encode(value);
    } catch (e) {
      throw new MimiCodecError(`${field} does not re-encode: ${(e as Error).message}`);
    }
    if (!bytesEqual(again, bytes)) throw new MimiCodecError(`${field} is not canonically encoded`);
    this.offset += consumed;
    return { value, bytes };
  }

  end(): void {
    if (!this.done) throw new MimiCodecError(`${this.what} has ${this.bytes.byteLength - this.offset} trailing bytes`);
  }
}

export class Writer {
  private parts: Uint8Array[] = [];

  u8(v: number): this {
    this.parts.push(Uint8Array.of(v));
    return this;
  }

  u16(v: number): this {
    this.parts.push(Uint8Array.of(v >> 8, v & 0xff));
    return this;
  }

  u64(v: bigint): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v);
    this.parts.push(b);
    return this;
  }

  raw(bytes: Uint8Array): this {
    this.parts.push(bytes);
    return this;
  }

  opaque(bytes: Uint8Array): this {
    this.parts.push(encodeVarBytes(bytes));
    return this;
  }

  text(s: string): this {
    return this.opaque(new TextEncoder().encode(s));
  }

  vector<T>(items: readonly T[], write: (w: Writer, item: T) => void): this {
    const inner = new Writer();
    for (const item of items) write(inner, item);
    return this.opaque(inner.bytes());
  }

  optional<T>(value: T | undefined, write: (w: Writer, v: T) => void): this {
    if (value === undefined) return this.u8(0);
    this.u8(1);
    write(this, value);
    return this;
  }

  bytes(): Uint8Array {
    return Buffer.concat(this.parts);
  }
}

/** Value → code table inverse, for encoding enums. */
export function codeOf<T extends string>(values: Readonly<Record<number, T>>, name: T): number {
  for (const [k, v] of Object.entries(values)) if (v === name) return Number(k);
  throw new Error(`no code for ${name}`);
}

/** Decodes a whole body with `read`, refusing trailing bytes, then checks the encoding is canonical. */
export function decodeStrict<T>(bytes: Uint8Array, what: string, read: (r: Reader) => T, write: (v: T) => Uint8Array): T {
  const r = new Reader(bytes, what);
  const value = read(r);
  r.end();
  if (!bytesEqual(write(value), bytes)) throw new MimiCodecError(`${what} is not canonically encoded`);
  return value;
}
