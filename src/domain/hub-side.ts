import type { StoredGroupInfo } from "../mls/group-info.js";
import { randomBytes } from "node:crypto";
import { DsError } from "../errors.js";
import { sha256Hex } from "../encoding.js";
import { decodeMlsField } from "../mls/codec.js";
import { readFraming, rosterChange, welcomeRefs } from "../mls/framing.js";
import { checkGroupInfo, decodeTree, storedLeaves } from "../mls/group-info.js";
import {
  domainOf,
  type GroupMode,
  type GroupRecord,
  type LogEntry,
  type Store,
  type Submission,
  type SubmitOutcome,
} from "../store/port.js";
import type { Dispatcher } from "./fanout.js";
import { resolveActor } from "./ordering.js";
import {
  decodeBundle,
  requireMember,
  requireMemberOrSameUser,
  viewOf,
  type Accepted,
  type DecodedBundle,
  type GroupLimits,
  type GroupSide,
} from "./group-side.js";
import type { Clock, CommitBundle, GroupView, SubmitBody } from "./types.js";

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

/**
 * What a peer may see of a group this DS orders: the whole view when it hosts a member; otherwise
 * (its clients were all removed) the view without anybody else's membership.
 */
export function viewFor(g: GroupRecord, peer: string): GroupView {
  const view = viewOf(g);
  if (g.members.some((m) => domainOf(m) === peer)) return view;
  return { ...view, members: [] };
}

/** The side of a group this DS orders: every decision is taken here, from this DS's own store. */
export class HubSide implements GroupSide {
  constructor(
    private readonly domain: string,
    private readonly store: Store,
    private readonly limits: GroupLimits,
    private readonly clock: Clock,
    private readonly dispatcher: Dispatcher,
    private readonly isPeer: (domain: string) => boolean,
  ) {}

  async view(actor: string, g: GroupRecord): Promise<GroupView> {
    requireMember(g, actor);
    return viewOf(g);
  }

  submitCommit(actor: string, g: GroupRecord, bundle: CommitBundle, decoded: DecodedBundle): Promise<Accepted> {
    return this.accept(actor, g, bundle, decoded);
  }

  async submitMessage(actor: string, g: GroupRecord, text: string): Promise<{ seq: number }> {
    const { seq } = await this.acceptMessage(actor, g, text);
    return { seq };
  }

  /**
   * A submission a follower forwarded for one of its clients. The route checked that `sender`
   * belongs to the calling peer; everything else is checked here again, as far as this DS can.
   */
  async acceptFromPeer(peer: string, sender: string, g: GroupRecord, body: SubmitBody): Promise<Accepted> {
    if (domainOf(sender) !== peer) throw new DsError("forbidden", `${peer} cannot act for ${sender}`);
    if (body.kind === "message") return this.acceptMessage(sender, g, body.message);
    const bundle = { ...body.bundle, ...(body.leaseToken ? { leaseToken: body.leaseToken } : {}) };
    const decoded = decodeBundle(bundle, g.groupId, this.limits.messageBytes);
    await this.checkPeerWelcome(bundle, decoded);
    return this.accept(sender, g, bundle, decoded);
  }

  /**
   * The follower checked the Welcome against the refs it knows. The hub does not take that on
   * faith where it can see for itself: every ref it resolves must belong to an added client, every
   * added client of its own domain must be welcomed by one of its KeyPackages, and every added
   * client must be reachable from here. Refs it cannot resolve (third providers' KeyPackages the
   * follower claimed) are the one thing it trusts the follower for.
   */
  private async checkPeerWelcome(bundle: CommitBundle, decoded: DecodedBundle): Promise<void> {
    const added = new Set(bundle.added ?? []);
    const unreachable = [...added].map(domainOf).find((d) => d !== this.domain && !this.isPeer(d));
    if (unreachable)
      throw new DsError("peer_unknown", `${unreachable} is not a peer of ${this.domain}: its clients cannot be added`);
    if (!decoded.welcome) {
      if (added.size > 0 && decoded.framing.senderType !== "new_member_commit")
        throw new DsError("invalid_welcome", "a commit that adds clients needs their Welcome");
      return;
    }
    const welcomed = new Set<string>();
    for (const ref of welcomeRefs(decoded.welcome.message)) {
      const owner = await this.store.resolveRef(ref);
      if (owner === undefined) continue;
      if (!added.has(owner))
        throw new DsError("invalid_welcome", `the Welcome names KeyPackage ${ref}, which belongs to no added client`);
      welcomed.add(owner);
    }
    const ours = [...added].filter((c) => domainOf(c) === this.domain && !welcomed.has(c));
    if (ours.length > 0) throw new DsError("invalid_welcome", `the Welcome is not encrypted to ${ours.join(", ")}`);
  }

