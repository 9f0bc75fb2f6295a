import { pino } from "pino";
import { Dispatcher, type DeliveredMessage } from "../../src/domain/fanout.js";
import { FeedReader } from "../../src/domain/feed-reader.js";
import { FollowerSide } from "../../src/domain/follower-side.js";
import { ReplicaSync } from "../../src/domain/replica.js";
import type { GroupView, PeerGateway } from "../../src/domain/types.js";
import { DsError } from "../../src/errors.js";
import { MemoryStore } from "../../src/store/memory.js";

const bob = "bob@b.example/1";
const alice = "alice@a.example/1";
const view: GroupView = {
  groupId: "Zw",
  hub: "a.example",
  epoch: 3,
  mode: "ordered",
  cipherSuite: 1,
  members: [alice, bob],
  owner: alice,
};

function entry(seq: number, sender: string): DeliveredMessage {
  return { groupId: "Zw", seq, kind: "application", epoch: 3, sender, message: `bTE${seq}`, sha256: "", recipients: [bob] };
}

/** Nothing here needs the hub: every test delivers contiguous entries, so no gap fill is attempted. */
const noPeers = new Proxy({} as PeerGateway, {
  get: () => () => Promise.reject(new Error("no peer calls expected")),
});

describe("a follower's replica", () => {
  it("keeps an entry from a sender no view names as a placeholder for nobody, so later entries still arrive", async () => {
    const store = new MemoryStore();
    const log = pino({ level: "silent" });
    const replica = new ReplicaSync(
      "b.example",
      store,
      noPeers,
      new Dispatcher("b.example", store, { notify: () => {} }, log),
      log,
    );
    // Seq 2: a client of a third provider, added and removed while B was unreachable: no view B saw names it.
    const refused = await replica.deliver("a.example", "Zw", view, [entry(1, alice), entry(2, "x@d.example/1"), entry(3, alice)]);
    expect(refused).toEqual([{ groupId: "Zw", seq: 2, code: "not_a_member", message: "x@d.example/1 is not a member of Zw" }]);
    expect(await store.contiguousSeq("Zw")).toBe(3);
    // The replica's entries reach bob through its feed (domain/feeds.ts, replicaSpanSteps).
    await new FeedReader(store).pull(bob);
    const inbox = await store.readInbox(bob, 0, 10);
    expect(inbox.map(({ item }) => (item.kind === "ref" ? item.seq : -1))).toEqual([1, 3]);
  });

  it("refuses every entry of a group whose view names another hub than the caller, storing nothing", async () => {
    const store = new MemoryStore();
    const log = pino({ level: "silent" });
    const replica = new ReplicaSync(
      "b.example",
      store,
      noPeers,
      new Dispatcher("b.example", store, { notify: () => {} }, log),
      log,
    );
    const refused = await replica.deliver("c.example", "Zw", view, [entry(1, alice)]);
    expect(refused).toMatchObject([{ seq: 1, code: "forbidden" }]);
    expect(await store.getGroup("Zw")).toBeUndefined();
  });
});

describe("a follower's catch-up read", () => {
  /** B holds a replica of Zw (seq 1 delivered, bob a member); the hub answers pulls with `hubView` and seq 2. */
  async function followerWithHubView(hubView: GroupView) {
    const store = new MemoryStore();
    const log = pino({ level: "silent" });
    const pulls: number[] = [];
    const peers = new Proxy({} as PeerGateway, {
      get: (_t, name) =>
        name === "messages"
          ? (_hub: string, _groupId: string, after: number) => {
              pulls.push(after);
              return Promise.resolve({ group: hubView, entries: after < 2 ? [{ ...entry(2, alice), sha256: "" }] : [] });
            }
          : () => Promise.reject(new Error(`no ${String(name)} call expected`)),
    });
    const replica = new ReplicaSync(
      "b.example",
      store,
      peers,
      new Dispatcher("b.example", store, { notify: () => {} }, log),
      log,
    );
    expect(await replica.deliver("a.example", "Zw", view, [entry(1, alice)])).toEqual([]);
    const follower = new FollowerSide(store, peers, replica);
    const state = async () => ({
      group: await store.getGroup("Zw"),
      contiguous: await store.contiguousSeq("Zw"),
      log: await store.readLog("Zw", 0, 10),
      feed: await store.readFeed("Zw", bob, 0, 10),
    });
    return { store, follower, pulls, state };
  }

  it("refuses a reader the hub's answer leaves out before storing any of that answer", async () => {
    const { store, follower, pulls, state } = await followerWithHubView({ ...view, members: [alice] });
    const before = await state();
    const refused = await follower.forLogRead(bob, (await store.getGroup("Zw"))!).catch((e: unknown) => e);
    expect(pulls).toEqual([1]);
    expect(await state()).toEqual(before);
    expect(before.group?.members).toEqual([alice, bob]);
    expect(refused).toBeInstanceOf(DsError);
    expect((refused as DsError).code).toBe("not_a_member");
  });

  it("stores what the hub has beyond the replica for a reader it still lists", async () => {
    const { store, follower, state } = await followerWithHubView({ ...view, members: [bob, alice] });
    const g = await follower.forLogRead(bob, (await store.getGroup("Zw"))!);
    expect(g.members).toEqual([bob, alice]);
    const after = await state();
    expect(after.contiguous).toBe(2);
    expect(after.feed).toEqual({ kind: "page", seqs: [1, 2], through: 2, ended: false });
  });

  it("judges the reader by the member list the replica keeps: an answer at an older epoch does not replace it", async () => {
    const { store, follower, state } = await followerWithHubView({ ...view, epoch: 2, members: [alice] });
    const g = await follower.forLogRead(bob, (await store.getGroup("Zw"))!);
    expect(g.members).toEqual([alice, bob]);
    expect((await state()).contiguous).toBe(2);
  });
});
