import type { StoredGroupInfo } from "../mls/group-info.js";
import { EventEmitter } from "node:events";
import { asActor, decideLease, decideRelease, decideSubmit, senderRefusal } from "../domain/ordering.js";
import { systemClock, type Clock } from "../domain/types.js";
import { QUEUE_DEDUPE_TTL_MS } from "./lua/keys.js";
import { MemoryFeeds } from "./memory-feeds.js";
import { MemoryKeyDirectory } from "./memory-keydir.js";
import { MemoryQueues } from "./memory-queues.js";
import { readFeedWith, settlesInAccept, type FeedRead, type SpanStep } from "../domain/feeds.js";
import {
  type ClaimOutcome,
  type CommitLogEntry,
  type DeviceList,
  type GroupRecord,
  type InboxItem,
  type KeyPackageMeta,
  type LeaseOutcome,
  type EntryBody,
  type LogEntry,
  type OutboxItem,
  type PersistenceReport,
  type PutKeyPackagesResult,
  type ReplicaWrite,
  type Store,
  type StoredKeyPackage,
  type StoreMarker,
  type StoreResetFlag,
  type Submission,
  type SubmitOutcome,
} from "./port.js";

/** A log entry and what decides when it may go (see MemoryStore.trim). */
interface HeldEntry {
  entry: LogEntry;
  at: number;
  /** Inbox and outbox items still pointing at it. */
  refs: number;
  /** An inbox or outbox item pointed at it once (a replica's entry was fanned out). */
  referenced?: boolean;
  /** When it was last found delivered (fanned out, nothing pointing at it); unset while not. */
  deliveredAt?: number;
}

interface GroupState {
  record: GroupRecord;
  log: Map<number, HeldEntry>;
  /** Every seq up to here was held and is trimmed (it still counts as held: dedupe, contiguity). */
  floor: number;
  /** A replica's seqs the hub had trimmed (skipReplicaGap): first skipped seq → last; never held. */
  skipped?: Map<number, number>;
  /** sha256 → original answer, insertion (= time) order; forgotten after the retention period. */
  answers: Map<string, { seq: number; epoch: number; at: number }>;
  commitLog: { entry: CommitLogEntry; at: number }[];
  groupInfo?: StoredGroupInfo;
  dispatched: number;
  replica: boolean;
  /** A replica's feed is derived through this seq (advanceReplicaFeed); absent: never. */
  feedThrough?: number;
}

export interface MemoryStoreOptions {
  clock?: Clock;
  /**
   * How long answers to submissions (retry dedupe), inbox/outbox dedupe ids, commit-log entries
   * and undelivered log entries are kept: Redis's dedupe window (QUEUE_DEDUPE_TTL_MS) by default.
   */
  retentionMs?: number;
  /** How long a log entry every recipient and peer has is still kept (catch-up reads). */
  deliveredGraceMs?: number;
  /**
   * Trim the logs of groups ordered here (replica logs are always trimmed). On by default: a
   * follower that joins a group later learns where the log starts from the log page's `logStart`
   * (docs/FEDERATION.md). Off keeps every hub log whole (a peer that predates `logStart` would
   * otherwise stall filling its replica from seq 1).
   */
  trimHubLogs?: boolean;
}

/** Delivered log entries stay readable this long by default (a member's catch-up after stale_epoch). */
export const DELIVERED_GRACE_MS = 10 * 60 * 1000;

/**
 * The embedded store: everything in process memory, every decision synchronous (hence atomic).
 * State is lost on exit; use it for development, demos and tests, Redis for deployments.
 *
 * Bounded under churn: answers, dedupe ids and the commit log expire after the retention period,
 * as Redis's dedupe sets do, and a replica's log entry goes once every local recipient has
 * acknowledged it (after DELIVERED_GRACE_MS) or after the retention period. The logs of groups
 * ordered here are trimmed the same way (with `trimHubLogs`, the default) once every local
 * recipient acknowledged an entry and every peer received it: a follower that joins later is
 * told where the log starts (`logStart`) and skips the trimmed part (skipReplicaGap).
 */
export class MemoryStore implements Store {
  readonly kind = "memory" as const;
  private groups = new Map<string, GroupState>();
  private memberships = new Map<string, Set<string>>();
  private feeds = new MemoryFeeds();
  private events = new EventEmitter();
  private integrity: { marker?: StoreMarker; reset?: StoreResetFlag } = {};
  private readonly keydir: MemoryKeyDirectory;
  private readonly queues: MemoryQueues;
  private readonly clock: Clock;
  private readonly retentionMs: number;
  private readonly deliveredGraceMs: number;
  private readonly trimHubLogs: boolean;

