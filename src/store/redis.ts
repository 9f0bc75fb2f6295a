import type { RedisTopology } from "../config/redis-topology.js";
import type { StoredGroupInfo } from "../mls/group-info.js";
import { EntryCache } from "./entry-cache.js";
import { systemClock, type Clock } from "../clock.js";
import { StoreUnavailableError, transientRedisReply } from "./errors.js";
import { KeySchema, OWN_REF_GRACE_SECONDS, QUEUE_DEDUPE_TTL_MS, SCAN_COUNT, USER_KEYS, type QueueKeys } from "./lua/keys.js";
import {
  ACQUIRE_LEASE,
  CLEAR_PENDING_INDEX,
  CONTIGUOUS_SEQ,
  SKIP_REPLICA_GAP,
  CREATE_GROUP,
  MARK_DISPATCHED,
  PUT_REPLICA,
  READ_LOG,
  RELEASE_LEASE,
  TRIM_LOG,
} from "./lua/group.js";
import {
  CLAIM,
  DELETE_KEY_PACKAGE,
  LIST_DEVICES,
  LIST_KEY_PACKAGES,
  PUT_KEY_PACKAGES,
  REGISTER_DEVICE,
  REMOVE_DEVICE,
} from "./lua/keydir.js";
import { INBOX_APPEND, QUEUE_ACK, QUEUE_APPEND, QUEUE_READ, QUEUE_STATS } from "./lua/queue.js";
import { callScript, storedRecipients, type EvalCapable, type TypedScript } from "./lua/script.js";
import { SUBMIT, type PendingIndex } from "./lua/submit.js";
import { ADVANCE_FEED, ADVANCE_REPLICA_FEED, READ_FEED } from "./lua/feed.js";
import type { FeedRead, SpanStep } from "../domain/feeds.js";
import { connectRedis, type MasterNode, type RedisCommands, type RedisConnection } from "./redis-connection.js";
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

export interface RedisStoreOptions {
  /** A single node (shorthand for `topology: { kind: "single", url }`). */
  url?: string;
  /** Single node, Redis Cluster or Sentinel (src/config/redis-topology.ts). */
  topology?: RedisTopology;
  /** Every key starts with `<prefix>:`, so several deployments (or test runs) can share one Redis. */
  prefix: string;
  connectTimeoutMs?: number;
  /** Connection errors (node-redis retries them itself once the store is up; commands still reject). */
  onError?: (err: Error) => void;
  /** Time passed to the scripts (dedupe windows, outbox ages); the system clock by default. */
  clock?: Clock;
  /** WAIT for this many replicas before an accepted commit or message is acknowledged (0: no WAIT). */
  waitReplicas?: number;
  waitTimeoutMs?: number;
  /** Bytes of log entry bodies kept in process for members' inbox reads (store/entry-cache.ts); 0: none. */
  entryCacheBytes?: number;
}

/** store.entryCacheBytes by default: room for about 100k entries of a few hundred bytes. */
export const DEFAULT_ENTRY_CACHE_BYTES = 64 << 20;

/** Connects (failing fast at startup instead of retrying forever) and returns the store. */
export async function createRedisStore(opts: RedisStoreOptions): Promise<RedisStore> {
  const topology = opts.topology ?? (opts.url ? { kind: "single" as const, url: opts.url } : undefined);
  if (!topology) throw new Error("Redis store: give a url or a topology");
  const conn = await connectRedis(topology, {
    ...(opts.connectTimeoutMs ? { connectTimeoutMs: opts.connectTimeoutMs } : {}),
    ...(opts.onError ? { onError: opts.onError } : {}),
  });
  return new RedisStore(
    conn,
    new KeySchema(opts.prefix),
    {
      replicas: opts.waitReplicas ?? 0,
      timeoutMs: opts.waitTimeoutMs ?? 1000,
    },
    opts.clock ?? systemClock,
    new EntryCache(opts.entryCacheBytes ?? DEFAULT_ENTRY_CACHE_BYTES),
  );
}

const ACKNOWLEDGE_RESET = "redis.call('SET', KEYS[1], ARGV[1]); redis.call('DEL', KEYS[2]); return 1";

