import {
  acceptAll,
  createApplicationMessage,
  createCommit,
  createGroup,
  createGroupInfoWithExternalPubAndRatchetTree,
  decodeMlsMessage,
  defaultCapabilities,
  emptyPskIndex,
  encodeMlsMessage,
  generateKeyPackage,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  joinGroup,
  joinGroupExternal,
  mlsExporter,
  processMessage,
  ciphersuites,
} from "ts-mls";
import type { ClientState } from "ts-mls/clientState.js";
import type { CiphersuiteImpl, CiphersuiteName } from "ts-mls/crypto/ciphersuite.js";
import type { KeyPackage, PrivateKeyPackage } from "ts-mls/keyPackage.js";
import { makeKeyPackageRef } from "ts-mls/keyPackage.js";
import type { MLSMessage } from "ts-mls/message.js";
import type { Proposal } from "ts-mls/proposal.js";
import type { ProposalWithSender } from "ts-mls/unappliedProposals.js";
import { FedgateApi, FedgateError, type ClaimAnswer, type InboxEntry } from "./api.js";
import { InboxReader, type MlsEvent } from "./inbox-reader.js";
import { IDENTITY_SCHEMES, clientOfIdentity, identityBytes, type IdentityScheme } from "../mls/identity.js";
import { fromB64u, toB64u } from "./b64.js";
import type { EpochSnapshot, GroupEpochEvent } from "./call-keys.js";

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
const LAST_RESORT = 0x000a;
const MAX_COMMIT_ATTEMPTS = 8;

export type { MlsEvent };

interface GroupSlot {
  state: ClientState;
  /** Highest seq processed; earlier entries are history. */
  lastSeq: number;
  /** A send group this client created: it is the designated sender. */
  designatedSender?: boolean;
}

export interface MlsClientOptions {
  cipherSuite?: number;
  token?: string;
  /**
   * The credential identity form of this client's KeyPackages and leaves (src/mls/identity.ts):
   * `fedgate` (the client id itself, default) or `wire` (`<uuid>:<hex>@<domain>`, which
   * core-crypto members require of everyone; the client id must then be `<uuid>@<domain>/<hex>`).
   */
  identityScheme?: IdentityScheme;
  /**
   * Framing of this client's commits: `private` (PrivateMessage, default) or `public`
   * (PublicMessage: the DS can cross-check Add/Remove proposals, and implementations that refuse
   * PrivateMessage commits — core-crypto — can process them).
   */
  commitFormat?: "public" | "private";
}

function suiteNameOf(id: number): CiphersuiteName {
  const name = Object.entries(ciphersuites).find(([, v]) => v === id)?.[0];
  if (!name) throw new Error(`unknown cipher suite ${id}`);
  return name as CiphersuiteName;
}

function wire(message: MLSMessage): string {
  return toB64u(encodeMlsMessage(message));
}

/**
 * A real MLS client (ts-mls) driving an mls-fedgate DS: the common flows of server fan-out —
 * publish KeyPackages, claim, create, add users, commit with a bundle, send, receive, join from
 * Welcome or externally, and recover from `stale_epoch` by catching up and committing again.
 */
export class MlsClient {
  private keyPackages = new Map<string, { publicPackage: KeyPackage; privatePackage: PrivateKeyPackage; lastResort: boolean }>();
  private groups = new Map<string, GroupSlot>();
  private epochListeners = new Set<(event: GroupEpochEvent) => void>();
  private readonly inbox: InboxReader;

  private constructor(
    readonly api: FedgateApi,
    readonly cipherSuite: number,
    readonly cs: CiphersuiteImpl,
    readonly identityScheme: IdentityScheme,
    readonly commitFormat: "public" | "private",
  ) {
    this.inbox = new InboxReader(api, (entry) => this.handle(entry));
  }

  get id(): string {
    return this.api.client;
  }

  get user(): string {
    return this.id.slice(0, this.id.indexOf("/"));
  }

  static async connect(baseUrl: string, client: string, opts: MlsClientOptions = {}): Promise<MlsClient> {
    const identityScheme = opts.identityScheme ?? "fedgate";
    identityBytes(client, identityScheme); // throws early for a client id the scheme cannot express
    const api = new FedgateApi(baseUrl, client, opts.token);
    if (!opts.token) await api.login();
    const suite = opts.cipherSuite ?? 1;
    const cs = await getCiphersuiteImpl(getCiphersuiteFromName(suiteNameOf(suite)));
    return new MlsClient(api, suite, cs, identityScheme, opts.commitFormat ?? "private");
  }