  constructor(opts: MemoryStoreOptions = {}) {
    this.trimHubLogs = opts.trimHubLogs ?? true;
    this.clock = opts.clock ?? systemClock;
    this.retentionMs = opts.retentionMs ?? QUEUE_DEDUPE_TTL_MS;
    this.deliveredGraceMs = opts.deliveredGraceMs ?? DELIVERED_GRACE_MS;
    this.events.setMaxListeners(0);
    this.keydir = new MemoryKeyDirectory(this.clock);
    this.queues = new MemoryQueues(this.clock, this.retentionMs, this.events, (item, delta) => this.reference(item, delta));
  }

  async ping(): Promise<void> {}
  async close(): Promise<void> {
    this.events.removeAllListeners();
  }

  /** How much the store holds (for tests and the churn figures in docs/SECURITY.md). */
  sizes(): {
    groups: number;
    logEntries: number;
    answers: number;
    commitLog: number;
    dedupeIds: number;
    queued: number;
    refs: number;
  } {
    const out = {
      groups: this.groups.size,
      logEntries: 0,
      answers: 0,
      commitLog: 0,
      ...this.queues.sizes(),
      refs: this.keydir.refCount(),
    };
    for (const g of this.groups.values()) {
      out.logEntries += g.log.size;
      out.answers += g.answers.size;
      out.commitLog += g.commitLog.length;
    }
    return out;
  }

  // ---- integrity: the memory store never persists, and never comes back empty under a running DS ----
  async persistence(): Promise<PersistenceReport> {
    return { persistent: false, detail: "memory store: state lives in this process only" };
  }
  async readIntegrity(): Promise<{ marker?: StoreMarker; reset?: StoreResetFlag }> {
    return { ...this.integrity };
  }
  async initMarker(marker: StoreMarker): Promise<boolean> {
    if (this.integrity.marker) return false;
    this.integrity.marker = marker;
    return true;
  }
  async flagReset(flag: StoreResetFlag): Promise<void> {
    this.integrity.reset ??= flag;
  }
  async acknowledgeReset(marker: StoreMarker): Promise<void> {
    this.integrity = { marker };
  }
  onReconnect(): void {}

  // ---- key directory (memory-keydir.ts) ----
  putKeyPackages(client: string, items: StoredKeyPackage[], maxPerClient: number): Promise<PutKeyPackagesResult> {
    return this.keydir.putKeyPackages(client, items, maxPerClient);
  }
  listKeyPackages(client: string): Promise<KeyPackageMeta[]> {
    return this.keydir.listKeyPackages(client);
  }
  deleteKeyPackage(client: string, ref: string): Promise<boolean> {
    return this.keydir.deleteKeyPackage(client, ref);
  }
  claim(user: string, suites: number[], nowSeconds: number): Promise<ClaimOutcome> {
    return this.keydir.claim(user, suites, nowSeconds);
  }
  resolveRef(ref: string): Promise<string | undefined> {
    return this.keydir.resolveRef(ref);
  }
  rememberRefs(entries: { ref: string; client: string }[], ttlSeconds: number): Promise<void> {
    return this.keydir.rememberRefs(entries, ttlSeconds);
  }
  registerDevice(client: string): Promise<{ version: number; added: boolean }> {
    return this.keydir.registerDevice(client);
  }
  removeDevice(client: string): Promise<{ version: number; removed: boolean }> {
    return this.keydir.removeDevice(client);
  }
  listDevices(user: string): Promise<DeviceList> {
    return this.keydir.listDevices(user);
  }
  revokeDevice(client: string, atMs: number, ttlMs: number): Promise<void> {
    return this.keydir.revokeDevice(client, atMs, ttlMs);
  }
  deviceRevokedAt(client: string): Promise<number | undefined> {
    return this.keydir.deviceRevokedAt(client);
  }

  // ---- groups ----
  private index(members: string[], groupId: string) {
    for (const m of members) {
      let s = this.memberships.get(m);
      if (!s) {
        s = new Set();
        this.memberships.set(m, s);
      }
      s.add(groupId);
    }
  }