  private async accept(sender: string, g: GroupRecord, bundle: CommitBundle, decoded: DecodedBundle): Promise<Accepted> {
    const { bytes, message, framing } = decoded;
    const welcome =
      decoded.welcome && bundle.welcome ? { message: bundle.welcome, sha256: sha256Hex(decoded.welcome.bytes) } : undefined;
    await this.crossCheckRoster(g, sender, message, bundle);
    if (bundle.groupInfo) {
      const gi = decodeMlsField(bundle.groupInfo, "groupInfo", this.limits.groupInfoBytes);
      const tree = bundle.ratchetTree === undefined ? undefined : decodeTree(bundle.ratchetTree, this.limits.groupInfoBytes);
      await checkGroupInfo(gi.message, { groupId: g.groupId, epoch: framing.epoch + 1, cipherSuite: g.cipherSuite }, tree);
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
      ...(bundle.groupInfo && bundle.ratchetTree ? { ratchetTree: bundle.ratchetTree } : {}),
      ...(bundle.leaseToken ? { leaseToken: bundle.leaseToken } : {}),
      ...(framing.senderType === "new_member_commit" ? { external: true } : {}),
    };
    return this.applySubmission(g.groupId, sub, g.members, g.mode);
  }

  /**
   * The DS cannot read an encrypted commit, so the committer states the roster change. Where the
   * commit is a PublicMessage with proposals by value, the stated change must match them.
   */
  private async crossCheckRoster(
    g: GroupRecord,
    sender: string,
    message: DecodedBundle["message"],
    bundle: CommitBundle,
  ): Promise<void> {
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
    const leaves = stored && stored.epoch === g.epoch ? storedLeaves(stored) : undefined;
    if (!leaves) return;
    const removed = change.removed.map((i) => leaves[i] ?? `leaf ${i}`);
    if (!same(removed, bundle.removed ?? [])) {
      throw new DsError("roster_mismatch", "`removed` does not match the commit's Remove proposals", { proposed: removed });
    }
  }

  private async acceptMessage(sender: string, g: GroupRecord, text: string): Promise<Accepted> {
    return this.applySubmission(g.groupId, this.messageSubmission(sender, g.groupId, text), g.members, g.mode);
  }

  private messageSubmission(sender: string, groupId: string, text: string): Submission & { kind: "application" | "proposal" } {
    const { bytes, message } = decodeMlsField(text, "message", this.limits.messageBytes);
    const framing = readFraming(message);
    if (framing.groupId !== groupId) throw new DsError("bad_request", "the message belongs to another group");
    if (framing.contentType === "commit") throw new DsError("bad_request", "commits go to /commits as a bundle");
    return { kind: framing.contentType, sender, epoch: framing.epoch, sha256: sha256Hex(bytes), message: text };
  }

  /**
   * A client's message to a group known to be ordered here, without reading the group first: the
   * store resolves the device to the member it acts as and checks everything (resolveActor). Only
   * what needs the roster reads it, after the accept: a fan-out to peers, a retry's re-dispatch.
   * `undefined`: the store does not order this group (any more): the caller takes the usual path.
   */
  async submitMessageAsDevice(client: string, groupId: string, text: string): Promise<{ seq: number } | undefined> {
    const sub = { ...this.messageSubmission(client, groupId, text), resolveActor: true as const };
    const outcome = await this.store.submit(groupId, sub, this.clock.nowMs());
    if (!outcome.ok) {
      if (outcome.code === "unknown_group") return undefined;
      throw outcomeError(outcome);
    }
    if (outcome.settled) {
      this.dispatcher.settled(groupId, outcome.entries);
      return { seq: outcome.seq };
    }
    const g = await this.store.getGroup(groupId);
    if (!g) throw new DsError("unavailable", "the group vanished while its message was accepted");
    const { seq } = await this.afterSubmit(groupId, { ...sub, sender: resolveActor(g.members, client) }, outcome, g);
    return { seq };
  }

  private async applySubmission(groupId: string, sub: Submission, members: string[], mode: GroupMode): Promise<Accepted> {
    const outcome = await this.store.submit(groupId, sub, this.clock.nowMs());
    if (!outcome.ok) throw outcomeError(outcome);
    return this.afterSubmit(groupId, sub, outcome, { members, mode });
  }

