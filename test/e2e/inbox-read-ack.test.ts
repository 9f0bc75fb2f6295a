/**
 * GET /v1/inbox?ack=<cursor> (docs/API.md §9.1): a polling reader acknowledges what it processed
 * in its next read's round trip. A refused read acknowledges nothing.
 */
import { MlsClient } from "../../src/client/index.js";
import { startProvider, stopAll, type Provider } from "../helpers/providers.js";

type Page = { messages: { cursor: number; kind: string; seq?: number }[]; next: number };

describe("GET /v1/inbox?ack=", () => {
  let a: Provider;
  let alice: MlsClient, bob: MlsClient;
  let groupId: string;

  beforeAll(async () => {
    a = await startProvider("a.example");
    alice = await MlsClient.connect(a.url, "alice@a.example/phone");
    bob = await MlsClient.connect(a.url, "bob@a.example/laptop");
    await bob.publishKeyPackages(1);
    groupId = await alice.createGroup();
    await alice.addUsers(groupId, ["bob@a.example"]);
    for (const text of ["one", "two", "three"]) await alice.send(groupId, text);
  });
  afterAll(() => stopAll([a]));

  const read = (query: string) => bob.api.request<Page>("GET", `/v1/inbox?${query}`);

  it("drops the entries up to the cursor, then reads after `after`, in one request", async () => {
    const all = await read("after=0");
    expect(all.messages.filter((m) => m.kind === "application")).toHaveLength(3);
    const [, second, third] = all.messages;

    const page = await read(`after=${second!.cursor}&ack=${second!.cursor}&limit=1`);
    expect(page.messages.map((m) => m.cursor)).toEqual([third!.cursor]);
    // The first two are gone; the rest stays until acknowledged.
    const left = await read("after=0");
    expect(left.messages.map((m) => m.cursor)).toEqual(all.messages.slice(2).map((m) => m.cursor));
  });

  it("acknowledges nothing when the read is refused", async () => {
    const before = await read("after=0");
    const last = before.messages.at(-1)!.cursor;
    await expect(read(`after=0&ack=${last}&limit=ten`)).rejects.toMatchObject({ status: 400, code: "bad_request" });
    await expect(read(`after=0&ack=-1`)).rejects.toMatchObject({ status: 400, code: "bad_request" });
    expect((await read("after=0")).messages).toEqual(before.messages);
    // The SDK's option sends the same parameter.
    const empty = await bob.api.inbox(last, { ack: last });
    expect(empty.messages).toEqual([]);
    expect((await read("after=0")).messages).toEqual([]);
  });
});
