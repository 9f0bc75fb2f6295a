/**
 * Bare MLS structures ↔ the MLSMessage-wrapped form the DS API carries (RFC 9420 §6: an
 * MLSMessage is `version (uint16 mls10 = 1) ‖ wire_format (uint16) ‖ body`). Other
 * implementations (e.g. core-crypto's `KeyPackage.serialize()`, its GroupInfo and KeyPackage
 * constructors) use the bare structures. Plain bytes only: usable in browsers and Node.
 */

const MLS10 = 0x0001;
const WIRE_FORMATS = { welcome: 0x0003, groupInfo: 0x0004, keyPackage: 0x0005 } as const;
type Wrapped = keyof typeof WIRE_FORMATS;

function wrap(kind: Wrapped, bare: Uint8Array): Uint8Array {
  if (bare.byteLength === 0) throw new Error(`an empty ${kind} cannot be wrapped`);
  const out = new Uint8Array(4 + bare.byteLength);
  out.set([MLS10 >> 8, MLS10 & 0xff, WIRE_FORMATS[kind] >> 8, WIRE_FORMATS[kind] & 0xff]);
  out.set(bare, 4);
  return out;
}

function unwrap(kind: Wrapped, message: Uint8Array): Uint8Array {
  const version = ((message[0] ?? 0) << 8) | (message[1] ?? 0);
  const wireFormat = ((message[2] ?? 0) << 8) | (message[3] ?? 0);
  if (message.byteLength <= 4 || version !== MLS10 || wireFormat !== WIRE_FORMATS[kind]) {
    throw new Error(`not an MLSMessage carrying a ${kind} (version ${version}, wire format ${wireFormat})`);
  }
  return message.subarray(4);
}

export const wrapKeyPackage = (bare: Uint8Array) => wrap("keyPackage", bare);
export const unwrapKeyPackage = (message: Uint8Array) => unwrap("keyPackage", message);
export const wrapGroupInfo = (bare: Uint8Array) => wrap("groupInfo", bare);
export const unwrapGroupInfo = (message: Uint8Array) => unwrap("groupInfo", message);
export const wrapWelcome = (bare: Uint8Array) => wrap("welcome", bare);
export const unwrapWelcome = (message: Uint8Array) => unwrap("welcome", message);
