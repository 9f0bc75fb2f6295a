import type { Logger } from "pino";
import { viewOf } from "../domain/groups.js";
import type { DeliveredMessage, OutboxNotifier } from "../domain/fanout.js";
import type { GroupView } from "../domain/types.js";
import { domainOf, type Store } from "../store/port.js";
import type { PeerClient } from "./peer-client.js";

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
  ) {}

  start(): void {
    this.running = true;
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
        const delay = Math.min(this.opts.retryMaxMs, this.opts.retryBaseMs * 2 ** Math.min(failures - 1, 20));
        this.log.warn({ err, peer, failures, retryInMs: delay }, "outbox delivery failed");
        await this.sleep(peer, delay * (0.75 + Math.random() * 0.5));
      }
    }
  }

  /** Sends one batch to the peer; resolves to the number of entries acknowledged. */
  async flushOnce(peer: string): Promise<number> {
    const batch = await this.store.peekOutbox(peer, this.opts.batchSize);
    if (batch.length === 0) return 0;
    const byGroup = new Map<string, number[]>();
    for (const { item } of batch) byGroup.set(item.groupId, [...(byGroup.get(item.groupId) ?? []), item.seq]);
    const groups: Record<string, GroupView> = {};
    const messages: DeliveredMessage[] = [];
    for (const [groupId, seqs] of byGroup) {
      const record = await this.store.getGroup(groupId);
      if (!record) continue;
      const { lease: _lease, ...rest } = record;
      groups[groupId] = viewOf(rest);
      const entries = await this.store.readEntries(groupId, seqs);
      for (const e of entries) {
        if (!e) continue;
        messages.push({ groupId, ...e, recipients: e.recipients.filter((c) => domainOf(c) === peer) });
      }
    }
    const outgoing = this.tamper ? this.tamper(peer, messages) : messages;
    if (outgoing.length > 0) await this.peers.call(peer, "POST", "/federation/v1/deliver", { groups, messages: outgoing });
    const oldest = (await this.store.outboxStats(peer)).oldestMs;
    await this.store.ackOutbox(peer, batch[batch.length - 1]!.cursor);
    this.onDelivered?.(peer, messages.length, oldest ? Date.now() - oldest : 0);
    return batch.length;
  }

  async stop(): Promise<void> {
    this.running = false;
    this.controller.abort();
    await Promise.all(this.loops);
    this.loops = [];
  }
}
