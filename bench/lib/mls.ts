import { randomBytes } from "node:crypto";
import {
  createApplicationMessage,
  createCommit,
  createGroup,
  defaultCapabilities,
  emptyPskIndex,
  encodeMlsMessage,
  generateKeyPackage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  joinGroup,
  type CiphersuiteImpl,
} from "ts-mls";
import type { ClientState } from "ts-mls/clientState.js";
import { MlsClient } from "../../src/client/mls-client.js";
import { nodeCryptoProvider } from "../../src/mls/node-crypto.js";

export const SUITE_1 = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519" as const;
const enc = new TextEncoder();

let nodeCs: Promise<CiphersuiteImpl> | undefined;
/** Bench-side MLS work (making message pools, KeyPackages) runs on node:crypto to keep set-up short. */
export function benchCs(): Promise<CiphersuiteImpl> {
  nodeCs ??= nodeCryptoProvider.getCiphersuiteImpl(getCiphersuiteFromName(SUITE_1));
  return nodeCs;
}

export async function devToken(baseUrl: string, client: string): Promise<string> {
  const res = await fetch(`${baseUrl}/v1/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ client }),
  });
  if (!res.ok) throw new Error(`dev token for ${client}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { token: string }).token;
}

export interface Member {
  client: string;
  token: string;
  mls: MlsClient;
}

export async function connect(baseUrl: string, client: string): Promise<Member> {
  const token = await devToken(baseUrl, client);
  return { client, token, mls: await MlsClient.connect(baseUrl, client, { token }) };
}

/**
 * A real local group through the DS API: the creator creates it, claims every other member's
 * KeyPackage, adds them all in one commit (Welcome through the DS), and each joins from its inbox.
 */
export async function realGroup(baseUrl: string, clients: string[]): Promise<{ groupId: string; members: Member[] }> {
  const members = await Promise.all(clients.map((c) => connect(baseUrl, c)));
  await Promise.all(members.slice(1).map((m) => m.mls.publishKeyPackages(1)));
  const creator = members[0]!;
  const groupId = await creator.mls.createGroup();
  const users = members.slice(1).map((m) => m.client.slice(0, m.client.indexOf("/")));
  if (users.length > 0) await creator.mls.addUsers(groupId, users);
  for (const m of members.slice(1)) {
    const events = await m.mls.sync({ waitMs: 5000 });
    if (!events.some((e) => e.kind === "joined" && e.groupId === groupId))
      throw new Error(`${m.client} did not join: ${JSON.stringify(events)}`);
  }
  return { groupId, members };
}

/**
 * A real two-member MLS group made without the DS (creator adds `second` by a local commit and
 * `second` joins from the Welcome): the group record with any member list is then written through
 * the store, and the creator's state (epoch 1) produces real PrivateMessages for it.
 */
export async function localPair(
  creator: string,
  second: string,
): Promise<{ groupId: Uint8Array; state: ClientState; epoch: number }> {
  const cs = await benchCs();
  const kp = async (id: string) =>
    generateKeyPackage(
      { credentialType: "basic", identity: enc.encode(id) },
      defaultCapabilities(),
      { notBefore: BigInt(Math.floor(Date.now() / 1000) - 60), notAfter: BigInt(Math.floor(Date.now() / 1000) + 86400) },
      [],
      cs,
    );
  const [a, b] = await Promise.all([kp(creator), kp(second)]);
  const groupId = randomBytes(16);
  const state0 = await createGroup(groupId, a.publicPackage, a.privatePackage, [], cs);
  const add = await createCommit(
    { state: state0, cipherSuite: cs },
    { extraProposals: [{ proposalType: "add", add: { keyPackage: b.publicPackage } }], ratchetTreeExtension: true },
  );
  await joinGroup(add.welcome!, b.publicPackage, b.privatePackage, emptyPskIndex, cs);
  return { groupId, state: add.newState, epoch: Number(add.newState.groupContext.epoch) };
}

/**
 * `count` real application messages (PrivateMessages, base64url MLSMessage) from one member's
 * state, each distinct (the sender ratchet advances); returns them and the advanced state.
 */
export async function messagePool(
  state: ClientState,
  count: number,
  text = "benchmark message",
): Promise<{ messages: string[]; state: ClientState }> {
  const cs = await benchCs();
  const messages: string[] = [];
  let s = state;
  for (let i = 0; i < count; i++) {
    const { newState, privateMessage } = await createApplicationMessage(s, enc.encode(`${text} ${i}`), cs);
    s = newState;
    messages.push(
      Buffer.from(encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage })).toString(
        "base64url",
      ),
    );
  }
  return { messages, state: s };
}

/**
 * `count` real KeyPackages (base64url MLSMessage) whose credential is `client`, all under one
 * identity (signature) key as a device's would be; each has its own init and encryption keys.
 */
export async function keyPackagePool(client: string, count: number): Promise<string[]> {
  const cs = await benchCs();
  const now = Math.floor(Date.now() / 1000);
  const identity = await cs.signature.keygen();
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const { publicPackage } = await generateKeyPackageWithKey(
      { credentialType: "basic", identity: enc.encode(client) },
      defaultCapabilities(),
      { notBefore: BigInt(now - 60), notAfter: BigInt(now + 7 * 86400) },
      [],
      identity,
      cs,
    );
    out.push(
      Buffer.from(encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: publicPackage })).toString(
        "base64url",
      ),
    );
  }
  return out;
}
