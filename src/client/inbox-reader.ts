import { FedgateError, type FedgateApi, type InboxEntry } from "./api.js";
import { systemClock, type Clock } from "../clock.js";

/** What processing inbox entries yields, whatever MLS implementation processes them. */
export type MlsEvent =
  | { kind: "joined"; groupId: string; sender: string }
  | { kind: "message"; groupId: string; sender: string; text: string; seq: number }
  | { kind: "commit"; groupId: string; sender: string; epoch: number; seq: number }
  | { kind: "proposal"; groupId: string; sender: string; seq: number }
  | { kind: "removed"; groupId: string; sender: string }
  | { kind: "device_update"; user: string; version: number; devices: { client: string }[] }
  | { kind: "commit_conflict"; groupId: string; epoch: number; [k: string]: unknown }
  | { kind: "error"; groupId?: string; seq?: number; error: string };

export interface InboxReaderOptions {
  /** Where reading starts (a cursor restored from storage). */
  cursor?: number;
  /** Called with the new cursor once a batch is processed, before the DS is told `ack`. */
  saveCursor?: (cursor: number) => Promise<void>;
  /** Called after each processed batch (e.g. a KeyPackage top-up that an entry asked for). */
  afterBatch?: () => Promise<void>;
  /** Deadlines of syncUntil (src/clock.ts); a test may pass a fake. */
  clock?: Clock;
}

const RECONNECT_FIRST_MS = 1000;
const RECONNECT_MAX_MS = 30_000;

/**
 * The inbox loop every client shares (MlsClient on ts-mls, test adapters of other implementations):
 * read — by long-poll (`sync`) or over the live stream (`listen`) — hand each entry to the
 * implementation's `handle`, store the cursor, acknowledge; wait for events; catch up on a group's
 * log. Catch-up entries are handed over with cursor 0.
 */
export class InboxReader {
  private cursor: number;

  constructor(
    private readonly api: FedgateApi,
    private readonly handle: (entry: InboxEntry) => Promise<MlsEvent[]>,
    private readonly opts: InboxReaderOptions = {},
  ) {
    this.cursor = opts.cursor ?? 0;
  }

  /** Reads the inbox (long-poll up to waitMs), processes every entry in order, acknowledges, returns events. */
  async sync(opts: { waitMs?: number } = {}): Promise<MlsEvent[]> {
    const events: MlsEvent[] = [];
    for (;;) {
      const { messages, next } = await this.api.inbox(this.cursor, { waitMs: events.length === 0 ? (opts.waitMs ?? 0) : 0 });
      if (messages.length === 0) break;
      events.push(...(await this.process(messages, next)));
    }
    return events;
  }

  /**
   * Follows the live stream (`GET /v1/inbox/stream`, fetch-based: the bearer token travels in a
   * header, which a browser's EventSource cannot do) until `signal` aborts: processes entries in
   * order, stores the cursor, acknowledges, and hands each entry's events to `onEvents`; `onOpen`
   * hears each (re)connection. After a drop it reports an `error` event and reconnects from the
   * cursor (1 s, doubling to 30 s); a refused token (`unauthenticated`, `forbidden`) ends it (rejects).
   */
  async listen(onEvents: (events: MlsEvent[]) => void, signal: AbortSignal, onOpen?: () => void): Promise<void> {
    let backoffMs = RECONNECT_FIRST_MS;
    while (!signal.aborted) {
      try {
        for await (const entry of this.api.stream(this.cursor, signal, onOpen)) {
          backoffMs = RECONNECT_FIRST_MS;
          if (entry.cursor <= this.cursor) continue;
          const events = await this.process([entry], entry.cursor);
          if (events.length > 0) onEvents(events);
        }
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof FedgateError && (e.code === "unauthenticated" || e.code === "forbidden")) throw e;
        onEvents([{ kind: "error", error: `stream interrupted: ${(e as Error).message}` }]);
      }
      if (signal.aborted) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, backoffMs);
        signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
      });
      backoffMs = Math.min(backoffMs * 2, RECONNECT_MAX_MS);
    }
  }

  /** One batch: every entry handled in order, then the cursor is stored, then acknowledged. */
  private async process(entries: InboxEntry[], next: number): Promise<MlsEvent[]> {
    const events: MlsEvent[] = [];
    for (const entry of entries) events.push(...(await this.handle(entry)));
    this.cursor = Math.max(this.cursor, next);
    await this.opts.saveCursor?.(this.cursor);
    await this.api.ack(next);
    await this.opts.afterBatch?.();
    return events;
  }

  /**
   * Syncs (long-polling) until `want` holds for the events collected so far; remote delivery is
   * asynchronous, so this is how a caller waits for "bob has joined" or "carol got the message".
   */
  async syncUntil(want: (events: MlsEvent[]) => boolean, timeoutMs = 10_000): Promise<MlsEvent[]> {
    const events: MlsEvent[] = [];
    const clock = this.opts.clock ?? systemClock;
    const deadline = clock.nowMs() + timeoutMs;
    while (!want(events)) {
      if (clock.nowMs() > deadline) {
        throw new Error(
          `${this.api.client}: timed out after ${timeoutMs} ms (events: ${events.map((e) => e.kind).join(",") || "none"})`,
        );
      }
      events.push(...(await this.sync({ waitMs: Math.min(500, Math.max(1, deadline - clock.nowMs())) })));
    }
    return events;
  }

  /**
   * Catch-up (e.g. after `stale_epoch`): processes the group's log entries after seq `after`, with
   * `handle` (default: the reader's; a client already holding its state lock passes its inner one).
   */
  async catchUp(groupId: string, after: number, handle = this.handle): Promise<MlsEvent[]> {
    const events: MlsEvent[] = [];
    for (;;) {
      const page = await this.api.messages(groupId, after);
      for (const m of page.messages) events.push(...(await handle({ cursor: 0, groupId, ...m })));
      if (!page.more || page.next <= after) return events;
      after = page.next;
    }
  }
}
