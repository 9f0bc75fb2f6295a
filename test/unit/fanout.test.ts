import { pino } from "pino";
import { Dispatcher, SYNC_FANOUT_MAX_RECIPIENTS } from "../../src/domain/fanout.js";
import { MemoryStore } from "../../src/store/memory.js";
import type { InboxItem, LogEntry } from "../../src/store/port.js";

/** A memory store whose inbox pipeline can be held, to see what the dispatcher waits for. */
class GatedStore extends MemoryStore {
  calls: { client: string; items: InboxItem[] }[][] = [];
  private gate: Promise<void> = Promise.resolve();
  private open: () => void = () => {};

  hold(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }

  release(): void {
    this.open();
  }

  override async appendInboxMany(deliveries: { client: string; items: InboxItem[] }[]): Promise<void> {
    this.calls.push(deliveries);
    await this.gate;
    await super.appendInboxMany(deliveries);
  }
}

const members = (n: number) => Array.from({ length: n }, (_, i) => `u${i}@a.example/d`);

/**
 * Entries addressed to their recipients (a send-group's proposals, to its owner): what the hub's
 * fan-out still writes to inboxes. Everything else is read from the group feed (the last test).
 */
function entry(seq: number, recipients: string[], sender = "s@a.example/d"): LogEntry {
  return { seq, kind: "proposal", epoch: 0, sender, message: `m${seq}`, sha256: `h${seq}`, recipients };
}

function dispatcher(store: MemoryStore): Dispatcher {
  const notified: string[] = [];
  return new Dispatcher("a.example", store, { notify: (p) => notified.push(p) }, pino({ level: "silent" }));
}

const settled = async (p: Promise<unknown>) => {
  let done = false;
  void p.then(() => (done = true));
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  return done;
};

describe("the fan-out dispatcher", () => {
  it("answers a small group's submitter only after every local inbox has the entry", async () => {
    const store = new GatedStore();
    const group = members(10);
    store.hold();
    const done = dispatcher(store).dispatch("g", [entry(1, group)], [...group, "s@a.example/d"], "send-group");
    expect(await settled(done)).toBe(false);
    store.release();
    await done;
    for (const m of group)
      expect((await store.readInbox(m, 0, 10)).map((x) => x.item)).toEqual([{ kind: "ref", groupId: "g", seq: 1 }]);
  });

  it("answers a large group's submitter once ordered and completes the fan-out in the background, in order", async () => {
    const store = new GatedStore();
    const group = members(SYNC_FANOUT_MAX_RECIPIENTS + 1);
    const d = dispatcher(store);
    store.hold();
    const first = d.dispatch("g", [entry(1, group)], group, "send-group");
    expect(await settled(first)).toBe(true);
    expect(await store.inboxDepth(group[0]!)).toBe(0);
    // Entries accepted meanwhile wait for the running fan-out and then go out together, sorted by seq.
    const later = [
      d.dispatch("g", [entry(3, group)], group, "send-group"),
      d.dispatch("g", [entry(2, group)], group, "send-group"),
    ];
    expect(await settled(Promise.all(later))).toBe(true);
    expect(store.calls).toHaveLength(1);
    store.release();
    for (let i = 0; i < 50 && (await store.inboxDepth(group[0]!)) < 3; i++) await new Promise((r) => setTimeout(r, 10));
    expect(store.calls).toHaveLength(2);
    expect(store.calls[1]!.find((c) => c.client === group[0])!.items).toEqual([
      { kind: "ref", groupId: "g", seq: 2 },
      { kind: "ref", groupId: "g", seq: 3 },
    ]);
    for (const m of [group[0]!, group.at(-1)!])
      expect((await store.readInbox(m, 0, 10)).map((x) => (x.item as { seq: number }).seq)).toEqual([1, 2, 3]);
  });

  it("coalesces a small group's concurrent dispatches into one inbox pipeline per batch", async () => {
    const store = new GatedStore();
    const group = members(3);
    const d = dispatcher(store);
    store.hold();
    const first = d.dispatch("g", [entry(1, group)], group, "send-group");
    expect(await settled(first)).toBe(false); // its fan-out is running (held)
    const more = [
      d.dispatch("g", [entry(3, group)], group, "send-group"),
      d.dispatch("g", [entry(2, group)], group, "send-group"),
    ];
    expect(await settled(Promise.all(more))).toBe(false);
    store.release();
    await Promise.all([first, ...more]);
    // The two that arrived while the first ran shared one call, in seq order.
    expect(store.calls.map((c) => c[0]!.items.map((i) => (i as { seq: number }).seq))).toEqual([[1], [2, 3]]);
    expect((await store.readInbox(group[1]!, 0, 10)).map((x) => (x.item as { seq: number }).seq)).toEqual([1, 2, 3]);
  });

  it("writes no inbox for member-wide entries, whatever the group size: members read them from the group feed", async () => {
    const store = new GatedStore();
    const group = members(1000);
    await store.createGroup({
      groupId: "big",
      hub: "a.example",
      mode: "ordered",
      cipherSuite: 1,
      epoch: 0,
      nextSeq: 1,
      members: group,
      owner: group[0]!,
      createdAt: 0,
    });
    const accepted = await store.submit(
      "big",
      { kind: "application", sender: group[0]!, epoch: 0, sha256: "h", message: "m" },
      0,
    );
    if (!accepted.ok) throw new Error("not accepted");
    await dispatcher(store).dispatch("big", accepted.entries, group, "ordered");
    expect(store.calls).toEqual([]);
    expect(await store.undispatched()).toEqual([]);
    expect(await store.readFeed("big", group[999]!, 0, 10)).toEqual({ kind: "page", seqs: [1], through: 1, ended: false });
  });
});
