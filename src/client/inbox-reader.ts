import type { FedgateApi, InboxEntry } from "./api.js";

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

/**
 * The inbox loop every client shares (MlsClient on ts-mls, test adapters of other implementations):
 * read, hand each entry to the implementation's `handle`, acknowledge; wait for events; catch up
 * on a group's log. Catch-up entries are handed over with cursor 0.
 */
export class InboxReader {
  private cursor = 0;

  constructor(
    private readonly api: FedgateApi,
    private readonly handle: (entry: InboxEntry) => Promise<MlsEvent[]>,
  ) {}

  /** Reads the inbox (long-poll up to waitMs), processes every entry in order, acknowledges, returns events. */
  async sync(opts: { waitMs?: number } = {}): Promise<MlsEvent[]> {
    const events: MlsEvent[] = [];
    for (;;) {
      const { messages, next } = await this.api.inbox(this.cursor, { waitMs: events.length === 0 ? (opts.waitMs ?? 0) : 0 });
      for (const entry of messages) events.push(...(await this.handle(entry)));
      if (messages.length === 0) break;
      this.cursor = next;
      await this.api.ack(next);
    }
    return events;
  }

  /**
   * Syncs (long-polling) until `want` holds for the events collected so far; remote delivery is
   * asynchronous, so this is how a caller waits for "bob has joined" or "carol got the message".
   */
  async syncUntil(want: (events: MlsEvent[]) => boolean, timeoutMs = 10_000): Promise<MlsEvent[]> {
    const events: MlsEvent[] = [];
    const deadline = Date.now() + timeoutMs;
    while (!want(events)) {
      if (Date.now() > deadline) {
        throw new Error(
          `${this.api.client}: timed out after ${timeoutMs} ms (events: ${events.map((e) => e.kind).join(",") || "none"})`,
        );
      }
      events.push(...(await this.sync({ waitMs: Math.min(500, Math.max(1, deadline - Date.now())) })));
    }
    return events;
  }

  /** Catch-up (e.g. after `stale_epoch`): processes the group's log entries after seq `after`. */
  async catchUp(groupId: string, after: number): Promise<MlsEvent[]> {
    const events: MlsEvent[] = [];
    for (;;) {
      const page = await this.api.messages(groupId, after);
      for (const m of page.messages) events.push(...(await this.handle({ cursor: 0, groupId, ...m })));
      if (!page.more || page.next <= after) return events;
      after = page.next;
    }
  }
}
