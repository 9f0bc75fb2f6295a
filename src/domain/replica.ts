import type { Logger } from "pino";
import { sha256Hex } from "../encoding.js";
import { DsError, type ErrorCode } from "../errors.js";
import {
  domainOf,
  type CommitLogEntry,
  type GroupMode,
  type GroupRecord,
  type InboxItem,
  type LogEntry,
  type Store,
} from "../store/port.js";
import type { DeliveredMessage, FanoutObserver, LocalInboxes } from "./fanout.js";
import { systemClock, type Clock, type GroupView, type PeerGateway } from "./types.js";
import { isAddressed, replicaSpanSteps } from "./feeds.js";

/**
 * Bounds of the gap fill (a follower pulling missing entries from the hub) done for one `deliver`
 * request — over all its groups — or one client catch-up. A fill stops at the first bound it
 * reaches, or when a page brings no progress, and is retried on the next delivery or catch-up:
 * a hub cannot keep a follower pulling. `maxGossip` bounds the commit-log calls of one `deliver`.
 */
export const GAP_FILL = { pageSize: 1000, maxRequests: 10, maxEntries: 10_000, maxMs: 2000, maxGossip: 100 } as const;

/** What one request may still spend on calls to the hub (see GAP_FILL). */
export class PullBudget {
  private requests = 0;
  private entries = 0;
  private gossips = 0;
  private readonly started: number;

  constructor(private readonly clock: Clock = systemClock) {
    this.started = clock.nowMs();
  }

  canPull(): boolean {
    return (
      this.requests < GAP_FILL.maxRequests &&
      this.entries < GAP_FILL.maxEntries &&
      this.clock.nowMs() - this.started < GAP_FILL.maxMs
    );
  }

  pulled(entries: number): void {
    this.requests += 1;
    this.entries += entries;
  }

  canGossip(): boolean {
    return this.gossips++ < GAP_FILL.maxGossip;
  }
}

/** One entry (or, without `seq`, all of a group's entries in a batch) a follower would not take. */
export interface DeliveryRefusal {
  groupId: string;
  seq?: number;
  code: ErrorCode;
  message: string;
}

export interface CommitConflict {
  groupId: string;
  epoch: number;
  /** SHA-256 of the commit this DS received for the epoch. */
  delivered: string;
  /** SHA-256 the hub's commit log names for the epoch (or a second delivered commit). */
  hub: string;
}

/**
 * The follower side of fan-out: a replica of a group another provider orders. The trust rules
 * (docs/SECURITY.md, "Hostile peer"):
 * - the hub is the one recorded at first sight (the store refuses any write naming another);
 * - entries come only from that hub: its `deliver`, or its answers to pulls this DS made, and every
 *   answer is checked against the request (group id, hub, seq range, shape);
 * - an entry reaches local inboxes only if its sender is a member by the hub's view or our
 *   replica, or a client of the hub itself (the hub speaks for its own clients anyway);
 * - recipients are this DS's clients only; gap fill is bounded (GAP_FILL).
 */
export class ReplicaSync {
  private chains = new Map<string, Promise<unknown>>();

  constructor(
    private readonly domain: string,
    private readonly store: Store,
    private readonly peers: PeerGateway,
    private readonly inboxes: LocalInboxes,
    private readonly log: Logger,
    private readonly observer: FanoutObserver = {},
    private readonly clock: Clock = systemClock,
  ) {}

  private serial<T>(groupId: string, work: () => Promise<T>): Promise<T> {
    const previous = this.chains.get(groupId) ?? Promise.resolve();
    const next = previous.then(work, work);
    const tail = next.catch(() => undefined);
    this.chains.set(groupId, tail);
    void tail.then(() => {
      if (this.chains.get(groupId) === tail) this.chains.delete(groupId);
    });
    return next;
  }

  /**
   * A `deliver` from `hub` (the authenticated caller): each group is judged on its own, so one bad
   * group never sets aside another's entries. Returns what was refused. `views` comes from a
   * peer's JSON: looked up by own property only.
   */
  async deliverBatch(
    hub: string,
    views: Readonly<Record<string, GroupView>>,
    messages: DeliveredMessage[],
  ): Promise<DeliveryRefusal[]> {
    const byGroup = new Map<string, DeliveredMessage[]>();
    for (const m of messages) {
      const list = byGroup.get(m.groupId);
      if (list) list.push(m);
      else byGroup.set(m.groupId, [m]);
    }
    const budget = new PullBudget(this.clock);
    const refused: DeliveryRefusal[] = [];
    for (const [groupId, part] of byGroup) {
      const view = Object.hasOwn(views, groupId) ? views[groupId] : undefined;
      refused.push(...(await this.deliver(hub, groupId, view, part, budget)));
    }
    return refused;
  }

