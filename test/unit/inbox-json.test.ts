/**
 * GET /v1/inbox and its stream are served from shared per-entry encodings (http/inbox-json.ts):
 * the bytes must be exactly what serializing the wire entries gives, whatever the entries hold.
 */
import fc from "fast-check";
import { wireEntry, type InboxRow } from "../../src/domain/inbox.js";
import { encodeInboxEvent, encodeInboxPage } from "../../src/http/inbox-json.js";
import type { EntryBody } from "../../src/store/port.js";

const body = fc.record({
  seq: fc.nat(),
  kind: fc.constantFrom("application", "proposal", "commit", "welcome" as const),
  epoch: fc.nat(),
  sender: fc.string({ unit: "binary" }),
  message: fc.base64String(),
  sha256: fc.string(),
}) as fc.Arbitrary<EntryBody>;

const entryRow: fc.Arbitrary<InboxRow> = fc.record({ cursor: fc.nat(), groupId: fc.string(), body });
const noticeRow: fc.Arbitrary<InboxRow> = fc
  .record({
    cursor: fc.nat(),
    kind: fc.constantFrom("device_update", "commit_conflict", "key_packages_low"),
    // Unicode too: a notice's body is not base64.
    text: fc.string({ unit: "grapheme" }),
  })
  .map(({ cursor, kind, text }) => ({ cursor, notice: { user: text, cursor, kind } as never }));
const rows = fc.array(fc.oneof(entryRow, noticeRow), { maxLength: 20 });

describe("inbox encodings shared between readers", () => {
  it("a page is byte for byte JSON.stringify of its wire entries", () => {
    fc.assert(
      fc.property(rows, fc.nat(), (page, next) => {
        const expected = JSON.stringify({ messages: page.map(wireEntry), next });
        expect(encodeInboxPage({ rows: page, next }).toString()).toBe(expected);
      }),
    );
  });

  it("an event is the id, the kind and the entry's JSON, as the stream always wrote them", () => {
    fc.assert(
      fc.property(fc.oneof(entryRow, noticeRow), (row) => {
        const m = wireEntry(row);
        expect(encodeInboxEvent(row).toString()).toBe(`id: ${m.cursor}\nevent: ${m.kind}\ndata: ${JSON.stringify(m)}\n\n`);
      }),
    );
  });

  it("one body read by many members under different cursors keeps each member's cursor", () => {
    const shared: EntryBody = { seq: 7, kind: "application", epoch: 2, sender: "a@a.example/1", message: "AAAA", sha256: "00" };
    const first = JSON.parse(encodeInboxPage({ rows: [{ cursor: 3, groupId: "g", body: shared }], next: 3 }).toString());
    const second = JSON.parse(encodeInboxPage({ rows: [{ cursor: 41, groupId: "g", body: shared }], next: 41 }).toString());
    expect(first.messages[0]).toEqual({
      cursor: 3,
      kind: "application",
      groupId: "g",
      seq: 7,
      epoch: 2,
      sender: "a@a.example/1",
      message: "AAAA",
    });
    expect(second.messages[0].cursor).toBe(41);
    expect(second.next).toBe(41);
  });
});