  async createGroup(record: GroupRecord, groupInfo?: { epoch: number; groupInfo: string }): Promise<boolean> {
    if (this.groups.has(record.groupId)) return false;
    this.groups.set(record.groupId, {
      record: structuredClone(record),
      log: new Map(),
      floor: 0,
      answers: new Map(),
      commitLog: [],
      ...(groupInfo ? { groupInfo } : {}),
      dispatched: record.nextSeq - 1,
      replica: false,
    });
    this.index(record.members, record.groupId);
    this.feeds.created(record.groupId, record.members, record.nextSeq - 1);
    return true;
  }

  async getGroup(groupId: string): Promise<GroupRecord | undefined> {
    const g = this.groups.get(groupId);
    return g ? structuredClone(g.record) : undefined;
  }

  async submit(groupId: string, sub: Submission, nowMs: number): Promise<SubmitOutcome> {
    const g = this.groups.get(groupId);
    if (!g || g.replica) return { ok: false, code: "unknown_group" };
    sub = asActor(g.record, sub);
    const refusal = senderRefusal(g.record, sub);
    if (refusal) return refusal;
    this.trim(g);
    const previous = g.answers.get(sub.sha256);
    if (previous) return { ok: true, seq: previous.seq, epoch: previous.epoch, duplicate: true, entries: [] };
    const winner = (epoch: number) => g.commitLog.find((c) => c.entry.epoch === epoch)?.entry.sha256;
    const decision = decideSubmit(g.record, sub, nowMs, winner);
    if (!decision.ok) return decision;
    const before = g.record;
    g.record = decision.group;
    if (!g.record.lease) delete g.record.lease;
    const at = this.clock.nowMs();
    for (const e of decision.entries) g.log.set(e.seq, { entry: e, at, refs: 0 });
    g.answers.set(sub.sha256, { ...decision.answer, at });
    if (decision.groupInfo) g.groupInfo = decision.groupInfo;
    if (decision.commitLog) g.commitLog.push({ entry: decision.commitLog, at });
    this.index(g.record.members, groupId);
    // A member who left stays in the index until its feed is read to the end (FeedReader drops it).
    if (decision.entries[0]!.kind === "commit")
      this.feeds.changed(groupId, before.members, g.record.members, decision.entries[0]!.seq);
    const settled = settlesInAccept(before, g.record.members, decision.entries, g.dispatched);
    if (settled) this.dispatchedThrough(g, decision.entries.at(-1)!.seq);
    this.events.emit(`group:${groupId}`);
    // Joiners do not watch the group yet: their own event wakes a waiting read.
    for (const e of decision.entries) if (e.kind === "welcome") for (const c of e.recipients) this.events.emit(`inbox:${c}`);
    return {
      ok: true,
      ...decision.answer,
      duplicate: false,
      entries: structuredClone(decision.entries),
      ...(settled ? { settled: true as const } : {}),
    };
  }

  async readLog(groupId: string, afterSeq: number, limit: number): Promise<LogEntry[]> {
    const g = this.groups.get(groupId);
    if (!g) return [];
    const out: LogEntry[] = [];
    // Trimmed entries are gone: start after the floor.
    let s = Math.max(afterSeq, g.floor) + 1;
    // Walk densely (a hub's log has no gaps) …
    for (let h = g.log.get(s); h && out.length < limit; h = g.log.get(++s)) out.push(structuredClone(h.entry));
    // … and past a gap (a replica) over the held seqs only: a far-off seq must not make this loop long.
    if (out.length < limit && s < g.record.nextSeq) {
      const rest = [...g.log.keys()].filter((k) => k > s).sort((a, b) => a - b);
      for (const k of rest.slice(0, limit - out.length)) out.push(structuredClone(g.log.get(k)!.entry));
    }
    return out;
  }

  async readEntries(groupId: string, seqs: number[]): Promise<(LogEntry | undefined)[]> {
    const g = this.groups.get(groupId);
    return seqs.map((s) => {
      const h = g?.log.get(s);
      return h ? structuredClone(h.entry) : undefined;
    });
  }

  async readEntryBodies(groupId: string, seqs: number[]): Promise<(EntryBody | undefined)[]> {
    const g = this.groups.get(groupId);
    return seqs.map((s) => {
      const h = g?.log.get(s);
      if (!h) return undefined;
      const { recipients: _dropped, ...body } = h.entry;
      return { ...body };
    });
  }

