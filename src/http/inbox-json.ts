import type { EntryBody } from "../store/port.js";
import type { InboxRow, ResolvedPage } from "../domain/inbox.js";

/**
 * An entry's JSON after its cursor — `"kind":…,"message":"…"}` — encoded once per entry object.
 * The Redis store hands every member the same body object (store/entry-cache.ts), so a message
 * read by a thousand members is serialized and UTF-8 encoded once, not a thousand times: at that
 * size, JSON.stringify and the string-to-bytes copy of the page were most of an inbox read's CPU.
 */
const fragments = new WeakMap<EntryBody, Buffer>();

function fragmentOf(groupId: string, body: EntryBody): Buffer {
  let fragment = fragments.get(body);
  if (!fragment) {
    const { kind, seq, epoch, sender, message } = body;
    fragment = Buffer.from(JSON.stringify({ kind, groupId, seq, epoch, sender, message }).slice(1));
    fragments.set(body, fragment);
  }
  return fragment;
}

/** `{"cursor":N,` then the entry; a notice as it is (no entry to share). */
function rowParts(row: InboxRow): [string, Buffer | undefined] {
  if (row.notice) return [JSON.stringify(row.notice), undefined];
  return [`{"cursor":${row.cursor},`, fragmentOf(row.groupId, row.body)];
}

/**
 * GET /v1/inbox's body, byte for byte what `JSON.stringify({ messages, next })` of the wire
 * entries gives (test/unit/inbox-json.test.ts checks it), built from the shared fragments.
 */
export function encodeInboxPage(page: ResolvedPage): Buffer {
  const parts = page.rows.map(rowParts);
  const open = '{"messages":[';
  const close = `],"next":${page.next}}`;
  let length = open.length + close.length + Math.max(0, parts.length - 1);
  for (const [head, fragment] of parts) length += Buffer.byteLength(head) + (fragment?.length ?? 0);
  const out = Buffer.allocUnsafe(length);
  let at = out.write(open, 0, "latin1");
  parts.forEach(([head, fragment], i) => {
    if (i > 0) at = out.writeUInt8(0x2c, at); // ","
    at += out.write(head, at);
    if (fragment) at += fragment.copy(out, at);
  });
  at += out.write(close, at, "latin1");
  return at === length ? out : out.subarray(0, at);
}

/** One server-sent event of GET /v1/inbox/stream: `id`, `event` (the kind), `data` (the entry's JSON). */
export function encodeInboxEvent(row: InboxRow): Buffer {
  const kind = row.notice ? row.notice.kind : row.body.kind;
  const [head, fragment] = rowParts(row);
  const prefix = Buffer.from(`id: ${row.cursor}\nevent: ${kind}\ndata: ${head}`);
  return fragment ? Buffer.concat([prefix, fragment, EVENT_END]) : Buffer.concat([prefix, EVENT_END]);
}

const EVENT_END = Buffer.from("\n\n");
