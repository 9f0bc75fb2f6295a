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
  createProposal,
  decodeGroupState,
  encodeGroupState,
} from "ts-mls";
import { defaultClientConfig } from "ts-mls/clientConfig.js";
import { decodeRatchetTree } from "ts-mls/ratchetTree.js";
import type { ClientState } from "ts-mls/clientState.js";
import type { CiphersuiteImpl, CiphersuiteName } from "ts-mls/crypto/ciphersuite.js";

import type { MLSMessage } from "ts-mls/message.js";
import type { Proposal } from "ts-mls/proposal.js";
import type { ProposalWithSender } from "ts-mls/unappliedProposals.js";
import { FedgateApi, FedgateError, type ClaimAnswer, type InboxEntry } from "./api.js";
import { InboxReader, type MlsEvent } from "./inbox-reader.js";
import { IDENTITY_SCHEMES, clientOfIdentity, identityBytes, type IdentityScheme } from "../mls/identity.js";
import { fromB64u, toB64u } from "./b64.js";
import type { EpochSnapshot, GroupEpochEvent } from "./call-keys.js";
import { MemoryClientStorage, type ClientStorage } from "./storage.js";
import { KeyPackagePool, type PublishOptions } from "./key-package-pool.js";
import { systemClock, type Clock } from "../clock.js";

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
const MAX_COMMIT_ATTEMPTS = 8;

export type { MlsEvent };

export interface MlsClientOptions {
  cipherSuite?: number;
  /** A bearer token from the identity provider; without one (and none stored) a dev token is fetched. */
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
  /** Where group states, KeyPackage private keys, the cursor and the token live (default: memory). */
  storage?: ClientStorage;
  /**
   * Keep the DS stocked with KeyPackages: on a `key_packages_low` notice (and by ensureKeyPackages)
   * top the pool up to `target`, with a last-resort package. Off by default.
   */
  replenish?: { target: number };
  /** KeyPackage lifetimes and sync deadlines (src/clock.ts); a test may pass a fake. */
  clock?: Clock;
}

interface GroupSlot {
  state: ClientState;
  /** Highest seq processed; earlier entries are history. */
  lastSeq: number;
  /** A send group this client created: it is the designated sender. */
  designatedSender?: boolean;
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
  private readonly keyPackages: KeyPackagePool;
  private groups = new Map<string, GroupSlot>();
  private readonly inbox: InboxReader;
  private epochListeners = new Set<(event: GroupEpochEvent) => void>();
  /** State changes run one at a time: a message arriving while the user sends must not fork a group state. */
  private queue: Promise<unknown> = Promise.resolve();
  /** Events of entries applied while a commit caught up (stale_epoch): reported with the next batch. */
  private undelivered: MlsEvent[] = [];
  /** The DS reported this device's KeyPackage pool low (a `key_packages_low` notice). */
  private poolLow = false;
  private readonly replenishTarget?: number;

  private constructor(
    readonly api: FedgateApi,
    readonly cipherSuite: number,
    readonly cs: CiphersuiteImpl,
    readonly identityScheme: IdentityScheme,
    readonly commitFormat: "public" | "private",
    readonly storage: ClientStorage,
    restored: { cursor: number; replenishTarget?: number },
    private readonly clock: Clock = systemClock,
  ) {
    this.replenishTarget = restored.replenishTarget;
    this.keyPackages = new KeyPackagePool(api, cs, storage, identityScheme, clock);
    // Events a losing commit's catch-up produced go out with the next entry handled.
    this.inbox = new InboxReader(
      api,
      (entry) => this.serial(async () => [...this.undelivered.splice(0), ...(await this.handle(entry))]),
      {
        clock,
        cursor: restored.cursor,
        saveCursor: (cursor) => storage.saveCursor(cursor),
        afterBatch: () => this.replenishIfLow(),
      },
    );
  }

  get id(): string {
    return this.api.client;
  }

  get user(): string {
    return this.id.slice(0, this.id.indexOf("/"));
  }

  /**
   * Connects as `client`, restoring what `storage` holds (groups, KeyPackage keys, cursor, token).
   * Without a token (given or stored) a dev token is fetched and stored.
   */
  static async connect(baseUrl: string, client: string, opts: MlsClientOptions = {}): Promise<MlsClient> {
    const identityScheme = opts.identityScheme ?? "fedgate";
    identityBytes(client, identityScheme); // throws early for a client id the scheme cannot express
    const storage = opts.storage ?? new MemoryClientStorage();
    const token = opts.token ?? (await storage.loadToken());
    const api = new FedgateApi(baseUrl, client, token);
    if (!token) await api.login();
    if (api.currentToken !== token) await storage.saveToken(api.currentToken);
    const suite = opts.cipherSuite ?? 1;
    const cs = await getCiphersuiteImpl(getCiphersuiteFromName(suiteNameOf(suite)));
    const restored = {
      cursor: await storage.loadCursor(),
      ...(opts.replenish ? { replenishTarget: opts.replenish.target } : {}),
    };
    const mls = new MlsClient(api, suite, cs, identityScheme, opts.commitFormat ?? "private", storage, restored, opts.clock);
    await mls.restore();
    return mls;
  }

