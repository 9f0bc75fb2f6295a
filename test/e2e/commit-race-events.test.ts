import { MlsClient, type MlsEvent } from "../../src/client/index.js";
import { startProvider, stopAll, type Provider } from "../helpers/providers.js";

/**
 * A commit that loses a race (stale_epoch) is rebuilt after catching up on the winner's commit
 * and the messages around it. Those entries are applied during the catch-up and never again, so
 * their events (a chat line, a call signal, the winner's commit) must still reach the application.
 */
describe("events applied while a commit catches up", () => {
  let a: Provider;
  let alice: MlsClient;
  let bob: MlsClient;
  let groupId: string;

  beforeAll(async () => {
    a = await startProvider("a.example");
    [alice, bob] = await Promise.all([
      MlsClient.connect(a.url, "alice@a.example/web"),
      MlsClient.connect(a.url, "bob@a.example/web"),
    ]);
    await bob.publishKeyPackages(1);
    groupId = await alice.createGroup();
    await alice.addUsers(groupId, ["bob@a.example"]);
    await bob.syncUntil((e) => e.some((x) => x.kind === "joined"));
  });
  afterAll(() => stopAll([a]));

  it("reports the winner's commit and the message sent after it with the next batch", async () => {
    await bob.update(groupId); // epoch 2
    await bob.send(groupId, "sent at epoch 2");
    // alice has not synced: her commit is built on epoch 1, refused, rebuilt on epoch 2 after catching up.
    const { epoch, attempts } = await alice.update(groupId);
    expect([epoch, attempts]).toEqual([3, 2]);
    const events: MlsEvent[] = await alice.sync();
    expect(events.map((e) => (e.kind === "message" ? `message: ${e.text}` : e.kind))).toEqual([
      "commit",
      "message: sent at epoch 2",
    ]);
    expect(events[0]).toMatchObject({ kind: "commit", sender: "bob@a.example/web", epoch: 2 });
    // Reported once: the inbox entries of those messages bring nothing more.
    expect(await alice.sync()).toEqual([]);
  });
});
