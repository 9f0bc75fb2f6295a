import type { EntryBody } from "./port.js";

/** What one cached entry is counted as, beyond its strings: the object, the key, the Map slot. */
const ENTRY_OVERHEAD_BYTES = 160;

/**
 * Log entry bodies this process has read or written, by group and seq, so that the members of a
 * group who read the same entry share one object instead of one Redis read each — and one
 * serialization (http/inbox-json.ts keys its encodings by these objects).
 *
 * Sound because an entry never changes once stored: a hub numbers each seq once, a replica writes
 * with HSETNX, a trim only deletes. What could make a seq name other bytes — a Redis that comes
 * back empty, a failover that lost writes — reconnects the client first, and the store clears the
 * cache then (RedisStore.onReconnect). Bounded by an estimate of the bytes held; the oldest
 * entries go first (members read what was just accepted).
 */
export class EntryCache {
  private readonly entries = new Map<string, { body: EntryBody; bytes: number }>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get size(): number {
    return this.entries.size;
  }

  get heldBytes(): number {
    return this.bytes;
  }

  get(groupId: string, seq: number): EntryBody | undefined {
    return this.entries.get(key(groupId, seq))?.body;
  }

  set(groupId: string, body: EntryBody): void {
    const bytes = ENTRY_OVERHEAD_BYTES + groupId.length + body.message.length + body.sender.length + body.sha256.length;
    if (bytes > this.maxBytes) return;
    const k = key(groupId, body.seq);
    const held = this.entries.get(k);
    if (held) {
      this.entries.delete(k);
      this.bytes -= held.bytes;
    }
    this.entries.set(k, { body, bytes });
    this.bytes += bytes;
    for (const [oldest, e] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.bytes -= e.bytes;
    }
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}

function key(groupId: string, seq: number): string {
  return `${seq}|${groupId}`;
}
