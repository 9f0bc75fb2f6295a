import type { Store } from "../store/port.js";
import { FeedReader } from "./feed-reader.js";
import type { InboxEntry as WireInboxEntry } from "../wire/client-api.js";

export type { WireInboxEntry };

/**
 * Inbox reads: the client's group feeds pulled in first (domain/feed-reader.ts), then references
 * resolved against the group logs (payload stored once), notices inline.
 */
export class Inbox {
  private readonly feeds: FeedReader;

  constructor(
    private readonly store: Store,
    private readonly maxPage: number,
    private readonly maxWaitMs: number,
  ) {
    this.feeds = new FeedReader(store);
  }

  async read(
    client: string,
    after: number,
    limit: number,
    waitMs = 0,
    signal?: AbortSignal,
  ): Promise<{ messages: WireInboxEntry[]; next: number }> {
    const page = Math.min(Math.max(1, limit), this.maxPage);
    const groups = await this.feeds.pull(client);
    let raw = await this.store.readInbox(client, after, page);
    if (raw.length === 0 && waitMs > 0) {
      const settle = async () => void (await this.feeds.pull(client));
      await this.store.waitInbox(client, after, Math.min(waitMs, this.maxWaitMs), signal, { groups, settle });
      // Woken by a group (or the wait ended): what it accepted is pulled now.
      if (!signal?.aborted) await this.feeds.pull(client);
      raw = await this.store.readInbox(client, after, page);
    }
    const byGroup = new Map<string, number[]>();
    for (const { item } of raw) {
      if (item.kind === "ref") byGroup.set(item.groupId, [...(byGroup.get(item.groupId) ?? []), item.seq]);
    }
    const resolved = new Map<string, WireInboxEntry>();
    await Promise.all(
      [...byGroup].map(async ([groupId, seqs]) => {
        // Bodies only: the recipient lists grow with the group and an inbox read never needs them.
        const entries = await this.store.readEntryBodies(groupId, seqs);
        entries.forEach((e) => {
          if (e)
            resolved.set(`${groupId}:${e.seq}`, {
              cursor: 0,
              kind: e.kind,
              groupId,
              seq: e.seq,
              epoch: e.epoch,
              sender: e.sender,
              message: e.message,
            });
        });
      }),
    );
    const messages: WireInboxEntry[] = [];
    for (const { cursor, item } of raw) {
      if (item.kind === "notice") {
        messages.push({ ...item.body, cursor, kind: item.type });
        continue;
      }
      const entry = resolved.get(`${item.groupId}:${item.seq}`);
      if (entry) messages.push({ ...entry, cursor });
    }
    return { messages, next: raw.length ? raw[raw.length - 1]!.cursor : after };
  }

  ack(client: string, upTo: number): Promise<number> {
    return this.store.ackInbox(client, upTo);
  }
}
