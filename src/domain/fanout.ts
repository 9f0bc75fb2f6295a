import type { Logger } from "pino";
import { sha256Hex } from "../encoding.js";
import {
  domainOf,
  userOf,
  type CommitLogEntry,
  type GroupRecord,
  type InboxItem,
  type LogEntry,
  type Store,
} from "../store/port.js";
import type { GroupView, PeerGateway } from "./types.js";

export interface DeliveredMessage {
  groupId: string;
  seq: number;
  kind: LogEntry["kind"];
  epoch: number;
  sender: string;
  message: string;
  sha256: string;
  recipients: string[];
}

export interface OutboxNotifier {
  notify(peer: string): void;
}

export interface FanoutObserver {
  /** Called for every entry put into local inboxes (metrics). */
  onLocalDelivery?(groupId: string, entries: LogEntry[]): void;
  /** Commit gossip found two different commits for one epoch (equivocation). */
  onCommitConflict?(groupId: string, epoch: number): void;
}

export interface CommitConflict {
  groupId: string;
  epoch: number;
  /** SHA-256 of the commit this DS received for the epoch. */
  delivered: string;
  /** SHA-256 the hub's commit log names for the epoch (or a second delivered commit). */
  hub: string;
}

/** Fan-outs to at most this many local recipients complete before the submitter is answered. */
export const SYNC_FANOUT_MAX_RECIPIENTS = 100;
/** A group whose background fan-out backlog reaches this many entries answers submitters after their fan-out again. */
export const MAX_BACKGROUND_BACKLOG = 1000;

/**
 * Fan-out: one payload in the group log, a small reference per local recipient's inbox, and one
 * outbox item per remote provider (the outbox worker batches them into `deliver` calls).
 * Per group, dispatches run one after another so inbox order follows seq order on this replica.
 */
export class Dispatcher {
  private chains = new Map<string, Promise<unknown>>();
  /** Per group: dispatches waiting for the fan-out in progress to finish (they go out together as the next batch). */
  private batches = new Map<string, { parts: { entries: LogEntry[]; members?: string[] }[]; done: Promise<void> }>();
  /** Groups with a failed fan-out: their dispatch mark stays put so crash recovery redoes everything after it. */
  private failed = new Set<string>();

  constructor(
    private readonly domain: string,
    private readonly store: Store,
    private readonly peers: PeerGateway,
    private readonly outbox: OutboxNotifier,
    private readonly log: Logger,
    private readonly observer: FanoutObserver = {},
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
   * Hub side: fan out freshly accepted entries. `members` is the membership the caller saw when
   * submitting: every peer hosting a member gets every entry (so its replica log has no gaps);
   * recipients cover clients added or removed by the entries themselves.
   */
  dispatch(groupId: string, entries: LogEntry[], members?: string[]): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    // Entries accepted while the group's previous fan-out still runs are coalesced into the next
    // one: one inbox pipeline, one outbox append per peer, one dispatch mark per batch, so a busy
    // group costs round trips per batch, not per message. Batches run in order, sorted by seq.
    let batch = this.batches.get(groupId);
    if (batch) {
      batch.parts.push({ entries, ...(members ? { members } : {}) });
    } else {
      const fresh = { parts: [{ entries, ...(members ? { members } : {}) }], done: Promise.resolve() };
      this.batches.set(groupId, fresh);
      fresh.done = this.serial(groupId, () => {
        if (this.batches.get(groupId) === fresh) this.batches.delete(groupId);
        return this.fanOut(groupId, fresh.parts);
      });
      batch = fresh;
    }
    // Up to SYNC_FANOUT_MAX_RECIPIENTS local recipients the submitter is answered after the fan-out
    // (its fellow members can read the entry as soon as it has the answer). A larger fan-out costs
    // one inbox append per recipient; the submitter is then answered once the entry is ordered and
    // the fan-out completes in the background — still in seq order, and an interrupted one is
    // redone by crash recovery (the group is marked dispatched only at the end) — unless that
    // group's backlog is already MAX_BACKGROUND_BACKLOG entries long (backpressure).
    const local = Math.max(...entries.map((e) => e.recipients.reduce((n, c) => (domainOf(c) === this.domain ? n + 1 : n), 0)));
    const backlog = batch.parts.reduce((n, p) => n + p.entries.length, 0);
    if (local <= SYNC_FANOUT_MAX_RECIPIENTS || backlog >= MAX_BACKGROUND_BACKLOG) return batch.done;
    batch.done.catch((err: unknown) =>
      this.log.error({ err, groupId }, "background fan-out failed; crash recovery will redo it"),
    );
    return Promise.resolve();
  }

  private async fanOut(groupId: string, parts: { entries: LogEntry[]; members?: string[] }[]): Promise<void> {
    try {
      await this.fanOutOnce(groupId, parts);
    } catch (err) {
      this.failed.add(groupId);
      throw err;
    }
  }