  /**
   * One group's part of a `deliver`. Returns what was refused; the rest is stored, and inboxed
   * once contiguous. Nothing is stored for a refused group.
   */
  deliver(
    hub: string,
    groupId: string,
    view: GroupView | undefined,
    messages: DeliveredMessage[],
    budget = new PullBudget(this.clock),
  ): Promise<DeliveryRefusal[]> {
    return this.deliverIn(hub, groupId, view, messages, budget, false);
  }

  /**
   * `deliver` for a hub that numbers nothing (MIMI): the store gives the messages the replica's next
   * seqs atomically (their `seq` is ignored), so DS replicas on one store cannot collide.
   */
  deliverNumberedHere(hub: string, groupId: string, view: GroupView, messages: DeliveredMessage[]): Promise<DeliveryRefusal[]> {
    return this.deliverIn(hub, groupId, view, messages, new PullBudget(this.clock), true);
  }

  private deliverIn(
    hub: string,
    groupId: string,
    view: GroupView | undefined,
    messages: DeliveredMessage[],
    budget: PullBudget,
    numberHere: boolean,
  ): Promise<DeliveryRefusal[]> {
    const refuseAll = (code: ErrorCode, message: string): DeliveryRefusal[] =>
      messages.map((m) => ({ groupId, seq: m.seq, code, message }));
    if (!view || view.groupId !== groupId || view.hub !== hub)
      return Promise.resolve(refuseAll("forbidden", `${hub} is not the hub of ${groupId}`));
    return this.serial(groupId, async () => {
      const local = await this.store.getGroup(groupId);
      if (local && local.hub !== hub) return refuseAll("forbidden", `${groupId} is ordered by ${local.hub}, not ${hub}`);
      const refused: DeliveryRefusal[] = [];
      const taken: LogEntry[] = [];
      for (const m of messages) {
        if (!this.oursOnly(m.recipients)) {
          refused.push({ groupId, seq: m.seq, code: "bad_request", message: `recipients must be clients of ${this.domain}` });
          continue;
        }
        // Hash what we actually received: the hub's sha256 field is not evidence.
        const entry = { ...toEntry(m), sha256: sha256Hex(Buffer.from(m.message, "base64url")) };
        if (!this.senderKnown(hub, view, local, m.sender)) {
          // Kept as a placeholder delivered to nobody, so the replica stays gap-free (see senderKnown).
          refused.push({ groupId, seq: m.seq, code: "not_a_member", message: `${m.sender} is not a member of ${groupId}` });
          entry.recipients = [];
        }
        taken.push(entry);
      }
      if (taken.length === 0) return refused;
      const before = await this.store.contiguousSeq(groupId);
      const write = await this.store.putReplicaEntries(replicaRecord(view), taken, numberHere);
      if (!write.ok) return refuseAll("forbidden", `${groupId} is not a replica of ${hub} here`);
      let after = await this.store.contiguousSeq(groupId);
      if (!numberHere && highestSeq(taken) > after) after = await this.fillGap(hub, groupId, budget);
      await this.inboxRange(groupId, before, after, view.mode);
      const commitEpochs = taken.filter((m) => m.kind === "commit").map((m) => m.epoch);
      if (commitEpochs.length > 0 && budget.canGossip()) await this.gossip(hub, groupId, lowest(commitEpochs) - 1);
      return refused;
    });
  }

  private oursOnly(recipients: string[]): boolean {
    return recipients.every((c) => domainOf(c) === this.domain);
  }

  /**
   * A sender the hub's view or our replica makes a member, or a client of the hub's own domain (the
   * hub speaks for those anyway). An entry from anybody else reaches no local inbox. It is still
   * kept in the replica, without recipients: an honest hub can send one (a client of a third
   * provider added and removed while this DS was unreachable: no view we saw names it), and a gap
   * at its seq would stall the group here for good.
   */
  private senderKnown(hub: string, view: GroupView, local: GroupRecord | undefined, sender: string): boolean {
    return view.members.includes(sender) || (local?.members.includes(sender) ?? false) || domainOf(sender) === hub;
  }