/** CONFIG GET appendonly/save; where CONFIG is not allowed (managed Redis), INFO persistence tells AOF only. */
async function masterPersistence(master: MasterNode): Promise<PersistenceReport> {
  try {
    const config = { ...(await master.configGet("appendonly")), ...(await master.configGet("save")) };
    const aof = config.appendonly === "yes";
    const save = String(config.save ?? "").trim();
    const rdb = save !== "";
    return { persistent: aof || rdb, aof, rdb, detail: `appendonly ${aof ? "yes" : "no"}, save "${save}"` };
  } catch (err) {
    if (transientRedisReply(err) !== undefined) throw err;
    const aof = /^aof_enabled:1\b/m.test(String(await master.info("persistence")));
    if (aof) return { persistent: true, aof, detail: "aof_enabled:1 (INFO persistence; CONFIG GET refused)" };
    return { persistent: undefined, aof, detail: "aof_enabled:0, RDB snapshots unknown (CONFIG GET refused)" };
  }
}

function inboxItemId(item: InboxItem): string {
  return item.kind === "ref" ? `${item.groupId}:${item.seq}` : `n:${item.id}`;
}

/**
 * The Redis adapter of the Store port; behaves like MemoryStore (the contract suite runs on both).
 * Every decision is one Lua script over the keys of one hash tag (see lua/keys.ts for the layout).
 */
export class RedisStore implements Store {
  readonly kind = "redis" as const;
  private readonly waiters = new Set<() => void>();
  private closed = false;
  /** groupId → the replica epoch whose members this process last indexed (putReplicaEntries). */
  private readonly indexedReplicaEpochs = new Map<string, number>();
  /** Commands routed by key (node-redis follows MOVED/ASK and failovers). */
  private readonly client: RedisCommands;

  constructor(
    readonly connection: RedisConnection,
    private readonly keys: KeySchema,
    private readonly durability: { replicas: number; timeoutMs: number },
    private readonly clock: Clock = systemClock,
    private readonly bodies = new EntryCache(DEFAULT_ENTRY_CACHE_BYTES),
  ) {
    this.client = connection.commands;
    // A reconnect may be to a Redis that lost writes (restarted empty, failed over): a seq may name other bytes there.
    connection.onReady(() => this.bodies.clear());
  }

  /** The connection the rate limiter shares. */
  get rateLimiterClient(): unknown {
    return this.connection.rateLimiterClient;
  }

  private call<In, Out>(script: TypedScript<In, Out>, input: In): Promise<Out> {
    return callScript(this.client as unknown as EvalCapable, script, input);
  }

  /**
   * store.waitReplicas: an accepted write is acknowledged only once that many replicas hold it
   * (WAIT on the master that made it). Too few in time: 503, and the retry (same bytes, same
   * answer) waits again.
   */
  private async replicated(...keys: string[]): Promise<void> {
    const { replicas, timeoutMs } = this.durability;
    if (replicas <= 0 || keys.length === 0) return;
    const acked = await this.connection.wait(keys, replicas, timeoutMs);
    if (acked < replicas) {
      throw new StoreUnavailableError(
        `only ${acked} of ${replicas} Redis replicas acknowledged the write within ${timeoutMs} ms`,
      );
    }
  }

  async ping(): Promise<void> {
    await this.client.ping();
  }

  // ---- integrity (store/integrity.ts decides; these only read and write) ----
  /**
   * Every master's persistence (one in a single node or Sentinel set, each shard's in a cluster):
   * persistent only if all of them are, since any master may hold a group's keys.
   */
  async persistence(): Promise<PersistenceReport> {
    const masters = await this.connection.masters();
    const reports = await Promise.all(masters.map((m) => masterPersistence(m)));
    if (reports.length === 1) return reports[0]!;
    const all = (pick: (r: PersistenceReport) => boolean | undefined) =>
      reports.some((r) => pick(r) === false) ? false : reports.every((r) => pick(r) === true) ? true : undefined;
    const aof = all((r) => r.aof);
    const rdb = all((r) => r.rdb);
    return {
      persistent: all((r) => r.persistent),
      ...(aof !== undefined ? { aof } : {}),
      ...(rdb !== undefined ? { rdb } : {}),
      detail: reports.map((r, i) => `master ${i + 1}/${reports.length}: ${r.detail}`).join("; "),
    };
  }

