import { decodeMlsMessage, encodeMlsMessage } from "ts-mls";
import type { MLSMessage } from "ts-mls/message.js";
import { DsError } from "../errors.js";
import { bytesEqual, fromB64u } from "../encoding.js";

/**
 * Strict MLSMessage decoding: size capped before decoding, the whole input consumed, and the
 * encoding canonical (re-encode and compare) so that refs and hashes computed over the bytes
 * agree with those computed over the struct.
 */
export function decodeMlsStrict(bytes: Uint8Array, maxBytes: number): MLSMessage {
  if (bytes.byteLength > maxBytes) {
    throw new DsError("payload_too_large", `MLS message of ${bytes.byteLength} bytes exceeds ${maxBytes}`);
  }
  if (bytes.byteLength === 0) throw new DsError("invalid_mls", "empty MLS message");
  let decoded: [MLSMessage, number] | undefined;
  try {
    decoded = decodeMlsMessage(bytes, 0);
  } catch (e) {
    throw new DsError("invalid_mls", `MLS message does not decode: ${(e as Error).message}`);
  }
  if (!decoded) throw new DsError("invalid_mls", "MLS message does not decode");
  const [message, consumed] = decoded;
  if (consumed !== bytes.byteLength) {
    throw new DsError("invalid_mls", `MLS message has ${bytes.byteLength - consumed} trailing bytes`);
  }
  if (message.version !== "mls10") throw new DsError("invalid_mls", "protocol version must be mls10");
  let reencoded: Uint8Array;
  try {
    reencoded = encodeMlsMessage(message);
  } catch (e) {
    throw new DsError("invalid_mls", `MLS message does not re-encode: ${(e as Error).message}`);
  }
  if (!bytesEqual(reencoded, bytes)) throw new DsError("invalid_mls", "MLS message is not canonically encoded");
  return message;
}

/** base64url text → strictly decoded MLSMessage, naming the JSON field on error. */
export function decodeMlsField(text: unknown, field: string, maxBytes: number): { bytes: Uint8Array; message: MLSMessage } {
  if (typeof text !== "string") throw new DsError("bad_request", `${field} must be a base64url string`);
  // base64 expands by 4/3: refuse before allocating.
  if (text.length > Math.ceil((maxBytes * 4) / 3) + 4) {
    throw new DsError("payload_too_large", `${field} exceeds ${maxBytes} bytes`);
  }
  const bytes = fromB64u(text);
  if (!bytes) throw new DsError("invalid_mls", `${field} is not base64url without padding`);
  return { bytes, message: decodeMlsStrict(bytes, maxBytes) };
}

export function encodeMls(message: MLSMessage): Uint8Array {
  return encodeMlsMessage(message);
}
