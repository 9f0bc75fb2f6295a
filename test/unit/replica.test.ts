import { pino } from "pino";
import { Dispatcher, type DeliveredMessage } from "../../src/domain/fanout.js";
import { ReplicaSync } from "../../src/domain/replica.js";
import type { GroupView, PeerGateway } from "../../src/domain/types.js";
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