  /** Generates and uploads `count` KeyPackages (and a last-resort one if asked). */
  async publishKeyPackages(count: number, opts: { lastResort?: boolean; lifetimeSeconds?: number; virtual?: boolean } = {}) {
    // Single-client mode: KeyPackages of the user's virtual client, shared by all its devices.
    const identity = opts.virtual ? utf8.encode(`${this.user}/*`) : identityBytes(this.id, this.identityScheme);
    const now = BigInt(Math.floor(Date.now() / 1000));
    const lifetime = { notBefore: now - 60n, notAfter: now + BigInt(opts.lifetimeSeconds ?? 30 * 24 * 3600) };
    const make = async (lastResort: boolean) => {
      const credential = { credentialType: "basic" as const, identity };
      const extensions = lastResort ? [{ extensionType: LAST_RESORT, extensionData: new Uint8Array() }] : [];
      const kp = await generateKeyPackage(credential, defaultCapabilities(), lifetime, extensions, this.cs);
      const ref = toB64u(await makeKeyPackageRef(kp.publicPackage, this.cs.hash));
      this.keyPackages.set(ref, { ...kp, lastResort });
      return wire({ version: "mls10", wireformat: "mls_key_package", keyPackage: kp.publicPackage });
    };
    const packages = await Promise.all(Array.from({ length: count }, () => make(false)));
    const lastResort = opts.lastResort ? await make(true) : undefined;
    return this.api.uploadKeyPackages(packages, lastResort, opts.virtual);
  }

  /** Single-client mode: hands this device's private KeyPackages to another device of the same user (out of band). */
  shareKeyPackagesWith(other: MlsClient): void {
    if (other.user !== this.user) throw new Error("KeyPackages are only shared between devices of one user");
    for (const [ref, kp] of this.keyPackages) other.keyPackages.set(ref, kp);
  }

  groupIds(): string[] {
    return [...this.groups.keys()];
  }

  state(groupId: string): ClientState {
    const slot = this.groups.get(groupId);
    if (!slot) throw new Error(`${this.id} is not in group ${groupId}`);
    return slot.state;
  }

  epoch(groupId: string): number {
    return Number(this.state(groupId).groupContext.epoch);
  }

  /** Client ids in this client's view of the tree. */
  members(groupId: string): string[] {
    return leafIdentities(this.state(groupId)).filter((m): m is string => m !== null);
  }

  async createGroup(opts: { groupId?: string; mode?: "ordered" | "send-group"; replyTo?: string } = {}): Promise<string> {
    const groupId = opts.groupId ?? toB64u(crypto.getRandomValues(new Uint8Array(16)));
    const kp = await this.freshKeyPackage();
    const state = await createGroup(fromB64u(groupId), kp.publicPackage, kp.privatePackage, [], this.cs);
    const groupInfo = wire({
      version: "mls10",
      wireformat: "mls_group_info",
      groupInfo: await createGroupInfoWithExternalPubAndRatchetTree(state, [], this.cs),
    });
    await this.api.createGroup({
      groupId,
      cipherSuite: this.cipherSuite,
      mode: opts.mode ?? "ordered",
      groupInfo,
      ...(opts.replyTo ? { replyTo: opts.replyTo } : {}),
    });
    this.groups.set(groupId, { state, lastSeq: 0, ...(opts.mode === "send-group" ? { designatedSender: true } : {}) });
    this.emitEpoch(groupId);
    return groupId;
  }

  private async freshKeyPackage() {
    const credential = { credentialType: "basic" as const, identity: identityBytes(this.id, this.identityScheme) };
    const now = BigInt(Math.floor(Date.now() / 1000));
    return generateKeyPackage(credential, defaultCapabilities(), { notBefore: now - 60n, notAfter: now + 86400n }, [], this.cs);
  }

  /** Claims every device of each user (server fan-out for remote users). */
  async claimUsers(users: string[]): Promise<ClaimAnswer[]> {
    return Promise.all(users.map((u) => this.api.claim(u, [this.cipherSuite])));
  }

  /** Adds all devices of the given users in ONE commit (retrying on stale_epoch). */
  async addUsers(groupId: string, users: string[], opts: { leaseToken?: string } = {}) {
    const claims = await this.claimUsers(users);
    const bundles = claims.flatMap((c) => c.bundles);
    await this.addKeyPackages(groupId, bundles, opts);
    return { added: bundles.map((b) => b.client), missing: claims.flatMap((c) => c.missing) };
  }

