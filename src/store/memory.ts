import type { StoredGroupInfo } from "../mls/group-info.js";
import { EventEmitter } from "node:events";
import { decideLease, decideRelease, decideSubmit, senderRefusal } from "../domain/ordering.js";
import { systemClock, type Clock } from "../domain/types.js";
import { OWN_REF_GRACE_SECONDS, QUEUE_DEDUPE_TTL_MS } from "./lua/keys.js";
import { MemoryQueue } from "./memory-queue.js";
import { MemoryFeeds } from "./memory-feeds.js";
import { readFeedWith, settlesInAccept, type FeedRead } from "../domain/feeds.js";
import {
  userOf,
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

interface ClientKeys {
  pool: StoredKeyPackage[];
  lastResort: Map<number, StoredKeyPackage>;
}

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

/** Expired revocations are swept once this many are held. */
const REVOKED_PRUNE_AT = 10_000;
/** Delivered log entries stay readable this long by default (a member's catch-up after stale_epoch). */
export const DELIVERED_GRACE_MS = 10 * 60 * 1000;
/** Expired remembered refs and replay ids are swept when a map has doubled since the last sweep. */
const SWEEP_MIN = 1024;

function itemId(item: InboxItem): string {
  return item.kind === "ref" ? `${item.groupId}:${item.seq}` : `n:${item.id}`;
}

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
  private keys = new Map<string, ClientKeys>();
  private refs = new Map<string, { client: string; expiresAt: number }>();
  private devices = new Map<string, { version: number; clients: Set<string> }>();
  private groups = new Map<string, GroupState>();
  private memberships = new Map<string, Set<string>>();
  private feeds = new MemoryFeeds();
  private inboxes = new Map<string, MemoryQueue<InboxItem>>();
  private outboxes = new Map<string, MemoryQueue<OutboxItem>>();
  private seen = new Map<string, number>();
  /** client → {deleted at, forget at} (ms). */
  private revoked = new Map<string, { atMs: number; expiresAtMs: number }>();
  private events = new EventEmitter();
  private integrity: { marker?: StoreMarker; reset?: StoreResetFlag } = {};
  private sweepAt = { refs: SWEEP_MIN, seen: SWEEP_MIN };
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
      dedupeIds: 0,
      queued: 0,
      refs: this.refs.size,
    };
    for (const g of this.groups.values()) {
      out.logEntries += g.log.size;
      out.answers += g.answers.size;
      out.commitLog += g.commitLog.length;
    }
    for (const q of [...this.inboxes.values(), ...this.outboxes.values()]) {
      out.dedupeIds += q.seen.size;
      out.queued += q.entries.length;
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

  // ---- key directory ----
  private clientKeys(client: string): ClientKeys {
    let k = this.keys.get(client);
    if (!k) {
      k = { pool: [], lastResort: new Map() };
      this.keys.set(client, k);
    }
    return k;
  }

  async putKeyPackages(client: string, items: StoredKeyPackage[], maxPerClient: number): Promise<PutKeyPackagesResult> {
    const result: PutKeyPackagesResult = { stored: [], overLimit: [] };
    if (items.length === 0) return result;
    const k = this.clientKeys(client);
    for (const item of items) {
      if (item.lastResort) {
        const previous = k.lastResort.get(item.cipherSuite);
        if (previous) this.refs.delete(previous.ref);
        k.lastResort.set(item.cipherSuite, item);
      } else if (k.pool.some((p) => p.ref === item.ref)) {
        // Same bytes again: already stored, nothing to add.
      } else if (k.pool.length >= maxPerClient) {
        result.overLimit.push(item.ref);
        continue;
      } else {
        k.pool.push(item);
      }
      // Resolvable a while after the package's notAfter (a late Welcome still routes), as on Redis.
      this.refs.set(item.ref, { client, expiresAt: (item.notAfter + OWN_REF_GRACE_SECONDS) * 1000 });
      result.stored.push(item.ref);
    }
    this.sweepRefs();
    return result;
  }

  async listKeyPackages(client: string): Promise<KeyPackageMeta[]> {
    const k = this.keys.get(client);
    if (!k) return [];
    return [...k.pool, ...k.lastResort.values()].map(({ ref, cipherSuite, notAfter, lastResort }) => ({
      ref,
      cipherSuite,
      notAfter,
      lastResort,
    }));
  }

  async deleteKeyPackage(client: string, ref: string): Promise<boolean> {
    const k = this.keys.get(client);
    if (!k) return false;
    const index = k.pool.findIndex((p) => p.ref === ref);
    if (index >= 0) {
      k.pool.splice(index, 1);
      return true;
    }
    for (const [suite, lr] of k.lastResort) {
      if (lr.ref === ref) {
        k.lastResort.delete(suite);
        return true;
      }
    }
    return false;
  }

  async claim(user: string, suites: number[], nowSeconds: number): Promise<ClaimOutcome> {
    const entry = this.devices.get(user);
    if (!entry || entry.clients.size === 0) return { kind: "unknown_user" };
    // Single-client mode: a registered virtual client (user/*) stands for all the user's devices.
    const virtual = `${user}/*`;
    const clients = entry.clients.has(virtual) ? [virtual] : [...entry.clients].sort();
    const usable = (kp: StoredKeyPackage) => kp.notAfter >= nowSeconds;
    for (const c of clients) {
      const k = this.keys.get(c);
      if (k) k.pool = k.pool.filter(usable);
    }
    const serves = (c: string, suite: number) => {
      const k = this.keys.get(c);
      if (!k) return false;
      const lr = k.lastResort.get(suite);
      return k.pool.some((p) => p.cipherSuite === suite) || (lr !== undefined && usable(lr));
    };
    const chosen = suites.find((s) => clients.some((c) => serves(c, s)));
    if (chosen === undefined) {
      const available = new Set<number>();
      for (const c of clients) {
        const k = this.keys.get(c);
        k?.pool.forEach((p) => available.add(p.cipherSuite));
        k?.lastResort.forEach((lr, s) => usable(lr) && available.add(s));
      }
      if (available.size === 0) return { kind: "no_key_package" };
      return { kind: "no_common_suite", available: [...available].sort((a, b) => a - b) };
    }
    const bundles: StoredKeyPackage[] = [];
    const missing: { client: string; reason: "exhausted" | "no_compatible_suite" }[] = [];
    for (const c of clients) {
      const k = this.keys.get(c);
      const index = k ? k.pool.findIndex((p) => p.cipherSuite === chosen) : -1;
      if (k && index >= 0) {
        bundles.push(k.pool.splice(index, 1)[0]!);
        continue;
      }
      const lr = k?.lastResort.get(chosen);
      if (lr && usable(lr)) {
        bundles.push(lr);
        continue;
      }
      const hasAny = k !== undefined && (k.pool.length > 0 || k.lastResort.size > 0);
      missing.push({ client: c, reason: hasAny ? "no_compatible_suite" : "exhausted" });
    }
    return { kind: "ok", cipherSuite: chosen, bundles, missing };
  }

  async resolveRef(ref: string): Promise<string | undefined> {
    const r = this.refs.get(ref);
    if (!r || r.expiresAt < this.clock.nowMs()) return undefined;
    return r.client;
  }

  async rememberRefs(entries: { ref: string; client: string }[], ttlSeconds: number): Promise<void> {
    const expiresAt = this.clock.nowMs() + ttlSeconds * 1000;
    for (const e of entries) if (!this.refs.has(e.ref)) this.refs.set(e.ref, { client: e.client, expiresAt });
    this.sweepRefs();
  }

  private sweepRefs(): void {
    if (this.refs.size < this.sweepAt.refs) return;
    const now = this.clock.nowMs();
    for (const [ref, r] of this.refs) if (r.expiresAt < now) this.refs.delete(ref);
    this.sweepAt.refs = Math.max(SWEEP_MIN, 2 * this.refs.size);
  }

  async registerDevice(client: string): Promise<{ version: number; added: boolean }> {
    const user = userOf(client);
    let entry = this.devices.get(user);
    if (!entry) {
      entry = { version: 0, clients: new Set() };
      this.devices.set(user, entry);
    }
    if (entry.clients.has(client)) return { version: entry.version, added: false };
    entry.clients.add(client);
    entry.version += 1;
    return { version: entry.version, added: true };
  }

  async removeDevice(client: string): Promise<{ version: number; removed: boolean }> {
    const entry = this.devices.get(userOf(client));
    if (!entry || !entry.clients.has(client)) return { version: entry?.version ?? 0, removed: false };
    entry.clients.delete(client);
    entry.version += 1;
    this.keys.delete(client);
    return { version: entry.version, removed: true };
  }

  async listDevices(user: string): Promise<DeviceList> {
    const entry = this.devices.get(user);
    const devices = [...(entry?.clients ?? [])].sort().map((client) => {
      const k = this.keys.get(client);
      const suites = new Set<number>([...(k?.pool.map((p) => p.cipherSuite) ?? []), ...(k?.lastResort.keys() ?? [])]);
      return { client, cipherSuites: [...suites].sort((a, b) => a - b) };
    });
    return { user, version: entry?.version ?? 0, devices };
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
        (g.replica ||
          this.feeds.readByAll(g.record.groupId, g.record.hub, h.entry.seq, (m) => this.feeds.markOf(m, g.record.groupId)));
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
    if (!g || g.replica) return { kind: "none" };
    return readFeedWith(g.record.mode, member, this.feeds.spansOf(groupId, member), afterSeq, (after) =>
      this.readLog(groupId, after, limit),
    );
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
    const added = this.appendCounted(
      client,
      fresh.map((seq) => ({ kind: "ref", groupId: feed.groupId, seq })),
    );
    if (feed.ended && feed.dropIndex) this.memberships.get(client)?.delete(feed.groupId);
    const g = this.groups.get(feed.groupId);
    if (g) this.trim(g);
    return added;
  }

  // ---- inboxes and outboxes ----
  private queue<T>(map: Map<string, MemoryQueue<T>>, key: string): MemoryQueue<T> {
    let q = map.get(key);
    if (!q) {
      q = new MemoryQueue<T>(this.retentionMs);
      map.set(key, q);
    }
    return q;
  }

  async appendInbox(client: string, items: InboxItem[]): Promise<void> {
    this.appendCounted(client, items);
  }

  private appendCounted(client: string, items: InboxItem[]): number {
    const q = this.queue(this.inboxes, client);
    const now = this.clock.nowMs();
    let added = 0;
    for (const item of items) {
      if (!q.append(itemId(item), structuredClone(item), now)) continue;
      if (item.kind === "ref") this.reference(item, 1);
      added += 1;
    }
    if (added > 0) this.events.emit(`inbox:${client}`);
    return added;
  }

  async appendInboxMany(deliveries: { client: string; items: InboxItem[] }[]): Promise<void> {
    for (const d of deliveries) await this.appendInbox(d.client, d.items);
  }

  async readInbox(client: string, afterCursor: number, limit: number) {
    const q = this.inboxes.get(client);
    if (!q) return [];
    return q.entries
      .filter((e) => e.cursor > afterCursor)
      .slice(0, limit)
      .map((e) => ({ cursor: e.cursor, item: structuredClone(e.item) }));
  }

  async ackInbox(client: string, upToCursor: number): Promise<number> {
    const q = this.inboxes.get(client);
    if (!q) return 0;
    // The dedupe ids are kept (for the retention period): an acknowledged item redelivered by a retry must not reappear.
    const gone = q.ack(upToCursor);
    for (const e of gone) if (e.item.kind === "ref") this.reference(e.item, -1);
    return gone.length;
  }

  async inboxDepth(client: string): Promise<number> {
    return this.inboxes.get(client)?.entries.length ?? 0;
  }

  async waitInbox(
    client: string,
    afterCursor: number,
    waitMs: number,
    signal?: AbortSignal,
    watch?: { groups: string[]; settle: () => Promise<void> },
  ): Promise<void> {
    const events = [`inbox:${client}`, ...(watch?.groups ?? []).map((g) => `group:${g}`)];
    let done!: () => void;
    const woken = new Promise<void>((resolve) => {
      done = () => {
        clearTimeout(timer);
        for (const e of events) this.events.off(e, done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
    });
    const timer = setTimeout(done, waitMs);
    for (const e of events) this.events.on(e, done);
    signal?.addEventListener("abort", done);
    // Listening before the check: an accept between the check and the wait still wakes us.
    await watch?.settle();
    const q = this.inboxes.get(client);
    if (q && q.entries.some((e) => e.cursor > afterCursor)) done();
    await woken;
  }

  async enqueueOutbox(peer: string, items: OutboxItem[]): Promise<void> {
    const q = this.queue(this.outboxes, peer);
    const now = this.clock.nowMs();
    for (const item of items) if (q.append(item.id, { ...item }, now)) this.reference(item, 1);
  }

  async peekOutbox(peer: string, limit: number) {
    return (this.outboxes.get(peer)?.entries ?? []).slice(0, limit).map((e) => ({ cursor: e.cursor, item: { ...e.item } }));
  }

  async ackOutbox(peer: string, upToCursor: number): Promise<void> {
    const q = this.outboxes.get(peer);
    if (q) for (const e of q.ack(upToCursor)) this.reference(e.item, -1);
  }

  async outboxStats(peer: string): Promise<{ depth: number; oldestMs?: number }> {
    const entries = this.outboxes.get(peer)?.entries ?? [];
    return { depth: entries.length, ...(entries[0] ? { oldestMs: entries[0].at } : {}) };
  }

  async peersWithOutbox(): Promise<string[]> {
    return [...this.outboxes].filter(([, q]) => q.entries.length > 0).map(([peer]) => peer);
  }

  async rememberOnce(key: string, expiresAtMs: number): Promise<boolean> {
    const now = this.clock.nowMs();
    if (this.seen.size >= this.sweepAt.seen) {
      for (const [k, exp] of this.seen) if (exp < now) this.seen.delete(k);
      this.sweepAt.seen = Math.max(SWEEP_MIN, 2 * this.seen.size);
    }
    const exp = this.seen.get(key);
    if (exp !== undefined && exp >= now) return false;
    this.seen.set(key, expiresAtMs);
    return true;
  }

  // ---- device revocations ----
  async revokeDevice(client: string, atMs: number, ttlMs: number): Promise<void> {
    const now = this.clock.nowMs();
    if (this.revoked.size >= REVOKED_PRUNE_AT)
      for (const [c, r] of this.revoked) if (r.expiresAtMs <= now) this.revoked.delete(c);
    this.revoked.delete(client);
    this.revoked.set(client, { atMs, expiresAtMs: now + ttlMs });
  }

  async deviceRevokedAt(client: string): Promise<number | undefined> {
    const r = this.revoked.get(client);
    if (!r) return undefined;
    if (r.expiresAtMs <= this.clock.nowMs()) {
      this.revoked.delete(client);
      return undefined;
    }
    return r.atMs;
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
