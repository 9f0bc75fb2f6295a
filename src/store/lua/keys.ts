/**
 * The Redis key layout, shared by redis.ts and the Lua scripts (which derive some key names
 * themselves, always inside the hash tag of the key they were routed by, so every script touches
 * one slot and also runs on Redis Cluster).
 *
 * Every key starts with `<prefix>:`. Hash tags group what one script must touch atomically:
 *   {u:<user>}    device list and KeyPackage pools of all the user's devices (claims)
 *   {g:<groupId>} group record, log, answers, commit log, GroupInfo, feed spans (the ordering step)
 *                 and the group's wake-up shard channel
 *   {c:<client>}  inbox (and its wake-up shard channel), membership index and feed marks of one client
 *   {p:<peer>}    outbox of one peer provider
 */

/** Dedupe ids of inbox/outbox items outlive the item itself by this long (ack then retry must not redeliver). */
export const QUEUE_DEDUPE_TTL_MS = 7 * 24 * 3600 * 1000;
/** Own KeyPackage refs stay resolvable this long after the package's notAfter (a late Welcome still routes). */
export const OWN_REF_GRACE_SECONDS = 30 * 24 * 3600;
/** Startup connects fail fast after this long instead of retrying forever. */
export const CONNECT_TIMEOUT_MS = 5000;
/** Reconnect backoff cap once the store is up (transient outages heal by themselves). */
export const RECONNECT_MAX_DELAY_MS = 2000;
/** SCAN batch size of the crash-recovery path (undispatched). */
export const SCAN_COUNT = 500;

/** Suffixes below a user's base key `<prefix>:{u:<user>}:`; per-device ones are followed by the client id. */
export const USER_KEYS = {
  devices: "devices", // SET of client ids
  version: "version", // STRING device-list version
  kp: "kp:", // HASH ref → StoredKeyPackage JSON (pool only)
  exp: "exp:", // ZSET ref → notAfter (pool only: size for the cap, expiry sweep, existence)
  pool: "pool:", // LIST of refs in upload order (listing order)
  queue: "q:", // + client + ":" + suite: LIST of refs of that suite, oldest first (claim order)
  suites: "suites:", // SET of suites with a non-empty queue
  lastResort: "lr:", // HASH suite → StoredKeyPackage JSON
  lastResortOrder: "lrs:", // LIST of suites in first-upload order (listing order)
  revoked: "revoked:", // STRING deletion time (ms) of a deleted device, with a TTL (token lifetime)
} as const;

/** Suffixes below a group's base key `<prefix>:{g:<groupId>}:`. */
export const GROUP_KEYS = {
  record: "rec", // HASH: GroupRecord fields + replica, dispatched, contig
  log: "log", // HASH seq → LogEntry JSON (each entry stored once); "m<seq>" → "kind|sender" (feed reads)
  seqs: "seqs", // ZSET seq → seq (range reads over a log that may have gaps on a replica)
  answers: "ans", // HASH sha256 → {"seq","epoch"} (retried submissions get the original answer)
  commitLog: "clog", // ZSET epoch → CommitLogEntry JSON
  groupInfo: "gi", // HASH epoch, info, tree (the ratchet tree when the GroupInfo does not embed it)
  spans: "spans", // HASH member → feed spans "start:end,…" (domain/feeds.ts; groups ordered here)
} as const;

/** Suffixes of the queue keys below `<prefix>:{c:<client>}:in:` and `<prefix>:{p:<peer>}:out:`. */
export const QUEUE_KEYS = {
  counter: "ctr", // STRING last cursor (never deleted, so cursors are never reused)
  queue: "q", // ZSET id → cursor
  items: "items", // HASH id → item JSON
  seen: "seen", // ZSET id → appended-at ms (dedupe that survives ack; pruned after QUEUE_DEDUPE_TTL_MS)
} as const;

export type GroupKeys = Record<keyof typeof GROUP_KEYS, string>;

export interface QueueKeys {
  counter: string;
  queue: string;
  items: string;
  seen: string;
}

export class KeySchema {
  constructor(readonly prefix: string) {
    if (/[{}]/.test(prefix)) throw new Error("Redis store prefix must not contain '{' or '}' (it would change the hash tags)");
  }

  userBase(user: string): string {
    return `${this.prefix}:{u:${user}}:`;
  }
  userKey(user: string, suffix: string): string {
    return this.userBase(user) + suffix;
  }

  groupBase(groupId: string): string {
    return `${this.prefix}:{g:${groupId}}:`;
  }
  group(groupId: string): GroupKeys {
    const base = this.groupBase(groupId);
    return {
      record: base + GROUP_KEYS.record,
      log: base + GROUP_KEYS.log,
      seqs: base + GROUP_KEYS.seqs,
      answers: base + GROUP_KEYS.answers,
      commitLog: base + GROUP_KEYS.commitLog,
      groupInfo: base + GROUP_KEYS.groupInfo,
      spans: base + GROUP_KEYS.spans,
    };
  }
  /** SCAN pattern matching every group record (glob characters in the prefix escaped). */
  groupRecordPattern(): string {
    return `${this.prefix.replace(/[*?[\]\\]/g, "\\$&")}:{g:*}:${GROUP_KEYS.record}`;
  }

  private queue(base: string): QueueKeys {
    return {
      counter: base + QUEUE_KEYS.counter,
      queue: base + QUEUE_KEYS.queue,
      items: base + QUEUE_KEYS.items,
      seen: base + QUEUE_KEYS.seen,
    };
  }
  inbox(client: string): QueueKeys {
    return this.queue(`${this.prefix}:{c:${client}}:in:`);
  }
  outbox(peer: string): QueueKeys {
    return this.queue(`${this.prefix}:{p:${peer}}:out:`);
  }
  /** HASH feed key → read mark of the client's group feeds (domain/feed-reader.ts). */
  feedMarks(client: string): string {
    return `${this.prefix}:{c:${client}}:feeds`;
  }
  /** Shard channel announcing new entries in a group's log (one wake-up per accept, not per member). */
  groupChannel(groupId: string): string {
    return `${this.groupBase(groupId)}wake`;
  }
  /** SET of group ids the client belongs to (groupsOf). */
  memberships(client: string): string {
    return `${this.prefix}:{c:${client}}:groups`;
  }
  /**
   * Pub/sub channel announcing new inbox entries. Hash-tagged like the inbox: in a cluster the
   * append script SPUBLISHes it (a shard channel must live in the script's slot).
   */
  inboxChannel(client: string): string {
    return `${this.prefix}:{c:${client}}:in:wake`;
  }
  /** SET of peers that ever had an outbox (peersWithOutbox filters by depth). */
  outboxPeers(): string {
    return `${this.prefix}:outbox-peers`;
  }
  /** The store marker and the reset flag (store/integrity.ts); one hash tag so the acknowledgement is one MULTI. */
  storeMarker(): string {
    return `${this.prefix}:{store}:marker`;
  }
  storeReset(): string {
    return `${this.prefix}:{store}:reset`;
  }
  ref(ref: string): string {
    return `${this.prefix}:ref:${ref}`;
  }
  replay(key: string): string {
    return `${this.prefix}:replay:${key}`;
  }
}
