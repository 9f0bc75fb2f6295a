import type { EntryBody, Store } from "../store/port.js";
import { FeedReader } from "./feed-reader.js";
import type { InboxEntry as WireInboxEntry } from "../wire/client-api.js";

export type { WireInboxEntry };

/**
 * One inbox message as read: a log entry (the store's body object, shared by every member that
 * reads it, so its serialization can be shared too: http/inbox-json.ts) or a notice.
 */
export type InboxRow =
  { cursor: number; groupId: string; body: EntryBody; notice?: undefined } | { cursor: number; notice: WireInboxEntry };

export interface ResolvedPage {
  rows: InboxRow[];
  next: number;
}

/** The wire form of a log entry row (docs/API.md §9): the cursor first, then the entry. */
export function wireEntry(row: InboxRow): WireInboxEntry {
  if (row.notice) return row.notice;
  const { body, groupId } = row;
  return {
    cursor: row.cursor,
    kind: body.kind,
    groupId,
    seq: body.seq,
    epoch: body.epoch,
    sender: body.sender,
    message: body.message,
  };
}

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
    const { rows, next } = await this.readRows(client, after, limit, waitMs, signal);
    return { messages: rows.map(wireEntry), next };
  }

  /** read() before the wire form: what the HTTP layer serializes without copying each entry. */
  async readRows(client: string, after: number, limit: number, waitMs = 0, signal?: AbortSignal): Promise<ResolvedPage> {
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
      if (item.kind !== "ref") continue;
      const seqs = byGroup.get(item.groupId);
      if (seqs) seqs.push(item.seq);
      else byGroup.set(item.groupId, [item.seq]);
    }
    const resolved = new Map<string, Map<number, EntryBody>>();
    await Promise.all(
      [...byGroup].map(async ([groupId, seqs]) => {
        // Bodies only: the recipient lists grow with the group and an inbox read never needs them.
        const bodies = new Map<number, EntryBody>();
        for (const e of await this.store.readEntryBodies(groupId, seqs)) if (e) bodies.set(e.seq, e);
        resolved.set(groupId, bodies);
      }),
    );
    const rows: InboxRow[] = [];
    for (const { cursor, item } of raw) {
      if (item.kind === "notice") {
        rows.push({ cursor, notice: { ...item.body, cursor, kind: item.type } });
        continue;
      }
      const body = resolved.get(item.groupId)?.get(item.seq);
      if (body) rows.push({ cursor, groupId: item.groupId, body });
    }
    return { rows, next: raw.length ? raw[raw.length - 1]!.cursor : after };
  }

  ack(client: string, upTo: number): Promise<number> {
    return this.store.ackInbox(client, upTo);
  }
}