  async readIntegrity(): Promise<{ marker?: StoreMarker; reset?: StoreResetFlag }> {
    const [marker, reset] = await Promise.all([
      this.client.get(this.keys.storeMarker()),
      this.client.get(this.keys.storeReset()),
    ]);
    return {
      ...(marker != null ? { marker: JSON.parse(String(marker)) as StoreMarker } : {}),
      ...(reset != null ? { reset: JSON.parse(String(reset)) as StoreResetFlag } : {}),
    };
  }

  async initMarker(marker: StoreMarker): Promise<boolean> {
    return (await this.client.set(this.keys.storeMarker(), JSON.stringify(marker), { condition: "NX" })) !== null;
  }

  async flagReset(flag: StoreResetFlag): Promise<void> {
    await this.client.set(this.keys.storeReset(), JSON.stringify(flag), { condition: "NX" });
  }

  async acknowledgeReset(marker: StoreMarker): Promise<void> {
    // One script, not MULTI: atomic on every topology (both keys carry the {store} hash tag, one slot).
    await this.client.eval(ACKNOWLEDGE_RESET, {
      keys: [this.keys.storeMarker(), this.keys.storeReset()],
      arguments: [JSON.stringify(marker)],
    });
  }

  onReconnect(listener: () => void): void {
    this.connection.onReady(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const wake of [...this.waiters]) wake();
    await this.connection.close();
  }

  // ---- key directory ----
  private userBase(client: string): string {
    return this.keys.userBase(userOf(client));
  }

  async putKeyPackages(client: string, items: StoredKeyPackage[], maxPerClient: number): Promise<PutKeyPackagesResult> {
    const result: PutKeyPackagesResult = { stored: [], overLimit: [] };
    if (items.length === 0) return result;
    const rows = await this.call(PUT_KEY_PACKAGES, { base: this.userBase(client), client, maxPerClient, items });
    // Replay the ref index changes in item order (a replaced last-resort ref stops resolving).
    const refs = new Map<string, StoredKeyPackage | null>();
    rows.forEach(({ stored, replacedRef }, i) => {
      const it = items[i]!;
      if (!stored) return void result.overLimit.push(it.ref);
      if (replacedRef) refs.set(replacedRef, null);
      refs.set(it.ref, it);
      result.stored.push(it.ref);
    });
    const nowS = this.clock.nowMs() / 1000;
    await Promise.all(
      [...refs].map(([ref, it]) =>
        it
          ? this.client.set(this.keys.ref(ref), client, {
              expiration: { type: "EXAT", value: Math.ceil(Math.max(it.notAfter, nowS) + OWN_REF_GRACE_SECONDS) },
            })
          : this.client.del(this.keys.ref(ref)),
      ),
    );
    return result;
  }

  listKeyPackages(client: string): Promise<KeyPackageMeta[]> {
    return this.call(LIST_KEY_PACKAGES, { base: this.userBase(client), client });
  }

  deleteKeyPackage(client: string, ref: string): Promise<boolean> {
    return this.call(DELETE_KEY_PACKAGE, { base: this.userBase(client), client, ref });
  }

  claim(user: string, suites: number[], nowSeconds: number): Promise<ClaimOutcome> {
    return this.call(CLAIM, { base: this.keys.userBase(user), suites, nowSeconds });
  }

  async resolveRef(ref: string): Promise<string | undefined> {
    return (await this.client.get(this.keys.ref(ref))) ?? undefined;
  }

  async rememberRefs(entries: { ref: string; client: string }[], ttlSeconds: number): Promise<void> {
    if (ttlSeconds <= 0) return; // already expired: nothing a lookup could see
    const ms = Math.ceil(ttlSeconds * 1000);
    await Promise.all(
      entries.map((e) =>
        this.client.set(this.keys.ref(e.ref), e.client, { condition: "NX", expiration: { type: "PX", value: ms } }),
      ),
    );
  }

  registerDevice(client: string): Promise<{ version: number; added: boolean }> {
    return this.call(REGISTER_DEVICE, { base: this.userBase(client), client });
  }

  removeDevice(client: string): Promise<{ version: number; removed: boolean }> {
    return this.call(REMOVE_DEVICE, { base: this.userBase(client), client });
  }

