/**
 * Credential identity schemes: how the BasicCredential identity inside an MLS KeyPackage or leaf
 * maps to the DS's client id `user@domain/device`. Each scheme is a pure two-way mapping (a
 * bijection between its identities and the client ids it can express), so the DS can read any
 * accepted form and always speak client ids on its API.
 *
 * - `fedgate`: identity = the client id itself, UTF-8 (`alice@a.example/phone`).
 * - `wire`: Wire's qualified client id `<user-uuid>:<device-hex>@<domain>` (what core-crypto's
 *   Basic credentials always carry) ↔ client id `<user-uuid>@<domain>/<device-hex>`. The device is
 *   the lower-case hex of a 64-bit number without leading zeros, as core-crypto prints it.
 *
 * No Node APIs here: the SDK (browser and Node) uses the same module.
 */

import { isClientId } from "../wire/ids.js";

export const IDENTITY_SCHEMES = ["fedgate", "wire"] as const;
export type IdentityScheme = (typeof IDENTITY_SCHEMES)[number];

const DOMAIN = "[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?";
const UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
const DEVICE_HEX = "0|[1-9a-f][0-9a-f]{0,15}";
const WIRE_IDENTITY = new RegExp(`^(${UUID}):(${DEVICE_HEX})@(${DOMAIN})$`);
const WIRE_CLIENT = new RegExp(`^(${UUID})@(${DOMAIN})/(${DEVICE_HEX})$`);

export function isIdentityScheme(name: string): name is IdentityScheme {
  return (IDENTITY_SCHEMES as readonly string[]).includes(name);
}

/** The credential identity (text) of `client` under `scheme`, or undefined when the scheme cannot express it. */
export function identityFor(client: string, scheme: IdentityScheme): string | undefined {
  if (scheme === "fedgate") return isClientId(client) ? client : undefined;
  const m = WIRE_CLIENT.exec(client);
  return m ? `${m[1]}:${m[3]}@${m[2]}` : undefined;
}

/** The client id a credential identity (text) names under `scheme`, or undefined when it is not of that form. */
export function clientForIdentity(identity: string, scheme: IdentityScheme): string | undefined {
  if (scheme === "fedgate") return isClientId(identity) ? identity : undefined;
  const m = WIRE_IDENTITY.exec(identity);
  return m ? `${m[1]}@${m[3]}/${m[2]}` : undefined;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const utf8 = new TextEncoder();

/** Credential identity bytes → text; undefined for bytes that are not valid UTF-8. */
export function identityText(identity: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(identity);
  } catch {
    return undefined;
  }
}

/**
 * The client id a credential identity names under the first of `schemes` that reads it, or
 * undefined when none does. The schemes' identity forms are disjoint (a `fedgate` identity has a
 * `/`, a `wire` one cannot), so the order never changes the answer.
 */
export function clientOfIdentity(
  identity: Uint8Array | string,
  schemes: readonly IdentityScheme[],
): { client: string; scheme: IdentityScheme } | undefined {
  const text = typeof identity === "string" ? identity : identityText(identity);
  if (text === undefined) return undefined;
  for (const scheme of schemes) {
    const client = clientForIdentity(text, scheme);
    if (client !== undefined) return { client, scheme };
  }
  return undefined;
}

/** Credential identity bytes for `client` under `scheme` (what a client puts in its BasicCredential). */
export function identityBytes(client: string, scheme: IdentityScheme): Uint8Array {
  const identity = identityFor(client, scheme);
  if (identity === undefined) throw new Error(`${client} cannot be expressed as a ${scheme} credential identity`);
  return utf8.encode(identity);
}

/** Every credential identity `client` may use under `schemes` (e.g. for a device list). */
export function identitiesFor(client: string, schemes: readonly IdentityScheme[]): Partial<Record<IdentityScheme, string>> {
  const out: Partial<Record<IdentityScheme, string>> = {};
  for (const scheme of schemes) {
    const identity = identityFor(client, scheme);
    if (identity !== undefined) out[scheme] = identity;
  }
  return out;
}
