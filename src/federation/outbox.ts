import type { Logger } from "pino";
import type { DeliveredMessage, OutboxNotifier } from "../domain/fanout.js";
import { viewFor } from "../domain/hub-side.js";
import type { GroupView } from "../domain/types.js";
import { DsError } from "../errors.js";
import { deliverAnswer } from "../wire/federation.js";
import { domainOf, type Store } from "../store/port.js";

const DEFAULT_PEER_BODY_LIMIT = 1 << 20;
import type { PeerClient } from "./peer-client.js";
import { systemClock, type Clock } from "../clock.js";

/** Delivery to peers that speak another binding (MIMI `notify`); others get `deliver`. */
export interface PeerDelivery {
  handles(peer: string): boolean;
  deliver(peer: string, messages: DeliveredMessage[]): Promise<void>;
}

export interface OutboxOptions {
  batchSize: number;
  retryBaseMs: number;
  retryMaxMs: number;
  pollMs: number;
}

/**
 * The durable per-peer outbox: accepted entries wait in the store until the peer acknowledged a
 * `deliver` holding them. Retries back off exponentially; a peer that is down loses nothing and,
 * as the receiver is idempotent by (groupId, seq), a redelivery after a crash is harmless.
 */
export class OutboxWorker implements OutboxNotifier {
  private wakeups = new Map<string, () => void>();
  private loops: Promise<void>[] = [];
  private running = false;
  private controller = new AbortController();

  constructor(
    private readonly store: Store,
    private readonly peers: PeerClient,
    private readonly opts: OutboxOptions,
    private readonly log: Logger,
    private readonly onDelivered?: (peer: string, count: number, oldestAgeMs: number) => void,
    private readonly tamper?: (peer: string, messages: DeliveredMessage[]) => DeliveredMessage[],
    private readonly onRefused?: (peer: string, count: number) => void,
    private readonly other?: PeerDelivery,
    private readonly clock: Clock = systemClock,
  ) {}

  /** How many deliveries wait for `peer`, and since when the oldest (for /metrics). */
  stats(peer: string): Promise<{ depth: number; oldestMs?: number }> {
    return this.store.outboxStats(peer);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.controller = new AbortController();
    for (const peer of this.peers.peerDomains()) this.loops.push(this.loop(peer));
  }

  notify(peer: string): void {
    this.wakeups.get(peer)?.();
  }

  private sleep(peer: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeups.delete(peer);
        this.controller.signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeups.set(peer, done);
      this.controller.signal.addEventListener("abort", done);
    });
  }

  private async loop(peer: string): Promise<void> {
    let failures = 0;
    while (this.running) {
      try {
        const sent = await this.flushOnce(peer);
        failures = 0;
        if (sent === 0) await this.sleep(peer, this.opts.pollMs);
      } catch (err) {
        failures += 1;
        const backoff = Math.min(this.opts.retryMaxMs, this.opts.retryBaseMs * 2 ** Math.min(failures - 1, 20));
        // A peer's Retry-After (429/503) is honoured: never retry sooner than it asked.
        const asked = err instanceof DsError ? Number(err.details.retryAfterMs) : NaN;
        const delay = Number.isFinite(asked) ? Math.max(backoff, asked / 0.75) : backoff;
        this.log.warn({ err, peer, failures, retryInMs: delay }, "outbox delivery failed");
        await this.sleep(peer, delay * (0.75 + Math.random() * 0.5));
      }
    }
  }

  /**
   * Sends one batch to the peer; resolves to the number of outbox items settled. A batch stays
   * within the peer's advertised body limit; an answer the peer will never change its mind about
   * (a 4xx other than 401/429) is logged and set aside, so one bad entry cannot block the queue.
   */
  async flushOnce(peer: string): Promise<number> {
    const batch = await this.store.peekOutbox(peer, this.opts.batchSize);
    if (batch.length === 0) return 0;
    const budget = Math.floor((await this.peerBodyLimit(peer)) * 0.75);
    const groups = new Map<string, GroupView>();
    const messages: DeliveredMessage[] = [];
    let size = 0;
    let lastCursor = batch[0]!.cursor;
    for (const { cursor, item } of batch) {
      if (!groups.has(item.groupId)) {
        const record = await this.store.getGroup(item.groupId);
        // A peer sees the member list only while it hosts a member (docs/SECURITY.md).
        if (record) groups.set(item.groupId, viewFor(record, peer));
      }
      const [entry] = await this.store.readEntries(item.groupId, [item.seq]);
      if (entry && groups.has(item.groupId)) {
        const cost = entry.message.length + 512 + entry.recipients.length * 64;
        if (messages.length > 0 && size + cost > budget) break;
        size += cost;
        messages.push({ groupId: item.groupId, ...entry, recipients: entry.recipients.filter((c) => domainOf(c) === peer) });
      }
      lastCursor = cursor;
    }
    const outgoing = this.tamper ? this.tamper(peer, messages) : messages;
    const used = new Set(outgoing.map((m) => m.groupId));
    try {
      if (outgoing.length > 0 && this.other?.handles(peer)) {
        await this.other.deliver(peer, outgoing);
      } else if (outgoing.length > 0) {
        const answer = await this.peers.call(peer, "POST", "/federation/v1/deliver", {
          groups: Object.fromEntries([...groups].filter(([id]) => used.has(id))),
          messages: outgoing,
        });
        // Per-entry refusals (a 2xx answer): those entries are set aside like a permanent refusal.
        const refused = deliverAnswer.safeParse(answer).data?.refused ?? [];
        if (refused.length > 0) {
          this.log.error({ peer, refused: refused.slice(0, 20) }, "peer refused delivered entries; entries set aside");
          this.onRefused?.(peer, refused.length);
        }
      }
    } catch (e) {
      if (!(e instanceof DsError) || e.status >= 500 || e.status === 401 || e.status === 429) throw e;
      this.log.error(
        { err: e, peer, entries: outgoing.map((m) => `${m.groupId}:${m.seq}`) },
        "peer refused a delivery permanently; entries set aside",
      );
      this.onRefused?.(peer, outgoing.length);
    }
    const oldest = (await this.store.outboxStats(peer)).oldestMs;
    await this.store.ackOutbox(peer, lastCursor);
    this.onDelivered?.(peer, messages.length, oldest ? this.clock.nowMs() - oldest : 0);
    return messages.length || 1;
  }

  private async peerBodyLimit(peer: string): Promise<number> {
    if (this.other?.handles(peer)) return DEFAULT_PEER_BODY_LIMIT;
    try {
      const limit = (await this.peers.discovery(peer)).limits.bodyBytes;
      return typeof limit === "number" && limit > 0 ? limit : DEFAULT_PEER_BODY_LIMIT;
    } catch {
      return DEFAULT_PEER_BODY_LIMIT;
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    this.controller.abort();
    await Promise.all(this.loops);
    this.loops = [];
  }
}