  /** Fans an accepted submission out; nothing to do when it settled in the accept (members read it from their feeds). */
  private async afterSubmit(
    groupId: string,
    sub: Submission,
    outcome: Extract<SubmitOutcome, { ok: true }>,
    { members, mode }: { members: string[]; mode: GroupMode },
  ): Promise<Accepted> {
    if (outcome.settled) {
      // Nothing to fan out: the members read it from the group feed (domain/feeds.ts).
      this.dispatcher.settled(groupId, outcome.entries);
    } else if (!outcome.duplicate) {
      await this.dispatcher.dispatch(groupId, outcome.entries, members, mode);
    } else {
      // A retry: the first attempt may have failed after the entry was ordered (its fan-out or the
      // store's answer lost in a store outage). Fan the original entries out again: inboxes and
      // outboxes dedupe by (groupId, seq), so what was delivered already is not delivered twice.
      // Only the original sender's retry does this (the store refused non-members already).
      const welcome = sub.kind === "commit" ? sub.welcome?.sha256 : undefined;
      const held = await this.store.readEntries(groupId, welcome ? [outcome.seq, outcome.seq + 1] : [outcome.seq]);
      const entries = held.filter(
        (e): e is LogEntry => e !== undefined && e.sender === sub.sender && (e.sha256 === sub.sha256 || e.sha256 === welcome),
      );
      await this.dispatcher.dispatch(groupId, entries, members, mode);
    }
    return { seq: outcome.seq, epoch: outcome.epoch };
  }

  async acquireLease(actor: string, g: GroupRecord, ttlMs: number): Promise<{ leaseToken: string; expiresAt: number }> {
    if (g.mode === "send-group")
      throw new DsError("bad_request", "send groups need no lease: only the designated sender commits");
    const token = randomBytes(18).toString("base64url");
    const r = await this.store.acquireLease(g.groupId, actor, ttlMs, token, this.clock.nowMs());
    if (!r.ok) throw outcomeError(r);
    return { leaseToken: r.token, expiresAt: r.expiresAt };
  }

  async releaseLease(actor: string, g: GroupRecord, token: string): Promise<void> {
    requireMember(g, actor);
    if (!(await this.store.releaseLease(g.groupId, token))) throw new DsError("not_found", "no such lease");
  }

  async forLogRead(_client: string, g: GroupRecord): Promise<GroupRecord> {
    return g;
  }

  async groupInfo(client: string, g: GroupRecord): Promise<StoredGroupInfo> {
    requireMemberOrSameUser(g, client);
    const gi = await this.store.getGroupInfo(g.groupId);
    if (!gi) throw new DsError("not_found", "no GroupInfo has been uploaded for this group");
    return gi;
  }

  // ---- what peers may ask of a group this DS orders ----

  /** A group this DS orders; a follower never answers for a group it only replicates. */
  async ownGroup(groupId: string): Promise<GroupRecord> {
    const g = await this.store.getGroup(groupId);
    if (!g || g.hub !== this.domain) throw new DsError("unknown_group", "no such group at this hub");
    return g;
  }

  /** GET …/groups/:g for a member hosted by `peer`. */
  peerView(peer: string, member: string, g: GroupRecord): GroupView {
    if (domainOf(member) !== peer) throw new DsError("forbidden", `${peer} cannot act for ${member}`);
    requireMember(g, member);
    return viewOf(g);
  }

  /**
   * A follower's pull. A peer hosting members reads the whole log (to keep its replica gap-free); a
   * peer whose clients were all removed reads only what was addressed to them (e.g. their removal)
   * and a view without the member list; a peer that never had anything here reads nothing — not
   * even on an empty page. `logStart` says the log was trimmed before that seq (docs/FEDERATION.md).
   */
  async peerLog(peer: string, g: GroupRecord, after: number, limit: number) {
    const hosts = (c: string) => domainOf(c) === peer;
    const current = g.members.some(hosts);
    const entries = await this.store.readLog(g.groupId, after, limit);
    const visible = current ? entries : entries.filter((e) => e.recipients.some(hosts));
    if (!current && visible.length === 0) throw new DsError("forbidden", `${peer} hosts no member of this group`);
    // Where the log starts when entries before the page were trimmed (a late follower skips them).
    const logStart = await this.store.logStart(g.groupId);
    return {
      ...(logStart > after + 1 ? { logStart } : {}),
      group: viewFor(g, peer),
      entries: visible.map((e) => ({
        seq: e.seq,
        kind: e.kind,
        epoch: e.epoch,
        sender: e.sender,
        message: e.message,
        sha256: e.sha256,
        recipients: e.recipients.filter(hosts),
      })),
    };
  }

  async peerCommitLog(peer: string, g: GroupRecord, after: number) {
    if (!g.members.some((c) => domainOf(c) === peer)) throw new DsError("forbidden", `${peer} hosts no member of this group`);
    return { entries: await this.store.commitLog(g.groupId, after) };
  }
}
