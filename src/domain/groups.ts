import { randomBytes } from "node:crypto";
import { DsError } from "../errors.js";
import { fromB64u, sha256Hex } from "../encoding.js";
import { decodeMlsField } from "../mls/codec.js";
import { readFraming, rosterChange, welcomeRefs, type Framing } from "../mls/framing.js";
import { checkGroupInfo, storedLeaves } from "../mls/group-info.js";
import type { MLSMessage } from "ts-mls/message.js";
import {
  domainOf,
  type GroupMode,
  type GroupRecord,
  type LogEntry,
  type Store,
  type Submission,
  type SubmitOutcome,
} from "../store/port.js";
import type { DeliveredMessage, Dispatcher } from "./fanout.js";
import type { Clock, CommitBundle, GroupView, PeerGateway } from "./types.js";

export interface GroupLimits {
  messageBytes: number;
  groupInfoBytes: number;
  leaseMaxTtlMs: number;
  logPageSize: number;
  allowedSuites: readonly number[];
}

export interface CreateGroupRequest {
  groupId: string;
  cipherSuite: number;
  mode: GroupMode;
  groupInfo?: string;
  replyTo?: string;
}

export interface WireLogEntry {
  seq: number;
  kind: LogEntry["kind"];
  epoch: number;
  sender: string;
  message: string;
}

/** Test-only hooks (equivocation tests); never set in production configs. */
export interface GroupHooks {
  /** Rewrites what the outbox sends to a peer: lets a test make the hub equivocate. */
  tamperDelivery?: (peer: string, messages: DeliveredMessage[]) => DeliveredMessage[];
}

function outcomeError(outcome: Exclude<SubmitOutcome, { ok: true }>): DsError {
  switch (outcome.code) {
    case "unknown_group":
      return new DsError("unknown_group", "no such group");
    case "not_a_member":
      return new DsError("not_a_member", "the sender is not a member of this group");
    case "not_designated_sender":
      return new DsError("not_designated_sender", "only the designated sender may commit or send in a send group");
    case "stale_epoch":
      return new DsError("stale_epoch", `the group is at epoch ${outcome.expectedEpoch}`, {
        expectedEpoch: outcome.expectedEpoch,
        ...(outcome.winner ? { winner: outcome.winner } : {}),
      });
    case "group_locked":
      return new DsError("group_locked", "another client holds the group lease", { leaseExpiresAt: outcome.leaseExpiresAt });
  }
}

export function viewOf(g: GroupRecord): GroupView {
  return {
    groupId: g.groupId,
    hub: g.hub,
    epoch: g.epoch,
    mode: g.mode,
    cipherSuite: g.cipherSuite,
    members: [...g.members],
    owner: g.owner,
    ...(g.replyTo ? { replyTo: g.replyTo } : {}),
  };
}

export function wireEntry(e: LogEntry): WireLogEntry {
  return { seq: e.seq, kind: e.kind, epoch: e.epoch, sender: e.sender, message: e.message };
}

interface DecodedBundle {
  bytes: Uint8Array;
  message: MLSMessage;
  framing: Framing;
  welcome?: { bytes: Uint8Array; message: MLSMessage };
}

const CLIENT_ID = /^[^\s/@]+@[a-z0-9.-]+\/[^\s/]+$/;

/**
 * Who a device acts as in a group: itself, or — in single-client mode — its user's virtual
 * client `user@domain/*` when that is the member (seed 003).
 */
export function actorIn(g: GroupRecord, client: string): string {
  if (g.members.includes(client)) return client;
  const virtual = `${client.slice(0, client.indexOf("/"))}/*`;
  return g.members.includes(virtual) ? virtual : client;
}

/**
 * Groups: creation, the ordering step, leases and catch-up. The hub (this DS) decides; a follower
 * forwards its clients' submissions to the hub and hands the hub's answer back unchanged.
 */