  async getGroupInfo(groupId: string): Promise<StoredGroupInfo | undefined> {
    const gi = this.groups.get(groupId)?.groupInfo;
    return gi && { ...gi };
  }

  async commitLog(groupId: string, afterEpoch: number): Promise<CommitLogEntry[]> {
    return (this.groups.get(groupId)?.commitLog ?? []).filter((c) => c.entry.epoch > afterEpoch).map((c) => ({ ...c.entry }));
  }

  async acquireLease(groupId: string, holder: string, ttlMs: number, token: string, nowMs: number): Promise<LeaseOutcome> {
    const g = this.groups.get(groupId);
    if (!g || g.replica) return { ok: false, code: "unknown_group" };
    const decision = decideLease(g.record, holder, ttlMs, token, nowMs);
    if (!decision.ok) return decision;
    g.record.lease = decision.lease;
    return decision.outcome;
  }

  async releaseLease(groupId: string, token: string): Promise<boolean> {
    const g = this.groups.get(groupId);
    if (!g || !decideRelease(g.record, token)) return false;
    delete g.record.lease;
    return true;
  }

  async putReplicaEntries(record: Omit<GroupRecord, "nextSeq">, entries: LogEntry[], numberHere = false): Promise<ReplicaWrite> {
    let g = this.groups.get(record.groupId);
    if (g && !g.replica) return { ok: false, code: "ordered_here" };
    // The hub is fixed at first sight: no later write may name another one.
    if (g && g.record.hub !== record.hub) return { ok: false, code: "hub_mismatch", hub: g.record.hub };
    if (!g) {
      g = {
        record: { ...structuredClone(record), nextSeq: 1 },
        log: new Map(),
        floor: 0,
        answers: new Map(),
        commitLog: [],
        dispatched: 0,
        replica: true,
        feedThrough: 0,
      };
      this.groups.set(record.groupId, g);
    }
    const at = this.clock.nowMs();
    const fresh: LogEntry[] = [];
    let nextSeq = g.record.nextSeq;
    const ordered = numberHere ? entries.map((e, i) => ({ ...e, seq: nextSeq + i })) : [...entries].sort((a, b) => a.seq - b.seq);
    for (const e of ordered) {
      if (e.seq <= g.floor || g.log.has(e.seq) || isSkipped(g, e.seq)) continue;
      g.log.set(e.seq, { entry: structuredClone(e), at, refs: 0 });
      if (e.kind === "commit")
        g.commitLog.push({ entry: { epoch: e.epoch, seq: e.seq, sender: e.sender, sha256: e.sha256 }, at });
      if (e.seq + 1 > nextSeq) nextSeq = e.seq + 1;
      fresh.push(e);
    }
    // A late delivery may carry an older view of the group: never move the replica backwards.
    g.record = record.epoch >= g.record.epoch ? { ...structuredClone(record), nextSeq } : { ...g.record, nextSeq };
    this.index(record.members, record.groupId);
    this.trim(g);
    return { ok: true, fresh };
  }

  async contiguousSeq(groupId: string): Promise<number> {
    const g = this.groups.get(groupId);
    if (!g) return 0;
    return contiguous(g);
  }

  async skipReplicaGap(groupId: string, throughSeq: number): Promise<number> {
    const g = this.groups.get(groupId);
    if (!g || !g.replica) return g ? contiguous(g) : 0;
    const from = contiguous(g);
    let lowestHeld = Infinity;
    for (const k of g.log.keys()) if (k > from && k < lowestHeld) lowestHeld = k;
    // Only with an entry held above (proof the group went on), and never past it.
    if (lowestHeld === Infinity) return from;
    const to = Math.min(throughSeq, lowestHeld - 1);
    if (to <= from) return from;
    (g.skipped ??= new Map()).set(from + 1, to);
    this.trim(g);
    return contiguous(g);
  }

  async trimExpiredLogs(beforeMs: number, maxPerGroup: number): Promise<number> {
    if (!this.trimHubLogs) return 0;
    let trimmed = 0;
    for (const g of this.groups.values()) {
      if (g.replica) continue;
      // As TRIM_LOG: from the front, fanned-out entries accepted before beforeMs.
      for (let n = 0; n < maxPerGroup; n++) {
        const h = g.log.get(g.floor + 1);
        if (!h || h.at >= beforeMs || h.entry.seq > g.dispatched) break;
        g.log.delete(g.floor + 1);
        g.floor += 1;
        trimmed += 1;
      }
    }
    return trimmed;
  }