  async listDevices(user: string): Promise<DeviceList> {
    return { user, ...(await this.call(LIST_DEVICES, { base: this.keys.userBase(user) })) };
  }

  // ---- groups ----
  /**
   * The per-client membership sets live in other slots than the group, so they are written right
   * after the group script; what they owe is recorded atomically with the accept (SUBMIT's
   * pendingIndex) and finished by crash recovery if the process dies in between.
   */
  private async index(groupId: string, members: string[]): Promise<void> {
    await Promise.all(members.map((m) => this.client.sAdd(this.keys.memberships(m), groupId)));
  }

  /**
   * Writes what the accept recorded as owed to the membership index, then clears the record (if
   * unchanged). Members who left are not dropped here: they stay until they have read their feed
   * to its end (the removing commit), which FeedReader does with advanceFeed.
   */
  private async applyIndex(groupId: string, owed: PendingIndex): Promise<void> {
    await this.index(groupId, owed.members);
    await this.call(CLEAR_PENDING_INDEX, { keys: this.keys.group(groupId), pending: owed.pending });
  }

  async createGroup(record: GroupRecord, groupInfo?: { epoch: number; groupInfo: string }): Promise<boolean> {
    const k = this.keys.group(record.groupId);
    const created = await this.call(CREATE_GROUP, { keys: k, record, ...(groupInfo ? { groupInfo } : {}) });
    if (created) await this.replicated(k.record);
    if (created) await this.index(record.groupId, record.members);
    return created;
  }

  async getGroup(groupId: string): Promise<GroupRecord | undefined> {
    const h = (await this.client.hGetAll(this.keys.group(groupId).record)) as Record<string, string>;
    if (h.groupId === undefined) return undefined;
    const record: GroupRecord = {
      groupId: h.groupId,
      hub: h.hub!,
      mode: h.mode as GroupRecord["mode"],
      cipherSuite: Number(h.cipherSuite),
      epoch: Number(h.epoch),
      nextSeq: Number(h.nextSeq),
      members: JSON.parse(h.members!) as string[],
      owner: h.owner!,
      createdAt: Number(h.createdAt),
    };
    if (h.replyTo !== undefined) record.replyTo = h.replyTo;
    if (h.leaseToken !== undefined)
      record.lease = { token: h.leaseToken, holder: h.leaseHolder!, expiresAt: Number(h.leaseExpiresAt) };
    return record;
  }

  async submit(groupId: string, sub: Submission, nowMs: number): Promise<SubmitOutcome> {
    const k = this.keys.group(groupId);
    const wake = { channel: this.keys.groupChannel(groupId), publish: this.connection.publishCommand };
    const result = await this.call(SUBMIT, { keys: k, submission: sub, nowMs, wake });
    if (!result.ok) return result;
    // A retry's duplicate answer waits too: the first attempt may have failed at this very point.
    await this.replicated(k.record);
    const { index, ...outcome } = result;
    // Only when the roster changed (re-adding every member on every commit cost one SADD per
    // member per commit); rewritten in full, which also repairs it.
    if (index) await this.applyIndex(groupId, index);
    // Joiners do not watch the group's wake-up yet: their own channels tell a waiting read.
    const welcome = outcome.duplicate ? undefined : outcome.entries.find((e) => e.kind === "welcome");
    if (welcome) await this.wakeInboxes(welcome.recipients);
    // The members read what was just accepted: their inbox reads find it here (same fields as stored).
    if (!outcome.duplicate) for (const e of outcome.entries) this.bodies.set(groupId, withoutRecipients(e));
    return outcome;
  }

  /** Wakes the clients' waiting reads (their inbox channels) from outside a script. */
  private async wakeInboxes(clients: string[]): Promise<void> {
    const sharded = this.connection.publishCommand === "SPUBLISH";
    await Promise.all(
      clients.map((c) => {
        const channel = this.keys.inboxChannel(c);
        return sharded ? this.client.sPublish(channel, "1") : this.client.publish(channel, "1");
      }),
    );
  }

  async readLog(groupId: string, afterSeq: number, limit: number): Promise<LogEntry[]> {
    if (limit <= 0) return [];
    return this.call(READ_LOG, { keys: this.keys.group(groupId), afterSeq, limit });
  }