  /**
   * Brings the replica up to the hub's log (catch-up on a follower), within GAP_FILL. `admits`
   * tests the reader against the member list a page would leave in the replica: if the hub's
   * answer leaves the reader out, that page is not written and this returns false, so the read
   * the caller then refuses has changed nothing (a refused request never writes).
   */
  syncReplica(hub: string, groupId: string, admits: (members: string[]) => boolean): Promise<boolean> {
    return this.serial(groupId, async () => {
      const before = await this.store.contiguousSeq(groupId);
      const reader = { admits, leftOut: false };
      await this.inboxRange(groupId, before, await this.fillGap(hub, groupId, new PullBudget(this.clock), reader));
      return !reader.leftOut;
    });
  }

  /** Bounded gap fill; never throws (a failure is logged and retried on the next delivery). */
  private async fillGap(hub: string, groupId: string, budget: PullBudget, reader?: Reader): Promise<number> {
    try {
      return await this.pull(hub, groupId, budget, reader);
    } catch (err) {
      this.log.warn({ err, groupId, hub }, "gap fill from hub failed; will retry on next delivery");
      return this.store.contiguousSeq(groupId);
    }
  }

  /** Pulls pages after the contiguous point while each page makes progress and the budget lasts. */
  private async pull(hub: string, groupId: string, budget: PullBudget, reader?: Reader): Promise<number> {
    let from = await this.store.contiguousSeq(groupId);
    for (;;) {
      if (!budget.canPull()) {
        this.log.warn({ groupId, hub, at: from }, "gap fill budget used; resumes on the next delivery");
        return from;
      }
      const page = await this.peers.messages(hub, groupId, from, GAP_FILL.pageSize);
      budget.pulled(page.entries.length);
      const local = await this.store.getGroup(groupId);
      this.checkPage(hub, groupId, from, page, local);
      if (reader && !reader.admits(membersAfter(local, page.group))) {
        reader.leftOut = true;
        return from;
      }
      const write = await this.store.putReplicaEntries(replicaRecord(page.group), page.entries);
      if (!write.ok) throw new DsError("forbidden", `${groupId} is not a replica of ${hub} here`);
      // The hub trimmed what lies before logStart (every member had it, or retention passed): skip
      // that gap, never past an entry held here (the store checks).
      const reached =
        page.logStart !== undefined && page.logStart > from + 1
          ? await this.store.skipReplicaGap(groupId, page.logStart - 1)
          : await this.store.contiguousSeq(groupId);
      if (page.entries.length < GAP_FILL.pageSize) return reached;
      if (reached <= from) {
        this.log.warn({ groupId, hub, at: from }, "gap fill made no progress; stopped until the next delivery");
        return reached;
      }
      from = reached;
    }
  }

  /**
   * A pull answer must be the page asked for: this group, this hub, seqs strictly increasing in
   * (from, from + pageSize], recipients ours, a `logStart` no later than the page's first entry.
   * Anything else refuses the whole page. Entries from unknown senders are kept without recipients,
   * as in `deliver`.
   */
  private checkPage(
    hub: string,
    groupId: string,
    from: number,
    page: { group: GroupView; entries: LogEntry[]; logStart?: number },
    local: GroupRecord | undefined,
  ): void {
    const bad = (why: string) => new DsError("peer_error", `${hub} answered a pull for ${groupId} with ${why}`, { peer: hub });
    if (page.group.groupId !== groupId || page.group.hub !== hub || (local && local.hub !== hub))
      throw bad("another group or hub");
    const first = page.entries[0];
    if (page.logStart !== undefined && first && page.logStart > first.seq)
      throw bad(`logStart ${page.logStart} after the page's first entry ${first.seq}`);
    let last = from;
    for (const e of page.entries) {
      if (e.seq <= last || e.seq > from + GAP_FILL.pageSize) throw bad(`seq ${e.seq} outside the page asked for`);
      last = e.seq;
      if (!this.oursOnly(e.recipients)) throw bad(`recipients that are not clients of ${this.domain}`);
      if (!this.senderKnown(hub, page.group, local, e.sender)) e.recipients = [];
      e.sha256 = sha256Hex(Buffer.from(e.message, "base64url"));
    }
  }

