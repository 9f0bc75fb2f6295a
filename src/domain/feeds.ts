import { domainOf, type GroupMode, type LogEntry } from "../store/port.js";

/**
 * Group feeds: how a member reads a group it belongs to without the hub writing to every member's
 * inbox on every accept (issue 10). The rules here are the specification; the memory store applies
 * them directly and the Redis store's Lua (store/lua/feed.ts) is tested against them.
 *
 * - A member's **span** in a group, kept with the group (same Redis slot, written atomically with
 *   the accept that changes the roster): the seqs it receives are those in `(start, end]`. A client
 *   added by a commit starts after that commit (`start` = the commit's seq); a client removed by a
 *   commit receives that commit and nothing after it (`end` = the commit's seq). A client removed
 *   and added again has several spans.
 * - **Member-wide** entries (application messages, commits, and proposals except a send-group's)
 *   reach every member whose span holds their seq, except their sender. The Welcome right after a
 *   span's start is the joiner's (same accept), so the feed carries it first — a joiner never sees
 *   its group's messages before its Welcome. Only a send-group's proposals (addressed to its
 *   owner) go to an inbox directly at fan-out (isAddressed); the owner's feed skips them.
 * - A member's **read mark** per group (kept with the client): the feed is read after it; the
 *   entries found are appended to the client's inbox as references (so `/v1/inbox` cursors and
 *   `ack` stay what docs/API.md says) and the mark moves in the same atomic step, so two readers
 *   of one client never append an entry twice.
 */

export interface Span {
  start: number;
  /** Absent while the client is a member. */
  end?: number;
}

/** Spans as stored: "start:end" items joined by ",", e.g. "0:12,40:" (open last span). */
export function parseSpans(text: string | undefined): Span[] {
  if (!text) return [];
  return text.split(",").map((s) => {
    const [a, b] = s.split(":");
    return b ? { start: Number(a), end: Number(b) } : { start: Number(a) };
  });
}

export function formatSpans(spans: Span[]): string {
  return spans.map((s) => `${s.start}:${s.end ?? ""}`).join(",");
}

/** A client joins after `afterSeq` (idempotent while a span is open). */
export function openSpan(spans: Span[], afterSeq: number): Span[] {
  const last = spans.at(-1);
  if (last && last.end === undefined) return spans;
  return [...spans, { start: afterSeq }];
}

/** A client leaves with the commit at `lastSeq` (no-op without an open span). */
export function closeSpan(spans: Span[], lastSeq: number): Span[] {
  const last = spans.at(-1);
  if (!last || last.end !== undefined) return spans;
  return [...spans.slice(0, -1), { start: last.start, end: lastSeq }];
}

export function inSpans(spans: Span[], seq: number): boolean {
  return spans.some((s) => seq > s.start && (s.end === undefined || seq <= s.end));
}

/** True when the client will receive nothing after `read`: every span is closed and read through. */
export function feedEnded(spans: Span[], read: number): boolean {
  return spans.every((s) => s.end !== undefined && s.end <= read);
}

/**
 * What the hub's fan-out still writes into local inboxes itself: a send-group's proposals (to its
 * owner). Everything else reaches local members through their feeds, Welcomes included.
 */
export function isAddressed(mode: GroupMode, kind: LogEntry["kind"]): boolean {
  return mode === "send-group" && kind === "proposal";
}

/** Entries the feed carries (member-wide); the rest go to their few recipients' inboxes directly. */
export function isMemberWide(mode: GroupMode, kind: LogEntry["kind"]): boolean {
  if (kind === "welcome") return false;
  return !(mode === "send-group" && kind === "proposal");
}

/** The roster change of a commit: who joins after it, who leaves with it (both at `commitSeq`). */
export interface SpanChange {
  joined: string[];
  left: string[];
  commitSeq: number;
}

export function spanChange(before: string[], after: string[], commitSeq: number): SpanChange {
  const was = new Set(before);
  const now = new Set(after);
  return { joined: after.filter((m) => !was.has(m)), left: before.filter((m) => !now.has(m)), commitSeq };
}

/** Does `entry` reach `member`, given the member's spans (the rule of this module's comment)? */
export function reaches(
  mode: GroupMode,
  member: string,
  spans: Span[],
  entry: Pick<LogEntry, "seq" | "kind" | "sender">,
): boolean {
  if (entry.sender === member) return false;
  if (entry.kind === "welcome") return spans.some((s) => entry.seq === s.start + 1);
  return isMemberWide(mode, entry.kind) && inSpans(spans, entry.seq);
}

/**
 * One feed read: which of `entries` (the group log after `read`, in seq order) reach `member`,
 * and how far the read got. `through` is the last seq examined, so the next read starts after it.
 */
export function feedPage(
  mode: GroupMode,
  member: string,
  spans: Span[],
  entries: Pick<LogEntry, "seq" | "kind" | "sender">[],
): { seqs: number[]; through: number | undefined } {
  const seqs: number[] = [];
  for (const e of entries) if (reaches(mode, member, spans, e)) seqs.push(e.seq);
  return { seqs, through: entries.at(-1)?.seq };
}