  private async fanOutOnce(groupId: string, parts: { entries: LogEntry[]; members?: string[] }[]): Promise<void> {
    const entries = parts.flatMap((p) => p.entries).sort((a, b) => a.seq - b.seq);
    // Each dispatch goes to the peers of the membership its submitter saw (and its own recipients).
    let current: string[] | undefined;
    const toPeer = new Map<string, LogEntry[]>();
    for (const part of parts) {
      const known = part.members ?? (current ??= (await this.store.getGroup(groupId))?.members ?? []);
      const peers = new Set<string>();
      for (const c of known) peers.add(domainOf(c));
      for (const e of part.entries) {
        peers.add(domainOf(e.sender));
        for (const c of e.recipients) peers.add(domainOf(c));
      }
      peers.delete(this.domain);
      for (const peer of peers) {
        const list = toPeer.get(peer);
        if (list) list.push(...part.entries);
        else toPeer.set(peer, [...part.entries]);
      }
    }
    await this.inboxLocal(groupId, entries);
    for (const [peer, list] of toPeer) {
      await this.store.enqueueOutbox(
        peer,
        list.sort((a, b) => a.seq - b.seq).map((e) => ({ id: `${groupId}:${e.seq}`, groupId, seq: e.seq })),
      );
      this.outbox.notify(peer);
    }
    // After a failed fan-out of this group, a later one must not mark past it (recovery clears this).
    if (!this.failed.has(groupId)) await this.store.markDispatched(groupId, Math.max(...entries.map((e) => e.seq)));
    this.observer.onLocalDelivery?.(groupId, entries);
  }

  /** References to `entries` (seq order) into their local recipients' inboxes: one store call for the whole batch. */
  private async inboxLocal(groupId: string, entries: LogEntry[]): Promise<void> {
    const byClient = new Map<string, InboxItem[]>();
    const devicesOf = new Map<string, string[]>();
    for (const e of entries) {
      const item: InboxItem = { kind: "ref", groupId, seq: e.seq };
      const targets = new Set<string>();
      for (const c of e.recipients) {
        if (domainOf(c) !== this.domain) continue;
        if (!c.endsWith("/*")) {
          targets.add(c);
          continue;
        }
        // Single-client mode: what is sent to the virtual client goes to every device of its user.
        let devices = devicesOf.get(c);
        if (!devices) {
          devices = (await this.store.listDevices(userOf(c))).devices.map((d) => d.client).filter((d) => !d.endsWith("/*"));
          devicesOf.set(c, devices);
        }
        for (const d of devices) targets.add(d);
      }
      for (const t of targets) {
        const items = byClient.get(t);
        if (items) items.push(item);
        else byClient.set(t, [item]);
      }
    }
    if (byClient.size > 0) await this.store.appendInboxMany([...byClient].map(([client, items]) => ({ client, items })));
  }

  /** Crash recovery: entries accepted but never fanned out (the process died in between). */
  async recover(): Promise<number> {
    let count = 0;
    for (const { groupId, fromSeq } of await this.store.undispatched()) {
      this.failed.delete(groupId);
      const entries = await this.store.readLog(groupId, fromSeq - 1, 10_000);
      count += entries.length;
      await this.dispatch(groupId, entries);
    }
    if (count > 0) this.log.warn({ count }, "re-dispatched entries left by an interrupted fan-out");
    return count;
  }

  /** Follower side: entries the hub delivered; stored in the replica, inboxed in seq order without gaps. */
  ingest(hub: string, view: GroupView, messages: DeliveredMessage[], requestId?: string): Promise<void> {
    return this.serial(view.groupId, async () => {
      const before = await this.store.contiguousSeq(view.groupId);
      // Hash what we actually received: the hub's sha256 field is not evidence.
      await this.store.putReplicaEntries(
        replicaRecord(view),
        messages.map((m) => ({ ...toEntry(m), sha256: sha256Hex(Buffer.from(m.message, "base64url")) })),
      );
      let after = await this.store.contiguousSeq(view.groupId);
      const highest = Math.max(0, ...messages.map((m) => m.seq));
      if (highest > after) {
        // A gap: fetch the missing range from the hub (the outbox of another hub replica, or lost ordering).
        try {
          await this.pull(hub, view.groupId, requestId);
          after = await this.store.contiguousSeq(view.groupId);
        } catch (e) {
          this.log.warn({ err: e, groupId: view.groupId, hub }, "gap fill from hub failed; will retry on next delivery");
        }
      }
      await this.inboxRange(view.groupId, before, after);
      const commitEpochs = messages.filter((m) => m.kind === "commit").map((m) => m.epoch);
      if (commitEpochs.length > 0) await this.gossip(hub, view.groupId, Math.min(...commitEpochs) - 1, requestId);
    });
  }

  /**
   * Commit gossip (seed 000): compare the commits this DS delivered with the hub's commit log.
   * A mismatch means the hub showed different commits for one epoch to different providers.
   */
  async gossip(hub: string, groupId: string, afterEpoch: number, requestId?: string): Promise<CommitConflict[]> {
    const ours = await this.store.commitLog(groupId, afterEpoch);
    let theirs: CommitLogEntry[];
    try {
      theirs = (await this.peers.commitLog(hub, groupId, afterEpoch, requestId)).entries;
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

  /** Brings the replica up to the hub's log (used by catch-up on a follower). */
  syncReplica(hub: string, groupId: string, requestId?: string): Promise<void> {
    return this.serial(groupId, async () => {
      const before = await this.store.contiguousSeq(groupId);
      await this.pull(hub, groupId, requestId);
      await this.inboxRange(groupId, before, await this.store.contiguousSeq(groupId));
    });
  }

  private async pull(hub: string, groupId: string, requestId?: string): Promise<void> {
    for (;;) {
      const from = await this.store.contiguousSeq(groupId);
      const { group, entries } = await this.peers.messages(hub, groupId, from, 1000, requestId);
      await this.store.putReplicaEntries(replicaRecord(group), entries);
      if (entries.length < 1000) return;
    }
  }

  private async inboxRange(groupId: string, before: number, after: number): Promise<void> {
    if (after <= before) return;
    const entries = await this.store.readLog(groupId, before, after - before);
    await this.inboxLocal(groupId, entries);
    this.observer.onLocalDelivery?.(groupId, entries);
  }
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
