import { DsError } from "../../errors.js";
import { mimiSignatureKeyPair, mlsParts, type Credential } from "../../mls/mimi-parts.js";
import type { SuiteId } from "../../mls/suites.js";
import { IDENTITY_SCHEMES, clientOfIdentity } from "../../mls/identity.js";
import type { Mls } from "./codec.js";

/**
 * MIMI bodies carry bare Welcome, GroupInfo and KeyPackage structures; our domain stores them as
 * MLSMessages. The MLSMessage header is version mls10 (1) and the wire format (RFC 9420 §6).
 */
const WIRE = { welcome: 3, group_info: 4, key_package: 5 } as const;

export function wrapMls(kind: keyof typeof WIRE, bare: Uint8Array): Uint8Array {
  const out = new Uint8Array(bare.byteLength + 4);
  out.set([0, 1, 0, WIRE[kind]]);
  out.set(bare, 4);
  return out;
}

export function unwrapMls(kind: keyof typeof WIRE, message: Uint8Array): Uint8Array {
  if (message.byteLength < 4 || message[0] !== 0 || message[1] !== 1 || message[2] !== 0 || message[3] !== WIRE[kind]) {
    throw new DsError("internal", `stored message is not an MLSMessage ${kind}`);
  }
  return message.subarray(4);
}

export const b64u = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64url");
export const fromB64 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, "base64url"));

export function basicCredential(identity: string): Mls<Credential> {
  const value: Credential = { credentialType: "basic", identity: new TextEncoder().encode(identity) };
  return { value, bytes: mlsParts.credential.encode(value) };
}

export function basicIdentity(cred: Credential): string | undefined {
  if (cred.credentialType !== "basic") return undefined;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(cred.identity);
  } catch {
    return undefined;
  }
}

/** The client a basic credential names, under every identity scheme the DS reads (src/mls/identity.ts). */
export function clientOfCredential(cred: Credential): string | undefined {
  return cred.credentialType === "basic" ? clientOfIdentity(cred.identity, IDENTITY_SCHEMES)?.client : undefined;
}

/**
 * Signature keys this DS uses in MIMI bodies: as the hub's `hub_sender` in GroupInfo responses and
 * as the requester key of the KeyMaterial and GroupInfo requests it makes for its clients (the
 * draft leaves open how these keys are authenticated; see docs/MIMI.md). One key per suite and process.
 */
export class MimiKeys {
  private keys = new Map<SuiteId, Promise<{ publicKey: Uint8Array; signKey: Uint8Array }>>();

  keyFor(suite: SuiteId): Promise<{ publicKey: Uint8Array; signKey: Uint8Array }> {
    let k = this.keys.get(suite);
    if (!k) {
      k = mimiSignatureKeyPair(suite);
      k.catch(() => this.keys.delete(suite));
      this.keys.set(suite, k);
    }
    return k;
  }
}
