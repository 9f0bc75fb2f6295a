import { createServer, type Server, type Socket } from "node:net";
import { MlsClient, type MlsEvent } from "../../src/client/index.js";
import { MemoryStore } from "../../src/store/memory.js";
import { freePort } from "../helpers/global-setup.js";
import { startProvider, stopAll, testKey, type Provider } from "../helpers/providers.js";

const texts = (ev: MlsEvent[]) => ev.flatMap((e) => (e.kind === "message" ? [e.text] : []));

async function syncUntil(client: MlsClient, count: number, timeoutMs = 20_000): Promise<MlsEvent[]> {
  const events: MlsEvent[] = [];
  const deadline = Date.now() + timeoutMs;
  while (texts(events).length < count) {
    if (Date.now() > deadline) throw new Error(`${client.id}: ${texts(events).length}/${count} messages`);
    events.push(...(await client.sync({ waitMs: 300 })));
  }
  return events;
}

describe("the durable outbox delivers everything, in order, once", () => {
  it("holds 50 messages while the follower is down and delivers all of them after it restarts", async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const peersOf = (other: string, port: number) => ({
      federation: {
        peers: { [other]: { url: `http://127.0.0.1:${port}` } },
        outbox: { batchSize: 20, retryBaseMs: 50, retryMaxMs: 400, pollMs: 200 },
      },
    });
    const bStore = new MemoryStore();
    const bKey = await testKey();
    const a = await startProvider("a.example", { port: pa, ...peersOf("b.example", pb) });
    const startB = () =>
      startProvider("b.example", { port: pb, ...peersOf("a.example", pa) }, { store: bStore, signingKey: bKey });
    let b: Provider = await startB();
    try {
      const alice = await MlsClient.connect(a.url, "alice@a.example/1");
      const bob = await MlsClient.connect(b.url, "bob@b.example/1");
      const carol = await MlsClient.connect(b.url, "carol@b.example/1");
      for (const c of [bob, carol]) await c.publishKeyPackages(1);
      const groupId = await alice.createGroup();
      await alice.addUsers(groupId, ["bob@b.example", "carol@b.example"]);
      for (const c of [bob, carol]) {
        const ev = await c.sync({ waitMs: 2000 });
        expect(ev.some((e) => e.kind === "joined")).toBe(true);
      }

      await b.ds.close();
      for (let i = 0; i < 50; i++) await alice.send(groupId, `m${i}`);
      const depth = await a.ds.ctx.store.outboxStats("b.example");
      expect(depth.depth).toBeGreaterThanOrEqual(50);

      b = await startB();
      for (const c of [bob, carol]) {
        const got = texts(await syncUntil(c, 50));
        expect(got).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`));
      }
      // Nothing more arrives, no duplicates: a marker sent now is the very next thing bob gets
      // (one ordered outbox per peer, inbox cursors in order), so anything else would come first.
      await alice.send(groupId, "marker");
      expect(texts(await syncUntil(bob, 1))).toEqual(["marker"]);
      expect((await a.ds.ctx.store.outboxStats("b.example")).depth).toBe(0);
    } finally {
      await stopAll([a, b]);
    }
  });

  it("fills a gap from the hub when a delivery is missing", async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const a = await startProvider("a.example", {
      port: pa,
      federation: { peers: { "b.example": { url: `http://127.0.0.1:${pb}` } } },
    });
    const b = await startProvider("b.example", {
      port: pb,
      federation: { peers: { "a.example": { url: `http://127.0.0.1:${pa}` } } },
    });
    try {
      const alice = await MlsClient.connect(a.url, "alice@a.example/1");
      const bob = await MlsClient.connect(b.url, "bob@b.example/1");
      await bob.publishKeyPackages(1);
      const groupId = await alice.createGroup();
      await alice.addUsers(groupId, ["bob@b.example"]);
      await bob.sync({ waitMs: 2000 });
      // Lose entry 3 on the way to b: drop it from the outbox before the worker sends it.
      await a.ds.ctx.outbox.stop();
      await alice.send(groupId, "first");
      await alice.send(groupId, "second");
      const queued = await a.ds.ctx.store.peekOutbox("b.example", 10);
      await a.ds.ctx.store.ackOutbox("b.example", queued[0]!.cursor);
      await a.ds.ctx.outbox.flushOnce("b.example");
      const got = texts(await syncUntil(bob, 2));
      expect(got).toEqual(["first", "second"]);
    } finally {
      await stopAll([a, b]);
    }
  });
});

describe("a peer that never answers", () => {
  let blackhole: Server;
  const sockets: Socket[] = [];
  afterAll(() => {
    sockets.forEach((s) => s.destroy());
    blackhole.close();
  });

  it("yields peer_unreachable on claims quickly instead of hanging", async () => {
    blackhole = createServer((s) => sockets.push(s));
    const port = await freePort();
    await new Promise<void>((r) => blackhole.listen(port, "127.0.0.1", r));
    const a = await startProvider("a.example", {
      federation: { requestTimeoutMs: 500, peers: { "b.example": { url: `http://127.0.0.1:${port}` } } },
    });
    try {
      const alice = await MlsClient.connect(a.url, "alice@a.example/1");
      const started = Date.now();
      const err = await alice.api.claim("bob@b.example", [1]).catch((e: unknown) => e);
      expect(err).toMatchObject({ status: 502, code: "peer_unreachable" });
      expect(Date.now() - started).toBeLessThan(5000);
      const unknown = await alice.api.claim("bob@nowhere.example", [1]).catch((e: unknown) => e);
      expect(unknown).toMatchObject({ status: 404, code: "peer_unknown" });
    } finally {
      await stopAll([a]);
    }
  });
});
