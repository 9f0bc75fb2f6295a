/**
 * An inbox or outbox of the memory store, the same shape as the Redis one (store/lua/queue.ts):
 * cursors that are never reused, and dedupe ids that outlive the acknowledgement for `dedupeMs`
 * (a retry after the ack must not redeliver) and are then forgotten, as Redis prunes its `seen`
 * ZSET, so a queue under churn stays bounded.
 */
export interface QueuedEntry<T> {
  cursor: number;
  id: string;
  item: T;
  at: number;
}

export class MemoryQueue<T> {
  counter = 0;
  /** Entries not yet acknowledged, in cursor order. */
  entries: QueuedEntry<T>[] = [];
  /** Every id appended within the dedupe window → when (insertion order = time order). */
  readonly seen = new Map<string, number>();
  private readonly queued = new Set<string>();

  constructor(private readonly dedupeMs: number) {}

  /** Appends unless the id is queued or was seen within the dedupe window; true when appended. */
  append(id: string, item: T, now: number): boolean {
    this.forget(now);
    if (this.queued.has(id) || this.seen.has(id)) return false;
    this.seen.set(id, now);
    this.queued.add(id);
    this.entries.push({ cursor: ++this.counter, id, item, at: now });
    return true;
  }

  /** Removes entries up to `upToCursor` and returns them. */
  ack(upToCursor: number): QueuedEntry<T>[] {
    let n = 0;
    while (n < this.entries.length && this.entries[n]!.cursor <= upToCursor) n++;
    const gone = this.entries.splice(0, n);
    for (const e of gone) this.queued.delete(e.id);
    return gone;
  }

  private forget(now: number): void {
    for (const [id, at] of this.seen) {
      if (at > now - this.dedupeMs) break;
      this.seen.delete(id);
    }
  }
}
