import type { FeedRead, SpanStep } from "../domain/feeds.js";
import type { StoredGroupInfo } from "../mls/group-info.js";
/**
 * The Store port: every piece of state a DS replica shares with its siblings. Two adapters
 * (memory.ts, redis.ts) implement it and one contract suite (test/store-contract) runs on both.
 * Every method that decides something (claim, submit, lease) is atomic in both adapters.
 */

export interface StoredKeyPackage {
  ref: string;
  client: string;
  cipherSuite: number;
  /** Seconds since the epoch. */
  notAfter: number;
  lastResort: boolean;
  identityKey: string;
  /** base64url MLSMessage bytes, served as uploaded. */
  keyPackage: string;
}

export type KeyPackageMeta = Omit<StoredKeyPackage, "keyPackage" | "identityKey" | "client">;

export interface PutKeyPackagesResult {
  stored: string[];
  /** Refs refused because the client's pool is full. */
  overLimit: string[];
}

export type ClaimOutcome =
  | {
      kind: "ok";
      cipherSuite: number;
      bundles: StoredKeyPackage[];
      missing: { client: string; reason: "exhausted" | "no_compatible_suite" }[];
    }
  | { kind: "unknown_user" }
  | { kind: "no_key_package" }
  | { kind: "no_common_suite"; available: number[] };

export interface DeviceList {
  user: string;
  version: number;
  /** `identities`: the credential identity per accepted scheme (added by the key directory, not stored). */
  devices: { client: string; cipherSuites: number[]; identities?: Partial<Record<string, string>> }[];
}

export interface KeyDirectoryStore {
  /** Adds KeyPackages to a client's pool (up to maxPerClient non-last-resort ones); a last-resort one replaces the previous of its suite. */
  putKeyPackages(client: string, items: StoredKeyPackage[], maxPerClient: number): Promise<PutKeyPackagesResult>;
  listKeyPackages(client: string): Promise<KeyPackageMeta[]>;
  deleteKeyPackage(client: string, ref: string): Promise<boolean>;
  /**
   * Atomically pops one KeyPackage per device of `user` for the first suite in `suites` that any
   * device can serve (pool first, then its last-resort package, which is never consumed).
   * Expired packages are dropped on the way.
   */
  claim(user: string, suites: number[], nowSeconds: number): Promise<ClaimOutcome>;
  /** Which client a KeyPackageRef belongs to (own uploads, and remote claims this DS proxied). */
  resolveRef(ref: string): Promise<string | undefined>;
  rememberRefs(entries: { ref: string; client: string }[], ttlSeconds: number): Promise<void>;

  /** Registers a device; the version increments only when the device list changes. */
  registerDevice(client: string): Promise<{ version: number; added: boolean }>;
  removeDevice(client: string): Promise<{ version: number; removed: boolean }>;
  listDevices(user: string): Promise<DeviceList>;
}

export type GroupMode = "ordered" | "send-group";

export interface LeaseRecord {
  token: string;
  holder: string;
  expiresAt: number;
}

export interface GroupRecord {
  groupId: string;
  /** Domain of the provider that orders this group. */
  hub: string;
  mode: GroupMode;
  cipherSuite: number;
  epoch: number;
  nextSeq: number;
  members: string[];
  owner: string;
  createdAt: number;
  replyTo?: string;
  lease?: LeaseRecord;
}

export type LogKind = "commit" | "proposal" | "application" | "welcome";

/** A log entry without its recipient list. */
export type EntryBody = Omit<LogEntry, "recipients">;

export interface LogEntry {
  seq: number;
  kind: LogKind;
  epoch: number;
  sender: string;
  /** base64url MLSMessage. */
  message: string;
  sha256: string;
  /** Who this entry goes to (members at acceptance minus the sender; the added clients for a welcome). */
  recipients: string[];
}