  async logStart(groupId: string): Promise<number> {
    return (this.groups.get(groupId)?.floor ?? 0) + 1;
  }

  async markDispatched(groupId: string, seq: number): Promise<void> {
    const g = this.groups.get(groupId);
    if (g) this.dispatchedThrough(g, seq);
  }

  private dispatchedThrough(g: GroupState, seq: number): void {
    const now = this.clock.nowMs();
    for (let s = Math.max(g.dispatched, g.floor) + 1; s <= seq; s++) {
      const h = g.log.get(s);
      if (h && h.refs === 0) h.deliveredAt ??= now;
    }
    if (seq > g.dispatched) g.dispatched = seq;
    this.trim(g);
  }

  async undispatched(): Promise<{ groupId: string; fromSeq: number }[]> {
    const out: { groupId: string; fromSeq: number }[] = [];
    for (const [groupId, g] of this.groups) {
      if (!g.replica && g.dispatched < g.record.nextSeq - 1) out.push({ groupId, fromSeq: g.dispatched + 1 });
    }
    return out;
  }

  /** An inbox or outbox item now points at (groupId, seq), or no longer does. */
  private reference(item: { groupId: string; seq: number }, delta: 1 | -1): void {
    const g = this.groups.get(item.groupId);
    const h = g?.log.get(item.seq);
    if (!g || !h) return;
    h.refs = Math.max(0, h.refs + delta);
    if (delta > 0) {
      h.referenced = true;
      delete h.deliveredAt;
      return;
    }
    // Delivered: nothing points at it any more, and it was fanned out (a hub) or inboxed (a replica).
    const fannedOut = g.replica ? h.referenced === true : h.entry.seq <= g.dispatched;
    if (h.refs === 0 && fannedOut) {
      h.deliveredAt = this.clock.nowMs();
      this.trim(g);
    }
  }

  /**
   * Drops log entries from the front (so trimmed seqs stay "held" for dedupe and contiguity, as
   * the floor), the expired answers and commit-log entries. An entry goes when it is delivered —
   * fanned out (a hub) or inboxed (a replica), and no inbox or outbox item points at it any more —
   * and DELIVERED_GRACE_MS have passed, or when it is older than the retention period.
   * Amortised: each entry is looked at a bounded number of times between its append and its trim.
   */
  private trim(g: GroupState): void {
    const now = this.clock.nowMs();
    const expired = now - this.retentionMs;
    for (const [sha, a] of g.answers) {
      if (a.at > expired) break;
      g.answers.delete(sha);
    }
    let n = 0;
    while (n < g.commitLog.length && g.commitLog[n]!.at <= expired) n++;
    if (n > 0) g.commitLog.splice(0, n);
    if (!g.replica && !this.trimHubLogs) return;
    for (;;) {
      const h = g.log.get(g.floor + 1);
      const skippedTo = g.skipped?.get(g.floor + 1);
      if (!h && skippedTo !== undefined) {
        g.skipped!.delete(g.floor + 1);
        g.floor = skippedTo;
        continue;
      }
      if (!h) break;
      const delivered =
        h.deliveredAt !== undefined &&
        h.deliveredAt <= now - this.deliveredGraceMs &&
        this.feeds.readByAll(g.record.groupId, g.replica ? undefined : g.record.hub, h.entry.seq, (m) =>
          this.feeds.markOf(m, g.record.groupId),
        );
      if (!delivered && h.at > expired) break;
      g.log.delete(g.floor + 1);
      g.floor += 1;
    }
  }

  async groupsOf(client: string): Promise<string[]> {
    return [...(this.memberships.get(client) ?? [])];
  }

  // ---- group feeds (domain/feeds.ts) ----
  async readFeed(groupId: string, member: string, afterSeq: number, limit: number): Promise<FeedRead> {
    const g = this.groups.get(groupId);
    if (!g || (g.replica && g.feedThrough === undefined)) return { kind: "none" };
    // A replica's feed is read up to where its spans are derived (contiguous, in seq order).
    const upTo = g.replica ? g.feedThrough! : Infinity;
    return readFeedWith(g.record.mode, member, this.feeds.spansOf(groupId, member), afterSeq, async (after) =>
      (await this.readLog(groupId, after, limit)).filter((e) => e.seq <= upTo),
    );
  }