  async addKeyPackages(groupId: string, bundles: ClaimAnswer["bundles"], opts: { leaseToken?: string } = {}) {
    const proposals: Proposal[] = bundles.map((b) => {
      const m = decodeMlsMessage(fromB64u(b.keyPackage), 0)?.[0];
      if (!m || m.wireformat !== "mls_key_package") throw new Error(`claim for ${b.client} returned no KeyPackage`);
      return { proposalType: "add", add: { keyPackage: m.keyPackage } };
    });
    return this.commit(groupId, proposals, { added: bundles.map((b) => b.client), ...opts });
  }

  async removeClients(groupId: string, clients: string[], opts: { leaseToken?: string } = {}) {
    return this.commit(
      groupId,
      (state) => {
        const leaves = leafIdentities(state);
        return clients.map((c) => {
          const leaf = leaves.indexOf(c);
          if (leaf < 0) throw new Error(`${c} is not in group ${groupId}`);
          return { proposalType: "remove", remove: { removed: leaf } } as Proposal;
        });
      },
      { removed: clients, ...opts },
    );
  }

  /** An empty commit: a full-path update of this client's leaf. */
  update(groupId: string, opts: { leaseToken?: string } = {}) {
    return this.commit(groupId, [], opts);
  }

  /**
   * Builds a commit on the current state, sends it with Welcome and GroupInfo, adopts the new
   * state on 201; on `stale_epoch` catches up from the DS and rebuilds on the new epoch.
   */
  async commit(
    groupId: string,
    proposals: Proposal[] | ((state: ClientState) => Proposal[]),
    meta: { added?: string[]; removed?: string[]; leaseToken?: string } = {},
  ): Promise<{ seq: number; epoch: number; attempts: number }> {
    for (let attempt = 1; ; attempt++) {
      const slot = this.slot(groupId);
      const own = typeof proposals === "function" ? proposals(slot.state) : proposals;
      const inline = slot.designatedSender ? this.inlineReceivedProposals(slot.state, own) : undefined;
      const result = await createCommit(
        { state: inline?.state ?? slot.state, cipherSuite: this.cs },
        {
          extraProposals: [...own, ...(inline?.proposals ?? [])],
          ratchetTreeExtension: true,
          wireAsPublicMessage: this.commitFormat === "public",
        },
      );
      const added = [...(meta.added ?? []), ...(inline?.added ?? [])];
      const removed = [...(meta.removed ?? []), ...(inline?.removed ?? [])];
      const groupInfo = await createGroupInfoWithExternalPubAndRatchetTree(result.newState, [], this.cs);
      try {
        const answer = await this.api.commit(groupId, {
          commit: wire(result.commit),
          ...(result.welcome ? { welcome: wire({ version: "mls10", wireformat: "mls_welcome", welcome: result.welcome }) } : {}),
          groupInfo: wire({ version: "mls10", wireformat: "mls_group_info", groupInfo }),
          ...(added.length ? { added } : {}),
          ...(removed.length ? { removed } : {}),
          ...(meta.leaseToken ? { leaseToken: meta.leaseToken } : {}),
        });
        slot.state = result.newState;
        slot.lastSeq = Math.max(slot.lastSeq, answer.seq);
        this.emitEpoch(groupId);
        return { ...answer, attempts: attempt };
      } catch (e) {
        if (!(e instanceof FedgateError) || e.code !== "stale_epoch" || attempt >= MAX_COMMIT_ATTEMPTS) throw e;
        await this.catchUp(groupId);
      }
    }
  }

  /**
   * Send groups: members' proposals reach the designated sender only, so a commit that referenced
   * them (ts-mls's default for received proposals) could not be processed by the other members,
   * who never saw them. The sender commits them inline (by value) instead, as its own proposals,
   * and drops them from the pending set. Proposals that cannot be committed by value (Update,
   * a Remove of the sender itself, a duplicate of one of its own) are dropped: their sender may propose again.
   */
  private inlineReceivedProposals(
    state: ClientState,
    own: Proposal[],
  ): { state: ClientState; proposals: Proposal[]; added: string[]; removed: string[] } {
    const leaves = leafIdentities(state);
    const me = state.privatePath.leafIndex;
    const removing = new Set(own.flatMap((p) => (p.proposalType === "remove" ? [p.remove.removed] : [])));
    const out = {
      state: { ...state, unappliedProposals: {} },
      proposals: [] as Proposal[],
      added: [] as string[],
      removed: [] as string[],
    };
    for (const { proposal } of Object.values(state.unappliedProposals) as ProposalWithSender[]) {
      if (proposal.proposalType === "remove") {
        const leaf = proposal.remove.removed;
        if (leaf === me || removing.has(leaf) || !leaves[leaf]) continue;
        removing.add(leaf);
        out.proposals.push(proposal);
        out.removed.push(leaves[leaf]!);
      } else if (proposal.proposalType === "add") {
        const client = credentialClient(proposal.add.keyPackage.leafNode.credential);
        if (!client) continue;
        out.proposals.push(proposal);
        out.added.push(client);
      } else if (proposal.proposalType !== "update") {
        out.proposals.push(proposal);
      }
    }
    return out;
  }