export type Submission =
  | {
      kind: "commit";
      sender: string;
      epoch: number;
      sha256: string;
      message: string;
      welcome?: { message: string; sha256: string };
      added: string[];
      removed: string[];
      groupInfo?: string;
      /** base64url RatchetTree stored beside a GroupInfo that does not embed it (MIMI `RatchetTreeOption.full`). */
      ratchetTree?: string;
      leaseToken?: string;
      /** An external commit (new_member_commit): the sender joins itself. */
      external?: boolean;
    }
  | {
      kind: "application" | "proposal";
      sender: string;
      epoch: number;
      sha256: string;
      message: string;
      /**
       * `sender` is a device as authenticated: when it is not a member itself but its user's
       * virtual client `user/*` is, the submission is the virtual client's (resolveActor). Lets
       * the hub submit without reading the roster first.
       */
      resolveActor?: true;
    };

export type SubmitOutcome =
  | {
      ok: true;
      seq: number;
      epoch: number;
      duplicate: boolean;
      entries: LogEntry[];
      /**
       * The accept left nothing to fan out (domain/feeds.ts settlesInAccept): every entry is read
       * from the group feed, every member is a client here, nothing earlier waits for its fan-out;
       * the group is marked dispatched in the same atomic step.
       */
      settled?: true;
    }
  | { ok: false; code: "unknown_group" }
  | { ok: false; code: "not_a_member" }
  | { ok: false; code: "not_designated_sender" }
  | { ok: false; code: "stale_epoch"; expectedEpoch: number; winner?: string }
  | { ok: false; code: "group_locked"; leaseExpiresAt: number };

export type LeaseOutcome =
  | { ok: true; token: string; expiresAt: number }
  | { ok: false; code: "unknown_group" | "not_a_member" }
  | { ok: false; code: "group_locked"; leaseExpiresAt: number };

export type ReplicaWrite =
  { ok: true; fresh: LogEntry[] } | { ok: false; code: "ordered_here" } | { ok: false; code: "hub_mismatch"; hub: string };

export interface CommitLogEntry {
  epoch: number;
  seq: number;
  sender: string;
  sha256: string;
}

export interface GroupStore {
  /** False when the id is taken. */
  createGroup(record: GroupRecord, groupInfo?: { epoch: number; groupInfo: string }): Promise<boolean>;
  getGroup(groupId: string): Promise<GroupRecord | undefined>;
  /** The ordering step: one atomic decision and effect (see domain/ordering.ts for the rules). */
  submit(groupId: string, submission: Submission, nowMs: number): Promise<SubmitOutcome>;
  readLog(groupId: string, afterSeq: number, limit: number): Promise<LogEntry[]>;
  readEntries(groupId: string, seqs: number[]): Promise<(LogEntry | undefined)[]>;
  /**
   * readEntries without the recipient lists (which grow with the group): what an inbox read needs.
   * The Redis store then reads only the entries' bodies.
   */
  readEntryBodies(groupId: string, seqs: number[]): Promise<(EntryBody | undefined)[]>;
  getGroupInfo(groupId: string): Promise<StoredGroupInfo | undefined>;
  commitLog(groupId: string, afterEpoch: number): Promise<CommitLogEntry[]>;
  acquireLease(groupId: string, holder: string, ttlMs: number, token: string, nowMs: number): Promise<LeaseOutcome>;
  releaseLease(groupId: string, token: string): Promise<boolean>;

  /**
   * Follower side: a replica of a remote hub's log. Atomically refuses a group ordered here and a
   * record naming another hub than the one recorded at first sight; otherwise stores the entries
   * it does not hold yet and returns them (the fresh ones, in seq order).
   *
   * `numberHere`: the entries come without seqs (a MIMI hub sends none); the store numbers them in
   * the same atomic step from the replica's next seq, so several DS replicas on one store never
   * give two entries one seq. The returned entries carry the seqs given.
   */
  putReplicaEntries(record: Omit<GroupRecord, "nextSeq">, entries: LogEntry[], numberHere?: boolean): Promise<ReplicaWrite>;
  /** Highest seq held contiguously (for gap detection on a replica). */
  contiguousSeq(groupId: string): Promise<number>;
  /**
   * Follower side: the hub says its log starts at `throughSeq + 1` (it trimmed the rest). Moves the
   * replica's contiguous point up to `throughSeq`, but never backwards, never past the lowest seq
   * held above it (held entries are never skipped) and only when such an entry is held (proof the
   * group went on). Seqs skipped are refused by later writes. Returns the contiguous point.
   */
  skipReplicaGap(groupId: string, throughSeq: number): Promise<number>;
  /** Hub side: the lowest seq of the group's log still held (1 when nothing was trimmed). */
  logStart(groupId: string): Promise<number>;