export class Groups {
  constructor(
    private readonly domain: string,
    private readonly store: Store,
    private readonly limits: GroupLimits,
    private readonly clock: Clock,
    private readonly peers: PeerGateway,
    private readonly dispatcher: Dispatcher,
    private readonly isPeer: (domain: string) => boolean,
  ) {}

  private checkGroupId(groupId: string): void {
    const bytes = fromB64u(groupId);
    if (!bytes || bytes.byteLength === 0 || bytes.byteLength > 255) {
      throw new DsError("bad_request", "groupId must be 1..255 bytes, base64url without padding");
    }
  }

  async create(client: string, req: CreateGroupRequest): Promise<GroupView> {
    this.checkGroupId(req.groupId);
    if (!this.limits.allowedSuites.includes(req.cipherSuite)) {
      throw new DsError("unsupported_cipher_suite", `cipher suite ${req.cipherSuite} is not allowed here`, {
        allowed: this.limits.allowedSuites,
      });
    }
    let groupInfo: { epoch: number; groupInfo: string } | undefined;
    if (req.groupInfo) {
      const { message } = decodeMlsField(req.groupInfo, "groupInfo", this.limits.groupInfoBytes);
      const checked = await checkGroupInfo(message, { groupId: req.groupId, epoch: 0, cipherSuite: req.cipherSuite });
      if (checked.leaves.filter((l) => l !== null).join() !== client) {
        throw new DsError("invalid_group_info", "a new group's tree must hold only its creator");
      }
      groupInfo = { epoch: 0, groupInfo: req.groupInfo };
    }
    if (req.replyTo) {
      const parent = await this.store.getGroup(req.replyTo);
      if (!parent || !parent.members.includes(actorIn(parent, client)))
        throw new DsError("unknown_group", "replyTo names no group of yours");
    }
    const record: GroupRecord = {
      groupId: req.groupId,
      hub: this.domain,
      mode: req.mode,
      cipherSuite: req.cipherSuite,
      epoch: 0,
      nextSeq: 1,
      members: [client],
      owner: client,
      createdAt: this.clock.nowMs(),
      ...(req.replyTo ? { replyTo: req.replyTo } : {}),
    };
    if (!(await this.store.createGroup(record, groupInfo))) throw new DsError("group_exists", "a group with this id exists");
    return viewOf(record);
  }

  /** The group as this DS knows it; members only. Followers ask the hub, falling back to their replica. */
  async get(client: string, groupId: string, requestId?: string): Promise<GroupView> {
    const g = await this.requireKnown(groupId);
    if (g.hub !== this.domain) {
      try {
        return await this.peers.group(g.hub, groupId, actorIn(g, client), requestId);
      } catch (e) {
        if (e instanceof DsError && e.code !== "peer_unreachable") throw e;
      }
    }
    if (!g.members.includes(actorIn(g, client))) throw new DsError("not_a_member", "you are not a member of this group");
    return viewOf(g);
  }

  private async requireKnown(groupId: string): Promise<GroupRecord> {
    this.checkGroupId(groupId);
    const g = await this.store.getGroup(groupId);
    if (!g) throw new DsError("unknown_group", "no such group");
    return g;
  }

