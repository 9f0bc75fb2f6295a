import type { Logger } from "pino";
import { domainOf, userOf, type GroupMode, type InboxItem, type LogEntry, type Store } from "../store/port.js";
import { isAddressed } from "./feeds.js";

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

/** Where verified entries go once they are contiguous: this DS's own inboxes. */
export interface LocalInboxes {
  inboxEntries(groupId: string, entries: LogEntry[]): Promise<void>;
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

/** Fan-outs to at most this many local recipients complete before the submitter is answered. */
export const SYNC_FANOUT_MAX_RECIPIENTS = 100;
/** A group whose background fan-out backlog reaches this many entries answers submitters after their fan-out again. */
export const MAX_BACKGROUND_BACKLOG = 1000;

/**
 * Fan-out: one payload in the group log, a small reference per local recipient's inbox, and one
 * outbox item per remote provider (the outbox worker batches them into `deliver` calls).
 * Per group, dispatches run one after another so inbox order follows seq order on this replica.
 */
interface Batch {
  parts: { entries: LogEntry[]; members?: string[] }[];
  done: Promise<void>;
  mode: GroupMode | undefined;
}

export class Dispatcher implements LocalInboxes {
  private chains = new Map<string, Promise<unknown>>();
  /** Per group: dispatches waiting for the fan-out in progress to finish (they go out together as the next batch). */
  private batches = new Map<string, Batch>();
  /** Groups with a failed fan-out: their dispatch mark stays put so crash recovery redoes everything after it. */
  private failed = new Set<string>();

  constructor(
    private readonly domain: string,
    private readonly store: Store,
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

  /** Entries whose accept left nothing to fan out (SubmitOutcome.settled): only observed. */
  settled(groupId: string, entries: LogEntry[]): void {
    this.observer.onLocalDelivery?.(groupId, entries);
  }

  /**
   * Hub side: fan out freshly accepted entries. `members` is the membership the caller saw when
   * submitting: every peer hosting a member gets every entry (so its replica log has no gaps);
   * recipients cover clients added or removed by the entries themselves.
   */
  dispatch(groupId: string, entries: LogEntry[], members?: string[], mode?: GroupMode): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    // Entries accepted while the group's previous fan-out still runs are coalesced into the next
    // one: one inbox pipeline, one outbox append per peer, one dispatch mark per batch, so a busy
    // group costs round trips per batch, not per message. Batches run in order, sorted by seq.
    let batch = this.batches.get(groupId);
    if (batch) {
      batch.parts.push({ entries, ...(members ? { members } : {}) });
      batch.mode ??= mode;
    } else {
      const fresh: Batch = { parts: [{ entries, ...(members ? { members } : {}) }], done: Promise.resolve(), mode };
      this.batches.set(groupId, fresh);
      fresh.done = this.serial(groupId, () => {
        if (this.batches.get(groupId) === fresh) this.batches.delete(groupId);
        return this.fanOut(groupId, fresh.parts, fresh.mode);
      });
      batch = fresh;
    }
    // Up to SYNC_FANOUT_MAX_RECIPIENTS local recipients the submitter is answered after the fan-out
    // (its fellow members can read the entry as soon as it has the answer). A larger fan-out costs
    // one inbox append per recipient; the submitter is then answered once the entry is ordered and
    // the fan-out completes in the background — still in seq order, and an interrupted one is
    // redone by crash recovery (the group is marked dispatched only at the end) — unless that
    // group's backlog is already MAX_BACKGROUND_BACKLOG entries long (backpressure).
    let local = 0;
    for (const e of entries) {
      // Member-wide entries are read from the group feed (domain/feeds.ts): no inbox write here.
      if (mode && !isAddressed(mode, e.kind)) continue;
      local = Math.max(
        local,
        e.recipients.reduce((n, c) => (domainOf(c) === this.domain ? n + 1 : n), 0),
      );
    }
    const backlog = batch.parts.reduce((n, p) => n + p.entries.length, 0);
    if (local <= SYNC_FANOUT_MAX_RECIPIENTS || backlog >= MAX_BACKGROUND_BACKLOG) return batch.done;
    batch.done.catch((err: unknown) =>
      this.log.error({ err, groupId }, "background fan-out failed; crash recovery will redo it"),
    );
    return Promise.resolve();
  }

  private async fanOut(groupId: string, parts: Batch["parts"], mode: GroupMode | undefined): Promise<void> {
    try {
      await this.fanOutOnce(groupId, parts, mode);
    } catch (err) {
      this.failed.add(groupId);
      throw err;
    }
  }

  private async fanOutOnce(groupId: string, parts: Batch["parts"], mode: GroupMode | undefined): Promise<void> {
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
    // Local members read entries from the group feed (Welcomes included); only a send-group's
    // proposals (addressed to its owner) are written to an inbox here.
    const groupMode = mode ?? (await this.store.getGroup(groupId))?.mode ?? "ordered";
    await this.inboxEntries(
      groupId,
      entries.filter((e) => isAddressed(groupMode, e.kind)),
    );
    for (const [peer, list] of toPeer) {
      await this.store.enqueueOutbox(
        peer,
        list.sort((a, b) => a.seq - b.seq).map((e) => ({ id: `${groupId}:${e.seq}`, groupId, seq: e.seq })),
      );
      this.outbox.notify(peer);
    }
    // After a failed fan-out of this group, a later one must not mark past it (recovery clears this).
    if (!this.failed.has(groupId)) await this.store.markDispatched(groupId, entries.at(-1)!.seq);
    this.observer.onLocalDelivery?.(groupId, entries);
  }

  /**
   * References to `entries` (seq order) into their local recipients' inboxes: one store call for
   * the whole batch. Used for a send-group's proposals only (isAddressed), by the hub's fan-out and
   * by a follower's replica (ReplicaSync); everything else is read from the group feeds.
   */
  async inboxEntries(groupId: string, entries: LogEntry[]): Promise<void> {
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
}