  async send(groupId: string, text: string): Promise<{ seq: number }> {
    const slot = this.slot(groupId);
    const { newState, privateMessage } = await createApplicationMessage(slot.state, utf8.encode(text), this.cs);
    slot.state = newState;
    return this.api.send(groupId, wire({ version: "mls10", wireformat: "mls_private_message", privateMessage }));
  }

  /** Joins a group through an external commit from the DS's stored GroupInfo (a new device of a member's user). */
  async joinExternal(groupId: string): Promise<{ seq: number; epoch: number }> {
    const { groupInfo } = await this.api.groupInfo(groupId);
    const gi = decodeMlsMessage(fromB64u(groupInfo), 0)?.[0];
    if (!gi || gi.wireformat !== "mls_group_info") throw new Error("DS returned no GroupInfo");
    const kp = await this.freshKeyPackage();
    const { publicMessage, newState } = await joinGroupExternal(
      gi.groupInfo,
      kp.publicPackage,
      kp.privatePackage,
      false,
      this.cs,
    );
    const newInfo = await createGroupInfoWithExternalPubAndRatchetTree(newState, [], this.cs);
    const answer = await this.api.commit(groupId, {
      commit: wire({ version: "mls10", wireformat: "mls_public_message", publicMessage }),
      groupInfo: wire({ version: "mls10", wireformat: "mls_group_info", groupInfo: newInfo }),
    });
    this.groups.set(groupId, { state: newState, lastSeq: answer.seq });
    this.emitEpoch(groupId);
    return answer;
  }

  /** RFC 9420 exporter on the current epoch (e.g. the reply-all seed of a send group). */
  exportSecret(groupId: string, label: string, context: Uint8Array, length = 32): Promise<Uint8Array> {
    return mlsExporter(this.state(groupId).keySchedule.exporterSecret, label, context, length, this.cs);
  }

  /** The current epoch of a group as an SFrame call needs it (RFC 9605 §5.2); used by CallKeys. */
  epochSnapshot(groupId: string): EpochSnapshot {
    const state = this.state(groupId);
    return {
      groupId,
      epoch: state.groupContext.epoch,
      ownLeaf: state.privatePath.leafIndex,
      members: leafIdentities(state),
      exportSecret: (label, context, length) => mlsExporter(state.keySchedule.exporterSecret, label, context, length, this.cs),
    };
  }

  /** Called after every epoch change of any group (create, join, own or processed commit) and on removal. */
  onEpochChange(listener: (event: GroupEpochEvent) => void): () => void {
    this.epochListeners.add(listener);
    return () => this.epochListeners.delete(listener);
  }

  private emitEpoch(groupId: string): void {
    if (this.epochListeners.size > 0) this.emit({ kind: "epoch", snapshot: this.epochSnapshot(groupId) });
  }

  private emit(event: GroupEpochEvent): void {
    for (const listener of this.epochListeners) {
      try {
        listener(event);
      } catch {
        // A listener's failure must not break message processing.
      }
    }
  }

  /**
   * Multi-MLS reply-all (seed 000): this member's own send group with the participants of send
   * group `parentId`. Its id is derived from a secret exported from the parent's current epoch,
   * so every participant can check the reply group really comes from a member of the parent.
   */
  async createReplyGroup(parentId: string): Promise<string> {
    const groupId = await this.replyGroupId(parentId, this.id);
    const users = [...new Set(this.members(parentId).map((m) => m.slice(0, m.indexOf("/"))))].filter((u) => u !== this.user);
    await this.createGroup({ groupId, mode: "send-group", replyTo: parentId });
    await this.addUsers(groupId, users);
    return groupId;
  }

  /** The reply group id a member `creator` of `parentId` must use at the parent's current epoch. */
  async replyGroupId(parentId: string, creator: string): Promise<string> {
    const context = utf8.encode(`${creator}|${this.epoch(parentId)}`);
    return toB64u(await this.exportSecret(parentId, "mls-fedgate reply-all", context, 16));
  }

  /** Reads the inbox (long-poll up to waitMs), processes every entry in order, acknowledges, returns events. */
  sync(opts: { waitMs?: number } = {}): Promise<MlsEvent[]> {
    return this.inbox.sync(opts);
  }