  async submitCommit(
    client: string,
    groupId: string,
    bundle: CommitBundle,
    requestId?: string,
  ): Promise<{ seq: number; epoch: number }> {
    const g = await this.requireKnown(groupId);
    const decoded = this.decodeBundle(bundle, groupId);
    const { framing } = decoded;
    for (const c of [...(bundle.added ?? []), ...(bundle.removed ?? [])]) {
      if (!CLIENT_ID.test(c)) throw new DsError("bad_request", `${JSON.stringify(c)} is not a client id (user@domain/device)`);
    }
    const unreachable = (bundle.added ?? []).map(domainOf).find((d) => d !== this.domain && !this.isPeer(d));
    if (unreachable)
      throw new DsError("peer_unknown", `${unreachable} is not a peer of ${this.domain}: its clients cannot be added`);
    if (bundle.welcome) {
      // Route the Welcome by what the DS can check: each KeyPackageRef must belong to an added client.
      const added = new Set(bundle.added ?? []);
      const welcomed = new Set<string>();
      for (const ref of welcomeRefs(decoded.welcome!.message)) {
        const owner = await this.store.resolveRef(ref);
        if (!owner || !added.has(owner)) {
          throw new DsError("invalid_welcome", `the Welcome names KeyPackage ${ref}, which belongs to no added client`);
        }
        welcomed.add(owner);
      }
      // Every client stated as added must be able to join: the Welcome must be encrypted to it.
      const unwelcomed = [...added].filter((c) => !welcomed.has(c));
      if (unwelcomed.length > 0) throw new DsError("invalid_welcome", `the Welcome is not encrypted to ${unwelcomed.join(", ")}`);
    } else if ((bundle.added ?? []).length > 0 && framing.senderType !== "new_member_commit") {
      throw new DsError("invalid_welcome", "a commit that adds clients needs their Welcome");
    }
    if (g.hub !== this.domain) {
      return this.peers.submit(g.hub, groupId, actorIn(g, client), { kind: "commit", bundle }, requestId);
    }
    return this.accept(actorIn(g, client), g, bundle, decoded);
  }

  /** Strict decoding of a bundle's commit and Welcome, once per request. */
  private decodeBundle(bundle: CommitBundle, groupId: string): DecodedBundle {
    const { bytes, message } = decodeMlsField(bundle.commit, "commit", this.limits.messageBytes);
    const framing = readFraming(message);
    if (framing.contentType !== "commit")
      throw new DsError("bad_request", "commit must carry a Commit (send other content to /messages)");
    if (framing.groupId !== groupId) throw new DsError("bad_request", "the commit belongs to another group");
    if (!bundle.welcome) return { bytes, message, framing };
    const welcome = decodeMlsField(bundle.welcome, "welcome", this.limits.messageBytes);
    if (welcome.message.wireformat !== "mls_welcome") throw new DsError("invalid_mls", "welcome must be a Welcome");
    return { bytes, message, framing, welcome };
  }

  /** Hub side of a commit forwarded by a follower (which checked the Welcome's refs). */
  acceptCommit(sender: string, g: GroupRecord, bundle: CommitBundle): Promise<{ seq: number; epoch: number }> {
    return this.accept(sender, g, bundle, this.decodeBundle(bundle, g.groupId));
  }

  private async accept(
    sender: string,
    g: GroupRecord,
    bundle: CommitBundle,
    decoded: DecodedBundle,
  ): Promise<{ seq: number; epoch: number }> {
    const { bytes, message, framing } = decoded;
    const welcome =
      decoded.welcome && bundle.welcome ? { message: bundle.welcome, sha256: sha256Hex(decoded.welcome.bytes) } : undefined;
    await this.crossCheckRoster(g, sender, message, bundle);
    if (bundle.groupInfo) {
      const gi = decodeMlsField(bundle.groupInfo, "groupInfo", this.limits.groupInfoBytes);
      await checkGroupInfo(gi.message, { groupId: g.groupId, epoch: framing.epoch + 1, cipherSuite: g.cipherSuite });
    }
    const sub: Submission = {
      kind: "commit",
      sender,
      epoch: framing.epoch,
      sha256: sha256Hex(bytes),
      message: bundle.commit,
      ...(welcome ? { welcome } : {}),
      added: bundle.added ?? [],
      removed: bundle.removed ?? [],
      ...(bundle.groupInfo ? { groupInfo: bundle.groupInfo } : {}),
      ...(bundle.leaseToken ? { leaseToken: bundle.leaseToken } : {}),
      ...(framing.senderType === "new_member_commit" ? { external: true } : {}),
    };
    return this.applySubmission(g.groupId, sub, g.members);
  }