  /**
   * Drops the entries of groups ordered here accepted before `beforeMs` (already fanned out), from
   * the front of each log, at most `maxPerGroup` per group and call; `logStart` says where a log
   * now starts. Returns how many went. (The memory store also trims by delivery, as it goes.)
   */
  trimExpiredLogs(beforeMs: number, maxPerGroup: number): Promise<number>;
  /** Dispatch bookkeeping: fan-out of entries up to `seq` is done. */
  markDispatched(groupId: string, seq: number): Promise<void>;
  /** Groups whose accepted entries have not all been fanned out yet (crash recovery). */
  undispatched(): Promise<{ groupId: string; fromSeq: number }[]>;
  /**
   * Groups a client belongs to (by this store's knowledge), and groups it left whose feed it has
   * not read to the end yet (FeedReader drops those once it has).
   */
  groupsOf(client: string): Promise<string[]>;
}

/** A pointer into a group log, or a small self-contained notice (device updates, conflicts). */
export type InboxItem =
  | { kind: "ref"; groupId: string; seq: number }
  | { kind: "notice"; id: string; type: "device_update" | "commit_conflict" | "key_packages_low"; body: Record<string, unknown> };

export interface InboxStore {
  /** Idempotent: an item whose id (groupId:seq, or notice id) is already queued is not added again. */
  appendInbox(client: string, items: InboxItem[]): Promise<void>;
  /**
   * One fan-out: appendInbox for many clients at once (each its own items, idempotent likewise).
   * The Redis adapter sends them all in one pipeline (one round trip), not one call per recipient.
   */
  appendInboxMany(deliveries: { client: string; items: InboxItem[] }[]): Promise<void>;
  readInbox(client: string, afterCursor: number, limit: number): Promise<{ cursor: number; item: InboxItem }[]>;
  ackInbox(client: string, upToCursor: number): Promise<number>;
  /** Queued items (on Redis a feed page of several references counts once). */
  inboxDepth(client: string): Promise<number>;
  /**
   * Resolves when the inbox may have entries after `afterCursor`, or one of `watch.groups` has new
   * log entries, or after waitMs. `watch.settle` runs once the wake-ups are subscribed and before
   * the inbox is checked (the caller pulls its feeds there, so nothing accepted in between is missed).
   */
  waitInbox(
    client: string,
    afterCursor: number,
    waitMs: number,
    signal?: AbortSignal,
    watch?: { groups: string[]; settle: () => Promise<void> },
  ): Promise<void>;
}

/**
 * Group feeds (domain/feeds.ts): a member reads member-wide entries from the group log instead of
 * the hub writing them into every member's inbox. Spans live with the group, read marks with the
 * client.
 */
