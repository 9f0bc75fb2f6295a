import { domainOf } from "./port.js";
import { applySpanStep, closeSpan, inSpans, openSpan, spanChange, type Span, type SpanStep } from "../domain/feeds.js";

/**
 * The memory store's feed state (domain/feeds.ts): spans per hub group and member, read marks per
 * client. Kept apart from MemoryStore so the store file stays about storage, not this bookkeeping.
 */
export class MemoryFeeds {
  /** groupId → member → spans (groups ordered here; a replica's, from replicaSpanSteps). */
  private spans = new Map<string, Map<string, Span[]>>();
  /** client → feed key → read mark. */
  private marks = new Map<string, Map<string, number>>();

  /** A group created here: its first members read after `afterSeq`. */
  created(groupId: string, members: string[], afterSeq: number): void {
    const m = new Map<string, Span[]>();
    for (const c of members) m.set(c, openSpan([], afterSeq));
    this.spans.set(groupId, m);
  }

  /** An accepted roster change (same synchronous step as the accept). */
  changed(groupId: string, before: string[], after: string[], commitSeq: number): void {
    const m = this.spans.get(groupId);
    if (!m) return;
    const change = spanChange(before, after, commitSeq);
    for (const c of change.joined) m.set(c, openSpan(m.get(c) ?? [], change.commitSeq));
    for (const c of change.left) m.set(c, closeSpan(m.get(c) ?? [], change.commitSeq));
  }

  /** A replica's span steps (domain/feeds.ts, replicaSpanSteps), in order; returns the clients whose span opened. */
  stepped(groupId: string, steps: SpanStep[]): string[] {
    let m = this.spans.get(groupId);
    if (!m) {
      m = new Map();
      this.spans.set(groupId, m);
    }
    const opened = new Set<string>();
    for (const step of steps) {
      m.set(step.client, applySpanStep(m.get(step.client) ?? [], step));
      if (step.op === "open") opened.add(step.client);
    }
    return [...opened];
  }

  /** Members whose last span is open. */
  openMembers(groupId: string): string[] {
    const out: string[] = [];
    for (const [member, spans] of this.spans.get(groupId) ?? []) {
      const last = spans.at(-1);
      if (last && last.end === undefined) out.push(member);
    }
    return out;
  }

  spansOf(groupId: string, member: string): Span[] | undefined {
    const s = this.spans.get(groupId)?.get(member);
    return s && [...s];
  }

  marksOf(client: string): Map<string, number> {
    return new Map(this.marks.get(client) ?? []);
  }

  /**
   * Moves a mark forward (never back); returns the previous one. An ended feed keeps its mark (it
   * says how far the member read, which log trimming needs).
   */
  advance(client: string, key: string, through: number): number {
    let m = this.marks.get(client);
    if (!m) {
      m = new Map();
      this.marks.set(client, m);
    }
    const previous = m.get(key) ?? 0;
    if (through > previous) m.set(key, through);
    return previous;
  }

  /**
   * May the hub's log entry at `seq` go as far as feeds are concerned: every member whose span
   * holds it has read past it. A virtual member (`user/*`, read by each device with its own mark)
   * never says yes: such groups' entries go by the retention period.
   */
  readByAll(groupId: string, hub: string | undefined, seq: number, markOf: (member: string) => number | undefined): boolean {
    const m = this.spans.get(groupId);
    if (!m) return true;
    for (const [member, spans] of m) {
      // Members of other providers get entries through the outbox (counted as references).
      // (A replica's spans name this provider's clients only: hub undefined.)
      if ((hub !== undefined && domainOf(member) !== hub) || !inSpans(spans, seq)) continue;
      if (member.endsWith("/*")) return false;
      if ((markOf(member) ?? 0) < seq) return false;
    }
    return true;
  }

  /** The mark of a member's own feed of a group (feed key = group id). */
  markOf(member: string, groupId: string): number | undefined {
    return this.marks.get(member)?.get(groupId);
  }

  /** For the fuzz fingerprint and tests: everything held, as plain data. */
  snapshot(): { spans: [string, [string, Span[]][]][]; marks: [string, [string, number][]][] } {
    return {
      spans: [...this.spans].map(([g, m]) => [g, [...m]]),
      marks: [...this.marks].map(([c, m]) => [c, [...m]]),
    };
  }
}