  /**
   * The DS cannot read an encrypted commit, so the committer states the roster change. Where the
   * commit is a PublicMessage with proposals by value, the stated change must match them.
   */
  private async crossCheckRoster(g: GroupRecord, sender: string, message: MLSMessage, bundle: CommitBundle): Promise<void> {
    const change = rosterChange(message);
    if (change?.joiner !== undefined && change.joiner !== sender) {
      throw new DsError("roster_mismatch", "an external commit's new leaf must name the submitting client", {
        proposed: [change.joiner],
      });
    }
    if (!change || change.byReference) return;
    const same = (a: string[], b: string[]) => a.length === b.length && [...a].sort().join("\n") === [...b].sort().join("\n");
    if (!same(change.added, bundle.added ?? [])) {
      throw new DsError("roster_mismatch", "`added` does not match the commit's Add proposals", { proposed: change.added });
    }
    if (change.removed.length === 0 && (bundle.removed ?? []).length === 0) return;
    const stored = await this.store.getGroupInfo(g.groupId);
    const leaves = stored && stored.epoch === g.epoch ? storedLeaves(stored.groupInfo) : undefined;
    if (!leaves) return;
    const removed = change.removed.map((i) => leaves[i] ?? `leaf ${i}`);
    if (!same(removed, bundle.removed ?? [])) {
      throw new DsError("roster_mismatch", "`removed` does not match the commit's Remove proposals", { proposed: removed });
    }
  }

  async submitMessage(client: string, groupId: string, text: string, requestId?: string): Promise<{ seq: number }> {
    const g = await this.requireKnown(groupId);
    if (g.hub !== this.domain) {
      const answer = await this.peers.submit(g.hub, groupId, actorIn(g, client), { kind: "message", message: text }, requestId);
      return { seq: answer.seq };
    }
    const { seq } = await this.acceptMessage(actorIn(g, client), g, text);
    return { seq };
  }

  async acceptMessage(sender: string, g: GroupRecord, text: string): Promise<{ seq: number; epoch: number }> {
    const { bytes, message } = decodeMlsField(text, "message", this.limits.messageBytes);
    const framing = readFraming(message);
    if (framing.groupId !== g.groupId) throw new DsError("bad_request", "the message belongs to another group");
    if (framing.contentType === "commit") throw new DsError("bad_request", "commits go to /commits as a bundle");
    return this.applySubmission(
      g.groupId,
      {
        kind: framing.contentType,
        sender,
        epoch: framing.epoch,
        sha256: sha256Hex(bytes),
        message: text,
      },
      g.members,
    );
  }

  private async applySubmission(groupId: string, sub: Submission, members: string[]): Promise<{ seq: number; epoch: number }> {
    const outcome = await this.store.submit(groupId, sub, this.clock.nowMs());
    if (!outcome.ok) throw outcomeError(outcome);
    if (!outcome.duplicate) {
      await this.dispatcher.dispatch(groupId, outcome.entries, members);
    } else {
      // A retry: the first attempt may have failed after the entry was ordered (its fan-out or the
      // store's answer lost in a store outage). Fan the original entries out again: inboxes and
      // outboxes dedupe by (groupId, seq), so what was delivered already is not delivered twice.
      const welcome = sub.kind === "commit" ? sub.welcome?.sha256 : undefined;
      const held = await this.store.readEntries(groupId, welcome ? [outcome.seq, outcome.seq + 1] : [outcome.seq]);
      const entries = held.filter((e): e is LogEntry => e !== undefined && (e.sha256 === sub.sha256 || e.sha256 === welcome));
      await this.dispatcher.dispatch(groupId, entries, members);
    }
    return { seq: outcome.seq, epoch: outcome.epoch };
  }