/** Where a feed read after `read` starts (past the gaps between spans), or undefined when it has ended. */
export function feedStart(spans: Span[], read: number): number | undefined {
  for (const s of spans) {
    if (s.end !== undefined && s.end <= read) continue;
    return Math.max(read, s.start);
  }
  return undefined;
}

/** What the group side of a feed read answers (store.readFeed). */
export type FeedRead =
  /** The group keeps no span for this member (or is a replica whose feed was never derived). */
  { kind: "none" } | { kind: "page"; seqs: number[]; through: number; ended: boolean };

/** The whole group-side read, given the member's spans and a log reader (both stores use this order). */
export async function readFeedWith(
  mode: GroupMode,
  member: string,
  spans: Span[] | undefined,
  afterSeq: number,
  readLog: (after: number) => Promise<Pick<LogEntry, "seq" | "kind" | "sender">[]>,
): Promise<FeedRead> {
  if (!spans || spans.length === 0) return { kind: "none" };
  const from = feedStart(spans, afterSeq);
  if (from === undefined) return { kind: "page", seqs: [], through: afterSeq, ended: true };
  const page = feedPage(mode, member, spans, await readLog(from));
  const through = page.through ?? from;
  return { kind: "page", seqs: page.seqs, through, ended: feedEnded(spans, through) };
}

/**
 * An accept that needs no fan-out at all: its entries are all member-wide (the members read them
 * from the feed), no member is a client of another provider (no outbox), and every earlier entry
 * was fanned out already (`dispatched` = the seq before this accept's first). Such an accept marks
 * the group dispatched itself, so the common case — a message to a group of this provider's
 * clients — costs one store script, whatever the group size.
 */
export function settlesInAccept(
  group: { mode: GroupMode; hub: string; members: string[] },
  membersAfter: string[],
  entries: Pick<LogEntry, "seq" | "kind">[],
  dispatched: number,
): boolean {
  if (entries.length === 0 || dispatched !== entries[0]!.seq - 1) return false;
  if (!entries.every((e) => isMemberWide(group.mode, e.kind))) return false;
  const local = (m: string) => domainOf(m) === group.hub;
  return group.members.every(local) && membersAfter.every(local);
}

/** One step of a replica's span bookkeeping; steps are applied in order (openSpan / closeSpan). */
export interface SpanStep {
  client: string;
  op: "open" | "close";
  seq: number;
}

/**
 * Feeds on a follower (a replica of a group another provider orders). The hub tells a follower
 * each entry's recipients among its clients, not the roster history, so a replica's spans mirror
 * those recipient lists: the clients an entry reaches — its recipients and, if local, its sender —
 * are the ones whose span holds it. A member-wide entry (in seq order) opens a span after the
 * previous seq for each of them without one and closes the span of every other open client at the
 * previous seq; a Welcome opens its joiners' spans right before it (so the Welcome is the first
 * thing they read). Within one epoch the roster cannot change, so only the first entry of each
 * epoch is compared (O(members) per epoch, not per message); an entry with nobody to reach
 * (recipients withheld: an unknown sender) is compared too, and so is the one after it.
 * `open` is the set of local clients with an open span before `entries`; it is updated in place.
 */
export function replicaSpanSteps(
  mode: GroupMode,
  open: Set<string>,
  entries: Pick<LogEntry, "seq" | "kind" | "epoch" | "sender" | "recipients">[],
  isLocal: (client: string) => boolean,
): SpanStep[] {
  const steps: SpanStep[] = [];
  const close = (client: string, seq: number) => {
    steps.push({ client, op: "close", seq });
    open.delete(client);
  };
  const start = (client: string, seq: number) => {
    steps.push({ client, op: "open", seq });
    open.add(client);
  };
  let compared: { epoch: number; reachedSomebody: boolean } | undefined;
  for (const e of entries) {
    if (e.kind === "welcome") {
      // A joiner with a span still open (a lost removal) gets a fresh one, so the Welcome is its start.
      for (const c of e.recipients) {
        if (!isLocal(c)) continue;
        if (open.has(c)) close(c, e.seq - 1);
        start(c, e.seq - 1);
      }
      continue;
    }
    // A send-group's proposals go to its owner's inbox directly (isAddressed): not a roster.
    if (!isMemberWide(mode, e.kind)) continue;
    if (compared && compared.epoch === e.epoch && compared.reachedSomebody && e.recipients.length > 0) continue;
    const reached = new Set(e.recipients.filter(isLocal));
    if (isLocal(e.sender)) reached.add(e.sender);
    for (const c of [...open]) if (!reached.has(c)) close(c, e.seq - 1);
    for (const c of reached) if (!open.has(c)) start(c, e.seq - 1);
    compared = { epoch: e.epoch, reachedSomebody: reached.size > 0 };
  }
  return steps;
}

/** Applies SpanSteps to one client's spans (the stores' shared rule; Lua has its twin). */
export function applySpanStep(spans: Span[], step: Pick<SpanStep, "op" | "seq">): Span[] {
  return step.op === "open" ? openSpan(spans, step.seq) : closeSpan(spans, step.seq);
}
