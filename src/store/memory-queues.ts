import type { EventEmitter } from "node:events";
import type { Clock } from "../domain/types.js";
import { SWEEP_MIN } from "./memory-keydir.js";
import { MemoryQueue } from "./memory-queue.js";
import type { InboxItem, OutboxItem } from "./port.js";

function itemId(item: InboxItem): string {
  return item.kind === "ref" ? `${item.groupId}:${item.seq}` : `n:${item.id}`;
}

/**
 * The memory store's inboxes, outboxes and replay cache (store/lua/queue.ts on Redis). Apart from
 * MemoryStore, which passes in what couples them to groups: the log references an inbox or outbox
 * item holds (counted so trimming keeps the entry), and the events that wake a long poll.
 */
export class MemoryQueues {
  private inboxes = new Map<string, MemoryQueue<InboxItem>>();
  private outboxes = new Map<string, MemoryQueue<OutboxItem>>();
  /** The replay cache: key → forget at (ms). */
  private seen = new Map<string, number>();
  private sweepSeenAt = SWEEP_MIN;

  constructor(
    private readonly clock: Clock,
    private readonly retentionMs: number,
    private readonly events: EventEmitter,
    /** An item now points at a group's log entry (1), or no longer does (-1). */
    private readonly reference: (item: { groupId: string; seq: number }, delta: 1 | -1) => void,
  ) {}

  /** Dedupe ids held and items queued, for MemoryStore.sizes(). */
  sizes(): { dedupeIds: number; queued: number } {
    const out = { dedupeIds: 0, queued: 0 };
    for (const q of [...this.inboxes.values(), ...this.outboxes.values()]) {
      out.dedupeIds += q.seen.size;
      out.queued += q.entries.length;
    }
    return out;
  }

  private queue<T>(map: Map<string, MemoryQueue<T>>, key: string): MemoryQueue<T> {
    let q = map.get(key);
    if (!q) {
      q = new MemoryQueue<T>(this.retentionMs);
      map.set(key, q);
    }
    return q;
  }

  /** Appends what is not a duplicate; returns how many items were added. */
  appendCounted(client: string, items: InboxItem[]): number {
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
    if (this.seen.size >= this.sweepSeenAt) {
      for (const [k, exp] of this.seen) if (exp < now) this.seen.delete(k);
      this.sweepSeenAt = Math.max(SWEEP_MIN, 2 * this.seen.size);
    }
    const exp = this.seen.get(key);
    if (exp !== undefined && exp >= now) return false;
    this.seen.set(key, expiresAtMs);
    return true;
  }
}