  async readEntries(groupId: string, seqs: number[]): Promise<(LogEntry | undefined)[]> {
    if (seqs.length === 0) return [];
    // An entry keeps its recipients beside it ('r<seq>', see SUBMIT and PUT_REPLICA); a replica entry
    // stored by an earlier version holds them inline.
    const rows = await this.client.hmGet(
      this.keys.group(groupId).log,
      seqs.flatMap((s) => [String(s), `r${s}`]),
    );
    return seqs.map((_, i) => {
      const body = rows[2 * i];
      if (body == null) return undefined;
      const entry = JSON.parse(String(body)) as LogEntry;
      const recipients = rows[2 * i + 1];
      return recipients == null ? entry : { ...entry, recipients: storedRecipients(String(recipients), entry.sender) };
    });
  }

  /** From the entry cache where it holds them (every member reads the same entries), the rest in one HMGET. */
  async readEntryBodies(groupId: string, seqs: number[]): Promise<(EntryBody | undefined)[]> {
    const out = seqs.map((seq) => this.bodies.get(groupId, seq));
    const missing = seqs.filter((_, i) => out[i] === undefined);
    if (missing.length === 0) return out;
    const rows = await this.client.hmGet(this.keys.group(groupId).log, missing.map(String));
    const read = new Map<number, EntryBody>();
    rows.forEach((r, i) => {
      if (r == null) return;
      const body = withoutRecipients(JSON.parse(String(r)) as EntryBody);
      read.set(missing[i]!, body);
      this.bodies.set(groupId, body);
    });
    return seqs.map((seq, i) => out[i] ?? read.get(seq));
  }

  async getGroupInfo(groupId: string): Promise<StoredGroupInfo | undefined> {
    const [epoch, info, tree] = await this.client.hmGet(this.keys.group(groupId).groupInfo, ["epoch", "info", "tree"]);
    if (info == null) return undefined;
    return { epoch: Number(epoch), groupInfo: String(info), ...(tree != null ? { ratchetTree: String(tree) } : {}) };
  }

  async commitLog(groupId: string, afterEpoch: number): Promise<CommitLogEntry[]> {
    const rows = await this.client.zRangeByScore(this.keys.group(groupId).commitLog, `(${afterEpoch}`, "+inf");
    return rows.map((r) => JSON.parse(String(r)) as CommitLogEntry);
  }

  async acquireLease(groupId: string, holder: string, ttlMs: number, token: string, nowMs: number): Promise<LeaseOutcome> {
    return this.call(ACQUIRE_LEASE, { keys: this.keys.group(groupId), holder, ttlMs, token, nowMs });
  }

  async releaseLease(groupId: string, token: string): Promise<boolean> {
    return this.call(RELEASE_LEASE, { keys: this.keys.group(groupId), token });
  }

  async putReplicaEntries(record: Omit<GroupRecord, "nextSeq">, entries: LogEntry[], numberHere = false): Promise<ReplicaWrite> {
    const k = this.keys.group(record.groupId);
    const written = await this.call(PUT_REPLICA, { keys: k, record, entries, numberHere });
    if (!written.ok) return written;
    await this.replicated(k.record);
    // The view's members change only with the epoch: index them once per epoch seen, not per delivery.
    if (this.indexedReplicaEpochs.get(record.groupId) !== record.epoch) {
      await this.index(record.groupId, record.members);
      if (this.indexedReplicaEpochs.size >= 10_000) this.indexedReplicaEpochs.clear();
      this.indexedReplicaEpochs.set(record.groupId, record.epoch);
    }
    return written;
  }

  async contiguousSeq(groupId: string): Promise<number> {
    return this.call(CONTIGUOUS_SEQ, { keys: this.keys.group(groupId) });
  }

  async skipReplicaGap(groupId: string, throughSeq: number): Promise<number> {
    const k = this.keys.group(groupId);
    const contig = await this.call(SKIP_REPLICA_GAP, { keys: k, throughSeq });
    await this.replicated(k.record);
    return contig;
  }

  /** Where a hub log starts (TRIM_LOG moves it); 1 when nothing was trimmed. */
  async logStart(groupId: string): Promise<number> {
    const [start] = await this.client.hmGet(this.keys.group(groupId).record, ["logStart"]);
    return Number(start ?? 1);
  }

