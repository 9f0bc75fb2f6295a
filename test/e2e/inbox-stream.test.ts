import { request } from "undici";
import { MlsClient } from "../../src/client/index.js";
import { startProvider, stopAll, type Provider } from "../helpers/providers.js";

describe("the inbox", () => {
  let a: Provider;
  let alice: MlsClient;
  let bob: MlsClient;
  let groupId: string;

  beforeAll(async () => {
    a = await startProvider("a.example");
    alice = await MlsClient.connect(a.url, "alice@a.example/1");
    bob = await MlsClient.connect(a.url, "bob@a.example/1");
    await bob.publishKeyPackages(1);
    groupId = await alice.createGroup();
    await alice.addUsers(groupId, ["bob@a.example"]);
    await bob.sync();
  });
  afterAll(() => stopAll([a]));

  it("long-polls until an entry arrives", async () => {
    const started = Date.now();
    const waiting = bob.api.inbox(0, { waitMs: 5000 });
    setTimeout(() => void alice.send(groupId, "ping"), 150);
    const page = await waiting;
    expect(page.messages).toEqual([expect.objectContaining({ kind: "application", groupId, sender: "alice@a.example/1" })]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
    expect(Date.now() - started).toBeLessThan(4000);
    await bob.api.ack(page.next);
  });

  it("deletes acknowledged entries and keeps the rest", async () => {
    await alice.send(groupId, "one");
    await alice.send(groupId, "two");
    const page = await bob.api.inbox(0);
    expect(page.messages).toHaveLength(2);
    await bob.api.ack(page.messages[0]!.cursor);
    const after = await bob.api.inbox(0);
    expect(after.messages.map((m) => m.cursor)).toEqual([page.messages[1]!.cursor]);
    await bob.api.ack(after.next);
    expect((await bob.api.inbox(0)).messages).toEqual([]);
  });

  it("streams entries as server-sent events", async () => {
    const token = (await (
      await fetch(`${a.url}/v1/dev/token`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ client: "bob@a.example/1" }),
      })
    ).json()) as { token: string };
    const abort = new AbortController();
    const res = await request(`${a.url}/v1/inbox/stream`, {
      headers: { authorization: `Bearer ${token.token}` },
      signal: abort.signal,
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toContain("text/event-stream");
    setTimeout(() => void alice.send(groupId, "streamed"), 100);
    let text = "";
    for await (const chunk of res.body) {
      text += chunk.toString();
      if (text.includes("event: application")) break;
    }
    abort.abort();
    const data = text.split("\n").find((l) => l.startsWith("data: "));
    expect(JSON.parse(data!.slice(6))).toMatchObject({ kind: "application", groupId, sender: "alice@a.example/1" });
    expect(text).toMatch(/^id: \d+$/m);
  });
});