  /** Syncs until `want` holds for the events collected so far (see InboxReader.syncUntil). */
  syncUntil(want: (events: MlsEvent[]) => boolean, timeoutMs = 10_000): Promise<MlsEvent[]> {
    return this.inbox.syncUntil(want, timeoutMs);
  }

  /** Catch-up after `stale_epoch`: processes the group's log entries this client has not seen. */
  catchUp(groupId: string): Promise<MlsEvent[]> {
    return this.inbox.catchUp(groupId, this.slot(groupId).lastSeq);
  }

  private slot(groupId: string): GroupSlot {
    const slot = this.groups.get(groupId);
    if (!slot) throw new Error(`${this.id} is not in group ${groupId}`);
    return slot;
  }

  private async handle(entry: InboxEntry): Promise<MlsEvent[]> {
    if (entry.kind === "device_update") {
      return [
        {
          kind: "device_update",
          user: String(entry.user),
          version: Number(entry.version),
          devices: entry.devices as { client: string }[],
        },
      ];
    }
    if (entry.kind === "commit_conflict") return [{ ...(entry as object), kind: "commit_conflict" } as MlsEvent];
    const { groupId, seq, message } = entry;
    if (!groupId || seq === undefined || !message) return [];
    try {
      if (entry.kind === "welcome") return await this.handleWelcome(groupId, seq, entry.sender ?? "", message);
      const slot = this.groups.get(groupId);
      // Our own commits and messages are already applied (MLS cannot process its own messages).
      if (!slot || seq <= slot.lastSeq || entry.sender === this.id) return [];
      const decoded = decodeMlsMessage(fromB64u(message), 0)?.[0];
      if (!decoded || (decoded.wireformat !== "mls_private_message" && decoded.wireformat !== "mls_public_message")) return [];
      const epoch = Number(
        decoded.wireformat === "mls_private_message" ? decoded.privateMessage.epoch : decoded.publicMessage.content.epoch,
      );
      if (epoch > Number(slot.state.groupContext.epoch) && entry.cursor !== 0) {
        // We missed something (e.g. a commit delivered out of order): catch up first.
        const before = await this.catchUp(groupId);
        if (seq <= slot.lastSeq) return before;
      }
      const result = await processMessage(decoded, slot.state, emptyPskIndex, acceptAll, this.cs);
      slot.state = result.newState;
      slot.lastSeq = seq;
      const sender = entry.sender ?? "";
      if (result.kind === "applicationMessage")
        return [{ kind: "message", groupId, sender, text: fromUtf8.decode(result.message), seq }];
      if (entry.kind === "proposal") return [{ kind: "proposal", groupId, sender, seq }];
      if (slot.state.groupActiveState.kind === "removedFromGroup") {
        this.groups.delete(groupId);
        this.emit({ kind: "removed", groupId });
        return [{ kind: "removed", groupId, sender }];
      }
      this.emitEpoch(groupId);
      return [{ kind: "commit", groupId, sender, epoch: Number(slot.state.groupContext.epoch), seq }];
    } catch (e) {
      return [{ kind: "error", groupId, seq, error: (e as Error).message }];
    }
  }

  private async handleWelcome(groupId: string, seq: number, sender: string, message: string): Promise<MlsEvent[]> {
    if (this.groups.has(groupId)) return [];
    const decoded = decodeMlsMessage(fromB64u(message), 0)?.[0];
    if (!decoded || decoded.wireformat !== "mls_welcome") return [];
    for (const secret of decoded.welcome.secrets) {
      const ref = toB64u(secret.newMember);
      const kp = this.keyPackages.get(ref);
      if (!kp) continue;
      const state = await joinGroup(decoded.welcome, kp.publicPackage, kp.privatePackage, emptyPskIndex, this.cs);
      if (!kp.lastResort) this.keyPackages.delete(ref);
      this.groups.set(groupId, { state, lastSeq: seq });
      this.emitEpoch(groupId);
      return [{ kind: "joined", groupId, sender }];
    }
    return [];
  }
}

/** A credential's client id under any identity scheme (the schemes' forms are disjoint). */
function credentialClient(cred: { credentialType: string; identity?: Uint8Array }): string | undefined {
  return cred.credentialType === "basic" && cred.identity ? clientOfIdentity(cred.identity, IDENTITY_SCHEMES)?.client : undefined;
}

/** Client ids of the tree's leaves by leaf index, whatever identity form each member uses. */
function leafIdentities(state: ClientState): (string | null)[] {
  const out: (string | null)[] = [];
  for (let i = 0; i < state.ratchetTree.length; i += 2) {
    const node = state.ratchetTree[i];
    out.push(node?.nodeType === "leaf" ? (credentialClient(node.leaf.credential) ?? null) : null);
  }
  return out;
}