  /** Retention of hub logs: SCANs group records on every master, one TRIM_LOG per group ordered here. */
  async trimExpiredLogs(beforeMs: number, maxPerGroup: number): Promise<number> {
    let trimmed = 0;
    for (const node of await this.connection.masters()) {
      for await (const batch of node.scanIterator({ MATCH: this.keys.groupRecordPattern(), COUNT: SCAN_COUNT })) {
        for (const key of batch.map(String)) {
          const [groupId] = await node.hmGet(key, ["groupId"]);
          if (groupId == null) continue;
          trimmed += await this.call(TRIM_LOG, { keys: this.keys.group(String(groupId)), beforeMs, max: maxPerGroup });
        }
      }
    }
    return trimmed;
  }

  async markDispatched(groupId: string, seq: number): Promise<void> {
    await this.call(MARK_DISPATCHED, { keys: this.keys.group(groupId), seq });
  }

  /**
   * Crash-recovery path (startup, then every 30 s): SCANs the group records rather than keeping a
   * cross-slot index — on every master of a cluster (each holds its own slots' keys). On the way it
   * finishes membership-index updates an accept recorded but nobody wrote (see SUBMIT).
   */
  async undispatched(): Promise<{ groupId: string; fromSeq: number }[]> {
    const out: { groupId: string; fromSeq: number }[] = [];
    for (const node of await this.connection.masters()) {
      const seen = new Set<string>();
      for await (const batch of node.scanIterator({ MATCH: this.keys.groupRecordPattern(), COUNT: SCAN_COUNT })) {
        const fresh = batch.map(String).filter((key) => !seen.has(key) && seen.add(key));
        const fields = ["groupId", "replica", "dispatched", "nextSeq", "members", "pendingIndex"];
        const rows = await Promise.all(fresh.map((key) => node.hmGet(key, fields)));
        for (const [groupId, replica, dispatched, nextSeq, members, pending] of rows) {
          if (groupId == null || replica !== "0") continue;
          // A membership index update the accept recorded but that never ran (the process died).
          if (pending != null) {
            const owed = { members: JSON.parse(String(members)) as string[], removed: JSON.parse(String(pending)) as string[] };
            await this.applyIndex(String(groupId), { ...owed, pending: String(pending) });
          }
          if (Number(dispatched) < Number(nextSeq) - 1) out.push({ groupId: String(groupId), fromSeq: Number(dispatched) + 1 });
        }
      }
    }
    return out;
  }

  async groupsOf(client: string): Promise<string[]> {
    return (await this.client.sMembers(this.keys.memberships(client))).map(String);
  }

  // ---- group feeds (domain/feeds.ts, lua/feed.ts) ----
  readFeed(groupId: string, member: string, afterSeq: number, limit: number): Promise<FeedRead> {
    return this.call(READ_FEED, { keys: this.keys.group(groupId), member, afterSeq, limit });
  }

  async replicaFeed(groupId: string): Promise<{ open: string[]; through?: number }> {
    const k = this.keys.group(groupId);
    const [[replica, through], spans] = await Promise.all([
      this.client.hmGet(k.record, ["replica", "feedThrough"]),
      this.client.hGetAll(k.spans),
    ]);
    if (replica !== "1") return { open: [] };
    const open = Object.entries(spans as Record<string, string>)
      .filter(([, text]) => text.endsWith(":"))
      .map(([member]) => member);
    return { open, ...(through != null ? { through: Number(through) } : {}) };
  }

  async advanceReplicaFeed(groupId: string, from: number, through: number, steps: SpanStep[]): Promise<boolean> {
    const keys = this.keys.group(groupId);
    const ok = await this.call(ADVANCE_REPLICA_FEED, {
      keys,
      from,
      through,
      steps,
      channel: this.keys.groupChannel(groupId),
      publish: this.connection.publishCommand,
    });
    if (!ok) return false;
    await this.replicated(keys.record);
    // The index sets live in the clients' slots: written after, as for an accept (a write lost to a
    // crash is redone by the restarted process's first putReplicaEntries, which indexes the view).
    const opened = [...new Set(steps.filter((s) => s.op === "open").map((s) => s.client))];
    await this.index(groupId, opened);
    await this.wakeInboxes(opened);
    return true;
  }