  private async restore(): Promise<void> {
    for (const g of await this.storage.loadGroups()) {
      const decoded = decodeGroupState(g.state, 0);
      if (!decoded) throw new Error(`stored state of group ${g.groupId} does not decode`);
      this.groups.set(g.groupId, {
        state: { ...decoded[0], clientConfig: defaultClientConfig },
        lastSeq: g.lastSeq,
        ...(g.designatedSender ? { designatedSender: true } : {}),
      });
    }
    await this.keyPackages.restore();
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async persistGroup(groupId: string): Promise<void> {
    const slot = this.groups.get(groupId);
    if (!slot) await this.storage.deleteGroup(groupId);
    else {
      await this.storage.saveGroup({
        groupId,
        state: encodeGroupState(slot.state),
        lastSeq: slot.lastSeq,
        ...(slot.designatedSender ? { designatedSender: true } : {}),
      });
    }
  }

  /**
   * Makes sure the DS holds `target` of this device's KeyPackages and a last-resort one, all with
   * private keys this client holds: packages whose keys were lost (storage cleared) are withdrawn.
   * Publishes only what is missing; returns how many were uploaded.
   */
  ensureKeyPackages(target = this.replenishTarget ?? 10): Promise<number> {
    return this.keyPackages.ensure(target);
  }

  /** Generates and uploads `count` KeyPackages (and a last-resort one if asked); private keys are stored first. */
  publishKeyPackages(count: number, opts: PublishOptions = {}) {
    return this.keyPackages.publish(count, opts);
  }

  /** Single-client mode: hands this device's private KeyPackages to another device of the same user (out of band). */
  async shareKeyPackagesWith(other: MlsClient): Promise<void> {
    if (other.user !== this.user) throw new Error("KeyPackages are only shared between devices of one user");
    await other.keyPackages.remember(this.keyPackages.entries());
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
    await this.serial(async () => {
      this.groups.set(groupId, { state, lastSeq: 0, ...(opts.mode === "send-group" ? { designatedSender: true } : {}) });
      await this.persistGroup(groupId);
    });
    this.emitEpoch(groupId);
    return groupId;
  }

  private async freshKeyPackage() {
    const credential = { credentialType: "basic" as const, identity: identityBytes(this.id, this.identityScheme) };
    const now = BigInt(this.clock.nowSeconds());
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
  commit(
    groupId: string,
    proposals: Proposal[] | ((state: ClientState) => Proposal[]),
    meta: { added?: string[]; removed?: string[]; leaseToken?: string } = {},
  ): Promise<{ seq: number; epoch: number; attempts: number }> {
    return this.serial(() => this.commitNow(groupId, proposals, meta));
  }

  private async commitNow(
    groupId: string,
    proposals: Proposal[] | ((state: ClientState) => Proposal[]),
    meta: { added?: string[]; removed?: string[]; leaseToken?: string },
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
      // Received Remove proposals (a member leaving) that this commit references: state them too.
      const removed = [...new Set([...(meta.removed ?? []), ...(inline?.removed ?? pendingRemovals(slot.state))])];
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
        await this.persistGroup(groupId);
        this.emitEpoch(groupId);
        return { ...answer, attempts: attempt };
      } catch (e) {
        if (!(e instanceof FedgateError) || e.code !== "stale_epoch" || attempt >= MAX_COMMIT_ATTEMPTS) throw e;
        // What the winner's commit and the messages around it did must still reach the application
        // (a member removed, a chat line, a call signal): those entries are never processed again.
        this.undelivered.push(...(await this.catchUpNow(groupId)));
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

  send(groupId: string, text: string): Promise<{ seq: number }> {
    return this.serial(async () => {
      const slot = this.slot(groupId);
      const { newState, privateMessage } = await createApplicationMessage(slot.state, utf8.encode(text), this.cs);
      slot.state = newState;
      // The advanced sending ratchet is stored before the message leaves: a reload never reuses a key.
      await this.persistGroup(groupId);
      return this.api.send(groupId, wire({ version: "mls10", wireformat: "mls_private_message", privateMessage }));
    });
  }

  /**
   * Leaves a group: MLS forbids committing one's own removal, so this sends a Remove proposal for
   * this client's leaf (the next commit by any member carries it) and forgets the group here.
   */
  leave(groupId: string): Promise<void> {
    return this.serial(async () => {
      const slot = this.slot(groupId);
      const leaf = leafIdentities(slot.state).indexOf(this.id);
      const proposal: Proposal = { proposalType: "remove", remove: { removed: leaf } };
      const { message } = await createProposal(slot.state, true, proposal, this.cs);
      await this.api.send(groupId, wire(message));
      this.groups.delete(groupId);
      await this.persistGroup(groupId);
      this.emit({ kind: "removed", groupId });
    });
  }

  /** Commits the proposals received and not yet committed (e.g. a member's Remove of itself). */
  async commitPending(groupId: string): Promise<{ seq: number; epoch: number; attempts: number } | undefined> {
    if (Object.keys(this.state(groupId).unappliedProposals).length === 0) return undefined;
    return this.commit(groupId, []);
  }

  /** Joins a group through an external commit from the DS's stored GroupInfo (a new device of a member's user). */
  async joinExternal(groupId: string): Promise<{ seq: number; epoch: number }> {
    const { groupInfo, ratchetTree } = await this.api.groupInfo(groupId);
    const gi = decodeMlsMessage(fromB64u(groupInfo), 0)?.[0];
    if (!gi || gi.wireformat !== "mls_group_info") throw new Error("DS returned no GroupInfo");
    // A GroupInfo without the ratchet_tree extension comes with its tree beside it (MIMI hubs).
    const tree = ratchetTree === undefined ? undefined : decodeRatchetTree(fromB64u(ratchetTree), 0)?.[0];
    if (ratchetTree !== undefined && !tree) throw new Error("DS returned a ratchet tree that does not decode");
    const kp = await this.freshKeyPackage();
    const { publicMessage, newState } = await joinGroupExternal(
      gi.groupInfo,
      kp.publicPackage,
      kp.privatePackage,
      false,
      this.cs,
      tree,
    );
    const newInfo = await createGroupInfoWithExternalPubAndRatchetTree(newState, [], this.cs);
    const answer = await this.api.commit(groupId, {
      commit: wire({ version: "mls10", wireformat: "mls_public_message", publicMessage }),
      groupInfo: wire({ version: "mls10", wireformat: "mls_group_info", groupInfo: newInfo }),
    });
    await this.serial(async () => {
      this.groups.set(groupId, { state: newState, lastSeq: answer.seq });
      await this.persistGroup(groupId);
    });
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
  async sync(opts: { waitMs?: number } = {}): Promise<MlsEvent[]> {
    const events = await this.inbox.sync(opts);
    return [...this.undelivered.splice(0), ...events];
  }

  /**
   * Follows the live stream until `signal` aborts, handing events to `onEvents` (see
   * InboxReader.listen: fetch-based, the token in a header; reconnects; rejects on a refused token).
   */
  listen(onEvents: (events: MlsEvent[]) => void, signal: AbortSignal, onOpen?: () => void): Promise<void> {
    return this.inbox.listen(onEvents, signal, onOpen);
  }

  /** Syncs until `want` holds for the events collected so far (see InboxReader.syncUntil). */
  syncUntil(want: (events: MlsEvent[]) => boolean, timeoutMs = 10_000): Promise<MlsEvent[]> {
    return this.inbox.syncUntil(want, timeoutMs);
  }

  /** Catch-up after `stale_epoch`: processes the group's log entries this client has not seen. */
  catchUp(groupId: string): Promise<MlsEvent[]> {
    return this.serial(() => this.catchUpNow(groupId));
  }

  /** Catch-up while holding the state lock (inside a commit or while handling an entry). */
  private catchUpNow(groupId: string): Promise<MlsEvent[]> {
    return this.inbox.catchUp(groupId, this.slot(groupId).lastSeq, (entry) => this.handle(entry));
  }

  private async replenishIfLow(): Promise<void> {
    if (this.replenishTarget === undefined || !this.poolLow) return;
    this.poolLow = false;
    await this.ensureKeyPackages();
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
    if (entry.kind === "key_packages_low") {
      // Not an event: with `replenish` set, the batch ends with a top-up (replenishIfLow).
      this.poolLow = true;
      return [];
    }
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
        const before = await this.catchUpNow(groupId);
        if (seq <= slot.lastSeq) return before;
      }
      const result = await processMessage(decoded, slot.state, emptyPskIndex, acceptAll, this.cs);
      slot.state = result.newState;
      slot.lastSeq = seq;
      if (slot.state.groupActiveState.kind === "removedFromGroup") this.groups.delete(groupId);
      await this.persistGroup(groupId);
      const sender = entry.sender ?? "";
      if (result.kind === "applicationMessage")
        return [{ kind: "message", groupId, sender, text: fromUtf8.decode(result.message), seq }];
      if (entry.kind === "proposal") return [{ kind: "proposal", groupId, sender, seq }];
      if (slot.state.groupActiveState.kind === "removedFromGroup") {
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
      await this.keyPackages.consumed(ref);
      this.groups.set(groupId, { state, lastSeq: seq });
      await this.persistGroup(groupId);
      this.emitEpoch(groupId);
      return [{ kind: "joined", groupId, sender }];
    }
    return [];
  }
}

/** Client ids that Remove proposals waiting in `state` will take out. */
function pendingRemovals(state: ClientState): string[] {
  const leaves = leafIdentities(state);
  return Object.values(state.unappliedProposals)
    .map((p) => (p.proposal.proposalType === "remove" ? leaves[p.proposal.remove.removed] : undefined))
    .filter((c): c is string => typeof c === "string");
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
