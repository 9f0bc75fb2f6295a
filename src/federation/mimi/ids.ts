import { DsError } from "../../errors.js";

/**
 * Our ids ↔ MIMI identifier URIs (draft -06 §3 gives a notional syntax; our choice, docs/MIMI.md):
 *   user   bob@b.example            ↔ mimi://b.example/u/bob
 *   client bob@b.example/laptop     ↔ mimi://b.example/d/bob/laptop
 *   room   <groupId> hubbed by a    ↔ mimi://a.example/r/<groupId>   (groupId = base64url MLS group id)
 *   provider a.example              ↔ mimi://a.example
 */
const DOMAIN = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;
const SEGMENT = /^[^\s/@]+$/;

const enc = encodeURIComponent;

function dec(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new DsError("bad_request", `invalid percent-encoding in ${s}`);
  }
}

function parse(uri: string): { domain: string; kind: string; rest: string[] } {
  const m = /^mimi:\/\/([^/]+)\/([urd])\/(.+)$/.exec(uri);
  if (!m || !DOMAIN.test(m[1]!)) throw new DsError("bad_request", `${JSON.stringify(uri)} is not a MIMI identifier URI`);
  return { domain: m[1]!, kind: m[2]!, rest: m[3]!.split("/").map(dec) };
}

export function userUri(user: string): string {
  const at = user.lastIndexOf("@");
  return `mimi://${user.slice(at + 1)}/u/${enc(user.slice(0, at))}`;
}

export function clientUri(client: string): string {
  const slash = client.indexOf("/");
  const user = client.slice(0, slash);
  const at = user.lastIndexOf("@");
  return `mimi://${user.slice(at + 1)}/d/${enc(user.slice(0, at))}/${enc(client.slice(slash + 1))}`;
}

export function roomUri(hub: string, groupId: string): string {
  return `mimi://${hub}/r/${groupId}`;
}

export function providerUri(domain: string): string {
  return `mimi://${domain}`;
}

export function userOfUri(uri: string): string {
  const p = parse(uri);
  if (p.kind !== "u" || p.rest.length !== 1 || !SEGMENT.test(p.rest[0]!))
    throw new DsError("bad_request", `${uri} is not a user URI`);
  return `${p.rest[0]}@${p.domain}`;
}

export function clientOfUri(uri: string): string {
  const p = parse(uri);
  if (p.kind !== "d" || p.rest.length !== 2 || !p.rest.every((s) => SEGMENT.test(s)))
    throw new DsError("bad_request", `${uri} is not a client URI`);
  return `${p.rest[0]}@${p.domain}/${p.rest[1]}`;
}

/** A sender URI: a client URI, or a user URI (then `user@domain` without a device). */
export function senderOfUri(uri: string): { client?: string; user: string } {
  const p = parse(uri);
  if (p.kind === "d") {
    const client = clientOfUri(uri);
    return { client, user: client.slice(0, client.indexOf("/")) };
  }
  return { user: userOfUri(uri) };
}

export function roomOfUri(uri: string): { hub: string; groupId: string } {
  const p = parse(uri);
  if (p.kind !== "r" || p.rest.length !== 1 || !/^[A-Za-z0-9_-]{1,340}$/.test(p.rest[0]!))
    throw new DsError("bad_request", `${uri} is not a room URI of this binding (mimi://<hub>/r/<base64url group id>)`);
  return { hub: p.domain, groupId: p.rest[0]! };
}