  async feedMarks(client: string): Promise<Map<string, number>> {
    const h = await this.client.hGetAll(this.keys.feedMarks(client));
    return new Map(Object.entries(h as Record<string, string>).map(([k, v]) => [k, Number(v)]));
  }

  async advanceFeed(
    client: string,
    feed: { key: string; groupId: string; through: number; seqs: number[]; ended: boolean; dropIndex: boolean },
  ): Promise<number> {
    const added = await this.call(ADVANCE_FEED, {
      inbox: this.keys.inbox(client),
      marks: this.keys.feedMarks(client),
      memberships: this.keys.memberships(client),
      nowMs: this.clock.nowMs(),
      dedupeTtlMs: QUEUE_DEDUPE_TTL_MS,
      channel: this.keys.inboxChannel(client),
      publish: this.connection.publishCommand,
      ...feed,
    });
    if (added > 0) await this.replicated(this.keys.inbox(client).queue);
    return added;
  }

  // ---- inboxes and outboxes ----
  private async read(q: QueueKeys, min: string, limit: number): Promise<{ cursor: number; json: string }[]> {
    if (limit <= 0) return [];
    return this.call(QUEUE_READ, { keys: q, min, limit });
  }

  async appendInbox(client: string, items: InboxItem[]): Promise<void> {
    await this.appendInboxMany([{ client, items }]);
  }

  /**
   * One EVALSHA per recipient (the script also PUBLISHes the wake-up that long-polls on every
   * replica listen to), all issued in the same tick: node-redis writes them as one pipeline, so a
   * fan-out to N clients is one round trip and N commands, not N round trips of two commands.
   */
  async appendInboxMany(deliveries: { client: string; items: InboxItem[] }[]): Promise<void> {
    const nowMs = this.clock.nowMs();
    // Every command is under the connection's shared deadline (command-deadlines.ts): no timer per append.
    const client = this.client as unknown as EvalCapable;
    const publish = this.connection.publishCommand;
    const live = deliveries.filter((d) => d.items.length > 0);
    if (live.length === 0) return;
    await Promise.all(
      live.map((d) => {
        const items = d.items.map((item) => ({ id: inboxItemId(item), json: JSON.stringify(item) }));
        const channel = this.keys.inboxChannel(d.client);
        const input = { keys: this.keys.inbox(d.client), nowMs, dedupeTtlMs: QUEUE_DEDUPE_TTL_MS, channel, publish, items };
        return callScript(client, INBOX_APPEND, input);
      }),
    );
    const touched = live.map((d) => this.keys.inbox(d.client).queue);
    // Deliveries are part of what a submitter is told is done: one WAIT per master touched.
    await this.replicated(...touched);
  }

  async readInbox(client: string, afterCursor: number, limit: number): Promise<{ cursor: number; item: InboxItem }[]> {
    const rows = await this.read(this.keys.inbox(client), `(${afterCursor}`, limit);
    const out: { cursor: number; item: InboxItem }[] = [];
    for (const r of rows) {
      const item = JSON.parse(r.json) as InboxItem | FeedRefs;
      if (item.kind !== "refs") out.push({ cursor: r.cursor, item });
      // A feed page (ADVANCE_FEED): one reference per seq, on consecutive cursors from `first`.
      else
        item.seqs.forEach((seq, i) => {
          if (item.first + i > afterCursor)
            out.push({ cursor: item.first + i, item: { kind: "ref", groupId: item.groupId, seq } });
        });
      if (out.length >= limit) break;
    }
    return out.slice(0, limit);
  }

  async ackInbox(client: string, upToCursor: number): Promise<number> {
    const q = this.keys.inbox(client);
    return this.call(QUEUE_ACK, { keys: q, upToCursor });
  }

  async inboxDepth(client: string): Promise<number> {
    return this.client.zCard(this.keys.inbox(client).queue);
  }