  async replicaFeed(groupId: string): Promise<{ open: string[]; through?: number }> {
    const g = this.groups.get(groupId);
    if (!g?.replica) return { open: [] };
    return { open: this.feeds.openMembers(groupId), ...(g.feedThrough !== undefined ? { through: g.feedThrough } : {}) };
  }

  async advanceReplicaFeed(groupId: string, from: number, through: number, steps: SpanStep[]): Promise<boolean> {
    const g = this.groups.get(groupId);
    if (!g?.replica || (g.feedThrough !== undefined && g.feedThrough !== from)) return false;
    const upTo = Math.min(through, contiguous(g));
    if (upTo <= from) return false;
    const opened = this.feeds.stepped(groupId, steps);
    this.index(opened, groupId);
    g.feedThrough = upTo;
    // Derived entries count as fanned out (trim then waits for the readers' marks, MemoryFeeds.readByAll).
    const now = this.clock.nowMs();
    for (let s = Math.max(from, g.floor) + 1; s <= upTo; s++) {
      const h = g.log.get(s);
      if (h && h.refs === 0) h.deliveredAt ??= now;
    }
    this.events.emit(`group:${groupId}`);
    for (const c of opened) this.events.emit(`inbox:${c}`);
    this.trim(g);
    return true;
  }

  async feedMarks(client: string): Promise<Map<string, number>> {
    return this.feeds.marksOf(client);
  }

  async advanceFeed(
    client: string,
    feed: { key: string; groupId: string; through: number; seqs: number[]; ended: boolean; dropIndex: boolean },
  ): Promise<number> {
    const previous = this.feeds.advance(client, feed.key, feed.through);
    const fresh = feed.seqs.filter((seq) => seq > previous);
    const added = this.queues.appendCounted(
      client,
      fresh.map((seq) => ({ kind: "ref", groupId: feed.groupId, seq })),
    );
    if (feed.ended && feed.dropIndex) this.memberships.get(client)?.delete(feed.groupId);
    const g = this.groups.get(feed.groupId);
    if (g) this.trim(g);
    return added;
  }

  // ---- inboxes, outboxes and the replay cache (memory-queues.ts) ----
  async appendInbox(client: string, items: InboxItem[]): Promise<void> {
    this.queues.appendCounted(client, items);
  }
  async appendInboxMany(deliveries: { client: string; items: InboxItem[] }[]): Promise<void> {
    for (const d of deliveries) await this.appendInbox(d.client, d.items);
  }
  readInbox(client: string, afterCursor: number, limit: number): Promise<{ cursor: number; item: InboxItem }[]> {
    return this.queues.readInbox(client, afterCursor, limit);
  }
  ackInbox(client: string, upToCursor: number): Promise<number> {
    return this.queues.ackInbox(client, upToCursor);
  }
  inboxDepth(client: string): Promise<number> {
    return this.queues.inboxDepth(client);
  }
  waitInbox(...args: Parameters<Store["waitInbox"]>): Promise<void> {
    return this.queues.waitInbox(...args);
  }
  enqueueOutbox(peer: string, items: OutboxItem[]): Promise<void> {
    return this.queues.enqueueOutbox(peer, items);
  }
  peekOutbox(peer: string, limit: number): Promise<{ cursor: number; item: OutboxItem }[]> {
    return this.queues.peekOutbox(peer, limit);
  }
  ackOutbox(peer: string, upToCursor: number): Promise<void> {
    return this.queues.ackOutbox(peer, upToCursor);
  }
  outboxStats(peer: string): Promise<{ depth: number; oldestMs?: number }> {
    return this.queues.outboxStats(peer);
  }
  peersWithOutbox(): Promise<string[]> {
    return this.queues.peersWithOutbox();
  }
  rememberOnce(key: string, expiresAtMs: number): Promise<boolean> {
    return this.queues.rememberOnce(key, expiresAtMs);
  }
}

/** Highest seq held (or trimmed, or skipped) contiguously. */
function contiguous(g: GroupState): number {
  let s = g.floor;
  for (;;) {
    if (g.log.has(s + 1)) s++;
    else {
      const to = g.skipped?.get(s + 1);
      if (to === undefined) return s;
      s = to;
    }
  }
}

/** A seq in a range skipReplicaGap passed over (the hub had trimmed it): never stored later. */
function isSkipped(g: GroupState, seq: number): boolean {
  if (!g.skipped) return false;
  for (const [first, last] of g.skipped) if (seq >= first && seq <= last) return true;
  return false;
}