export interface FeedStore {
  /** Group side: the member-wide entries after `afterSeq` (at most `limit` examined) that reach `member`. */
  readFeed(groupId: string, member: string, afterSeq: number, limit: number): Promise<FeedRead>;
  /** Client side: the client's read marks, by feed key (see FeedReader.feedKey). */
  feedMarks(client: string): Promise<Map<string, number>>;
  /**
   * Client side, one atomic step: references to `seqs` after the feed's mark go into the client's
   * inbox (deduped like appendInbox) and the mark moves to `through` (never back). `ended`: the
   * member will receive nothing more from the group; the mark is dropped, and with `dropIndex` the
   * group leaves the client's membership index. Returns how many references were added.
   */
  advanceFeed(
    client: string,
    feed: { key: string; groupId: string; through: number; seqs: number[]; ended: boolean; dropIndex: boolean },
  ): Promise<number>;
  /**
   * Follower side: a replica's feed (domain/feeds.ts, replicaSpanSteps) — the local clients with an
   * open span, and the seq its spans are derived through (absent: never; the replica's entries up
   * to then went into inboxes one reference per recipient, as before feeds).
   */
  replicaFeed(groupId: string): Promise<{ open: string[]; through?: number }>;
  /**
   * Follower side, one atomic step on the group: if the replica's feed is derived through `from`
   * (or never was), applies `steps` in order, derives it through `through` (never past the
   * contiguous seq) and wakes the group's readers; then the clients whose span opened enter the
   * membership index. False, with nothing written, when another writer moved the feed first.
   */
  advanceReplicaFeed(groupId: string, from: number, through: number, steps: SpanStep[]): Promise<boolean>;
}

export interface OutboxItem {
  id: string;
  groupId: string;
  seq: number;
}

export interface OutboxStore {
  enqueueOutbox(peer: string, items: OutboxItem[]): Promise<void>;
  peekOutbox(peer: string, limit: number): Promise<{ cursor: number; item: OutboxItem }[]>;
  ackOutbox(peer: string, upToCursor: number): Promise<void>;
  outboxStats(peer: string): Promise<{ depth: number; oldestMs?: number }>;
  peersWithOutbox(): Promise<string[]>;
}

export interface ReplayStore {
  /** True if (issuer, jti) was not seen before; remembers it until expiresAtMs. */
  rememberOnce(key: string, expiresAtMs: number): Promise<boolean>;
}

export interface RevocationStore {
  /** Records that `client` was deleted at `atMs`; forgotten after `ttlMs` (when its older tokens have expired). */
  revokeDevice(client: string, atMs: number, ttlMs: number): Promise<void>;
  /** The last recorded deletion of `client` (ms), if not yet forgotten. */
  deviceRevokedAt(client: string): Promise<number | undefined>;
}

/** What the store says about its own durability (reported at start and in /readyz). */
export interface PersistenceReport {
  /** True: append-only file or RDB snapshots are on; false: neither; undefined: the store would not say. */
  persistent: boolean | undefined;
  aof?: boolean;
  rdb?: boolean;
  /** One line for logs and errors, e.g. "appendonly yes, save \"3600 1\"". */
  detail: string;
}

/** Written once at first start; its disappearance means the store lost its data (see store/integrity.ts). */
export interface StoreMarker {
  id: string;
  createdAt: number;
  /** Written by `mls-fedgate store ack-reset`: replicas that knew the previous marker adopt this one. */
  acknowledgedReset?: boolean;
}

export interface StoreResetFlag {
  detectedAt: number;
  reason: string;
}

export interface IntegrityStore {
  persistence(): Promise<PersistenceReport>;
  readIntegrity(): Promise<{ marker?: StoreMarker; reset?: StoreResetFlag }>;
  /** Writes the marker unless one exists; false when one did. */
  initMarker(marker: StoreMarker): Promise<boolean>;
  /** Records a detected reset (first writer wins), so every replica refuses writes until it is acknowledged. */
  flagReset(flag: StoreResetFlag): Promise<void>;
  /** The operator's acknowledgement: a new marker, and the reset flag cleared (one atomic step). */
  acknowledgeReset(marker: StoreMarker): Promise<void>;
  /** Calls `listener` each time the store connection is (re-)established. */
  onReconnect(listener: () => void): void;
}

export interface Store
  extends KeyDirectoryStore, GroupStore, InboxStore, FeedStore, OutboxStore, ReplayStore, RevocationStore, IntegrityStore {
  readonly kind: "memory" | "redis";
  ping(): Promise<void>;
  close(): Promise<void>;
}

export function userOf(client: string): string {
  const slash = client.indexOf("/");
  return slash === -1 ? client : client.slice(0, slash);
}

export function domainOf(userOrClient: string): string {
  const user = userOf(userOrClient);
  return user.slice(user.indexOf("@") + 1);
}