  async waitInbox(
    client: string,
    afterCursor: number,
    waitMs: number,
    signal?: AbortSignal,
    watch?: { groups: string[]; settle: () => Promise<void> },
  ): Promise<void> {
    if (this.closed || signal?.aborted) return;
    let fired = false;
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => {
      wake = () => {
        fired = true;
        resolve();
      };
    });
    const timer = setTimeout(wake, waitMs);
    signal?.addEventListener("abort", wake, { once: true });
    this.waiters.add(wake);
    // The client's inbox channel and one per group it reads (a group's accept publishes once).
    const channels = [this.keys.inboxChannel(client), ...(watch?.groups ?? []).map((g) => this.keys.groupChannel(g))];
    const listener = () => wake();
    let finished = false;
    let subscribed = false;
    const unsubscribe = () => void Promise.all(channels.map((c) => this.connection.unsubscribe(c, listener))).catch(() => {});
    // Subscribe before checking, so an append between the check and the wait still wakes us.
    const subscribing = Promise.all(channels.map((c) => this.connection.subscribe(c, listener)))
      .then(() => {
        subscribed = true;
        if (finished) unsubscribe();
      })
      .catch(() => {}); // no pub/sub: the timer still bounds the wait
    try {
      await Promise.race([subscribing, woken]);
      if (fired) return;
      await watch?.settle();
      if (fired) return;
      if ((await this.client.zCount(this.keys.inbox(client).queue, `(${afterCursor}`, "+inf")) > 0) return;
      await woken;
    } finally {
      finished = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", wake);
      this.waiters.delete(wake);
      if (subscribed) unsubscribe();
    }
  }

  async enqueueOutbox(peer: string, items: OutboxItem[]): Promise<void> {
    if (items.length === 0) return;
    const at = this.clock.nowMs();
    await this.call(QUEUE_APPEND, {
      keys: this.keys.outbox(peer),
      nowMs: at,
      dedupeTtlMs: QUEUE_DEDUPE_TTL_MS,
      items: items.map((item) => ({ id: item.id, json: JSON.stringify({ at, item }) })),
    });
    await this.client.sAdd(this.keys.outboxPeers(), peer);
    await this.replicated(this.keys.outbox(peer).queue);
  }

  async peekOutbox(peer: string, limit: number): Promise<{ cursor: number; item: OutboxItem }[]> {
    const rows = await this.read(this.keys.outbox(peer), "-inf", limit);
    return rows.map((r) => ({ cursor: r.cursor, item: (JSON.parse(r.json) as { item: OutboxItem }).item }));
  }

  async ackOutbox(peer: string, upToCursor: number): Promise<void> {
    const q = this.keys.outbox(peer);
    await this.call(QUEUE_ACK, { keys: q, upToCursor });
  }

  async outboxStats(peer: string): Promise<{ depth: number; oldestMs?: number }> {
    const q = this.keys.outbox(peer);
    const { depth, oldest } = await this.call(QUEUE_STATS, { keys: q });
    return { depth, ...(oldest ? { oldestMs: (JSON.parse(oldest) as { at: number }).at } : {}) };
  }

  async peersWithOutbox(): Promise<string[]> {
    const peers = (await this.client.sMembers(this.keys.outboxPeers())).map(String);
    const depths = await Promise.all(peers.map((p) => this.client.zCard(this.keys.outbox(p).queue)));
    return peers.filter((_, i) => depths[i]! > 0);
  }

  async rememberOnce(key: string, expiresAtMs: number): Promise<boolean> {
    const at = Math.max(1, Math.ceil(expiresAtMs));
    const reply = await this.client.set(this.keys.replay(key), "1", { condition: "NX", expiration: { type: "PXAT", value: at } });
    return reply !== null;
  }

  // ---- device revocations ----
  async revokeDevice(client: string, atMs: number, ttlMs: number): Promise<void> {
    const key = this.userBase(client) + USER_KEYS.revoked + client;
    await this.client.set(key, String(atMs), { expiration: { type: "PX", value: Math.max(1, Math.ceil(ttlMs)) } });
  }

  async deviceRevokedAt(client: string): Promise<number | undefined> {
    const value = await this.client.get(this.userBase(client) + USER_KEYS.revoked + client);
    return value === null ? undefined : Number(value);
  }
}

/** An entry without its recipient list (an entry a replica stored before 'r<seq>' holds it inline). */
function withoutRecipients(e: EntryBody & { recipients?: unknown }): EntryBody {
  const { recipients: _dropped, ...body } = e;
  return body;
}

/** A feed page in a Redis inbox (lua/feed.ts ADVANCE_FEED): references on consecutive cursors. */
interface FeedRefs {
  kind: "refs";
  groupId: string;
  first: number;
  seqs: number[];
}