  async acquireLease(
    client: string,
    groupId: string,
    ttlMs: number,
    requestId?: string,
  ): Promise<{ leaseToken: string; expiresAt: number }> {
    const g = await this.requireKnown(groupId);
    if (!Number.isInteger(ttlMs) || ttlMs <= 0 || ttlMs > this.limits.leaseMaxTtlMs) {
      throw new DsError("bad_request", `ttlMs must be an integer in 1..${this.limits.leaseMaxTtlMs}`);
    }
    const actor = actorIn(g, client);
    if (g.hub !== this.domain) return this.peers.lease(g.hub, groupId, actor, ttlMs, requestId);
    if (g.mode === "send-group")
      throw new DsError("bad_request", "send groups need no lease: only the designated sender commits");
    const token = randomBytes(18).toString("base64url");
    const r = await this.store.acquireLease(groupId, actor, ttlMs, token, this.clock.nowMs());
    if (!r.ok) throw outcomeError(r);
    return { leaseToken: r.token, expiresAt: r.expiresAt };
  }

  async releaseLease(client: string, groupId: string, token: string, requestId?: string): Promise<void> {
    const g = await this.requireKnown(groupId);
    if (g.hub !== this.domain) return this.peers.releaseLease(g.hub, groupId, actorIn(g, client), token, requestId);
    if (!g.members.includes(actorIn(g, client))) throw new DsError("not_a_member", "you are not a member of this group");
    if (!(await this.store.releaseLease(groupId, token))) throw new DsError("not_found", "no such lease");
  }

  /**
   * Catch-up: the log entries addressed to (or sent by) the client after `after`. `next` is the
   * last seq examined (continue from there); `more` says a full page was read.
   */
  async messages(
    client: string,
    groupId: string,
    after: number,
    limit: number,
    requestId?: string,
  ): Promise<{ messages: WireLogEntry[]; next: number; more: boolean }> {
    let g = await this.requireKnown(groupId);
    const page = Math.min(Math.max(1, limit), this.limits.logPageSize);
    if (g.hub !== this.domain) {
      // Only a member (by the replica's view, which every delivery refreshes) makes this DS call the hub.
      if (!g.members.includes(actorIn(g, client))) throw new DsError("not_a_member", "you are not a member of this group");
      // Pull what the hub has beyond our replica first, so catch-up after stale_epoch sees the winner.
      await this.dispatcher.syncReplica(g.hub, groupId, requestId).catch(() => undefined);
      g = (await this.store.getGroup(groupId)) ?? g;
    }
    const actor = actorIn(g, client);
    if (!g.members.includes(actor)) throw new DsError("not_a_member", "you are not a member of this group");
    const entries = await this.store.readLog(groupId, after, page);
    return {
      messages: entries.filter((e) => e.recipients.includes(actor) || e.sender === actor).map(wireEntry),
      next: entries.at(-1)?.seq ?? after,
      more: entries.length === page,
    };
  }

  async groupInfo(client: string, groupId: string, requestId?: string): Promise<{ epoch: number; groupInfo: string }> {
    const g = await this.requireKnown(groupId);
    if (g.hub !== this.domain) return this.peers.groupInfo(g.hub, groupId, actorIn(g, client), requestId);
    this.requireMemberOrSameUser(g, client);
    const gi = await this.store.getGroupInfo(groupId);
    if (!gi) throw new DsError("not_found", "no GroupInfo has been uploaded for this group");
    return gi;
  }

  /** Members, and other devices of a member's user (they need the GroupInfo to join externally). */
  requireMemberOrSameUser(g: GroupRecord, client: string): void {
    const user = client.slice(0, client.indexOf("/"));
    if (!g.members.some((m) => m === client || m.startsWith(`${user}/`))) {
      throw new DsError("not_a_member", "you are not a member of this group");
    }
  }

  async commitLog(client: string, groupId: string, afterEpoch: number) {
    const g = await this.requireKnown(groupId);
    if (!g.members.includes(actorIn(g, client))) throw new DsError("not_a_member", "you are not a member of this group");
    return this.store.commitLog(groupId, afterEpoch);
  }
}