  /**
   * Entries now contiguous up to `after` reach local clients through the replica's feed: the span
   * steps their recipient lists imply (domain/feeds.ts, replicaSpanSteps) are applied in one store
   * step, so the follower's cost per entry does not grow with the group either. Only a send-group's
   * proposals (addressed to its owner) go to an inbox directly. Another DS replica of this provider
   * may derive the same range first: the step then fails and what is left is derived again.
   */
  private async inboxRange(groupId: string, before: number, after: number, knownMode?: GroupMode): Promise<void> {
    if (after <= before) return;
    const mode = knownMode ?? (await this.store.getGroup(groupId))?.mode ?? "ordered";
    const isLocal = (c: string) => domainOf(c) === this.domain;
    // A failed step means another writer moved the feed: each retry starts where it stopped.
    for (let attempt = 0; attempt < 10; attempt++) {
      const feed = await this.store.replicaFeed(groupId);
      // A replica stored before feeds existed (no mark at all): what lies before this delivery
      // went to inboxes already. A replica created since starts at 0.
      const from = feed.through ?? before;
      if (after <= from) return;
      // A skipped gap (skipReplicaGap) holds no entries: the read may run past `after`; cut it there.
      const entries = (await this.store.readLog(groupId, from, after - from)).filter((e) => e.seq <= after);
      const steps = replicaSpanSteps(mode, new Set(feed.open), entries, isLocal);
      await this.inboxes.inboxEntries(
        groupId,
        entries.filter((e) => isAddressed(mode, e.kind)),
      );
      if (await this.store.advanceReplicaFeed(groupId, from, after, steps)) {
        this.observer.onLocalDelivery?.(groupId, entries);
        return;
      }
    }
    this.log.warn({ groupId, after }, "replica feed moved by other writers ten times; derived on the next delivery");
  }

  /**
   * Commit gossip (seed 000): compare the commits this DS delivered with the hub's commit log.
   * A mismatch means the hub showed different commits for one epoch to different providers.
   */
  async gossip(hub: string, groupId: string, afterEpoch: number): Promise<CommitConflict[]> {
    const ours = await this.store.commitLog(groupId, afterEpoch);
    let theirs: CommitLogEntry[];
    try {
      theirs = (await this.peers.commitLog(hub, groupId, afterEpoch)).entries;
    } catch (err) {
      this.log.warn({ err, groupId, hub }, "commit gossip: hub commit log unavailable");
      return [];
    }
    const hubByEpoch = new Map(theirs.map((e) => [e.epoch, e.sha256]));
    const seen = new Map<number, string>();
    const conflicts: CommitConflict[] = [];
    for (const e of ours) {
      const other = seen.get(e.epoch) ?? hubByEpoch.get(e.epoch);
      if (other !== undefined && other !== e.sha256) conflicts.push({ groupId, epoch: e.epoch, delivered: e.sha256, hub: other });
      seen.set(e.epoch, e.sha256);
    }
    for (const c of conflicts) await this.reportConflict(c);
    return conflicts;
  }

  private async reportConflict(c: CommitConflict): Promise<void> {
    this.log.error({ ...c }, "commit conflict: two different commits for one epoch (hub equivocation)");
    this.observer.onCommitConflict?.(c.groupId, c.epoch);
    const group = await this.store.getGroup(c.groupId);
    const local = (group?.members ?? []).filter((m) => domainOf(m) === this.domain);
    const item: InboxItem = { kind: "notice", id: `cc:${c.groupId}:${c.epoch}`, type: "commit_conflict", body: { ...c } };
    await Promise.all(local.map((m) => this.store.appendInbox(m, [item])));
  }
}

/** A client's catch-up read, gating a sync on its membership (see syncReplica). */
interface Reader {
  admits: (members: string[]) => boolean;
  leftOut: boolean;
}

/** The member list the store keeps after writing `view` (it never moves a replica to an older epoch). */
function membersAfter(local: GroupRecord | undefined, view: GroupView): string[] {
  return !local || view.epoch >= local.epoch ? view.members : local.members;
}

function highestSeq(entries: { seq: number }[]): number {
  let max = 0;
  for (const e of entries) if (e.seq > max) max = e.seq;
  return max;
}

function lowest(values: number[]): number {
  let min = Infinity;
  for (const v of values) if (v < min) min = v;
  return min;
}

function toEntry(m: DeliveredMessage): LogEntry {
  return {
    seq: m.seq,
    kind: m.kind,
    epoch: m.epoch,
    sender: m.sender,
    message: m.message,
    sha256: m.sha256,
    recipients: m.recipients,
  };
}

export function replicaRecord(view: GroupView): Omit<GroupRecord, "nextSeq"> {
  return {
    groupId: view.groupId,
    hub: view.hub,
    mode: view.mode,
    cipherSuite: view.cipherSuite,
    epoch: view.epoch,
    members: view.members,
    owner: view.owner,
    createdAt: 0,
    ...(view.replyTo ? { replyTo: view.replyTo } : {}),
  };
}
