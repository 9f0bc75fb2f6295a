import { pino } from "pino";
import { DsError } from "../../src/errors.js";
import { mimiErrorFrom } from "../../src/federation/mimi/client.js";
import { OutboxWorker, type PeerDelivery } from "../../src/federation/outbox.js";
import type { PeerClient } from "../../src/federation/peer-client.js";
import { MemoryStore } from "../../src/store/memory.js";
import { FakeClock } from "../helpers/clock.js";

describe("Retry-After from a MIMI peer", () => {
  it("becomes a DsError carrying the wait, from seconds or an HTTP date read on the injected clock", () => {
    // A fake "now" far from the wall clock: an HTTP date is measured from it, not from Date.now().
    const clock = new FakeClock(1_900_000_000_000);
    const seconds = mimiErrorFrom("f.example", 429, "2", new Uint8Array(), clock);
    expect(seconds).toMatchObject({ code: "rate_limited", details: { retryAfterMs: 2000 } });
    const date = mimiErrorFrom("f.example", 503, new Date(clock.nowMs() + 5000).toUTCString(), new Uint8Array(), clock);
    expect(date).toMatchObject({ code: "unavailable", details: { retryAfterMs: 5000 } });
    const past = mimiErrorFrom("f.example", 503, new Date(clock.nowMs() - 5000).toUTCString(), new Uint8Array(), clock);
    expect(past.details.retryAfterMs).toBe(0);
    const ours = mimiErrorFrom(
      "f.example",
      429,
      "1",
      Buffer.from(JSON.stringify({ error: { code: "rate_limited", message: "slow" } })),
      clock,
    );
    expect(ours).toMatchObject({ code: "rate_limited", details: { retryAfterMs: 1000 } });
    expect(mimiErrorFrom("f.example", 500, undefined, new Uint8Array(), clock)).toMatchObject({ code: "peer_error" });
  });

  it("is honoured by the outbox: the retry waits at least as long as the peer asked, then delivers", async () => {
    const store = new MemoryStore();
    await store.createGroup({
      groupId: "Zw",
      hub: "a.example",
      mode: "ordered",
      cipherSuite: 1,
      epoch: 0,
      nextSeq: 1,
      members: ["x@a.example/1", "y@f.example/1"],
      owner: "x@a.example/1",
      createdAt: 0,
    });
    const sub = await store.submit(
      "Zw",
      { kind: "application", sender: "x@a.example/1", epoch: 0, sha256: "00", message: "AAAA" },
      0,
    );
    expect(sub.ok).toBe(true);
    await store.enqueueOutbox("f.example", [{ id: "Zw:1", groupId: "Zw", seq: 1 }]);
    const calls: number[] = [];
    const delivered: number[] = [];
    const mimi: PeerDelivery = {
      handles: (peer) => peer === "f.example",
      deliver: async (_peer, messages) => {
        calls.push(Date.now());
        if (calls.length === 1) throw new DsError("unavailable", "busy", { retryAfterMs: 700 });
        delivered.push(...messages.map((m) => m.seq));
      },
    };
    const peers = { peerDomains: () => ["f.example"] } as unknown as PeerClient;
    const worker = new OutboxWorker(
      store,
      peers,
      { batchSize: 10, retryBaseMs: 5, retryMaxMs: 20, pollMs: 20 },
      pino({ level: "silent" }),
      undefined,
      undefined,
      undefined,
      mimi,
    );
    worker.start();
    const deadline = Date.now() + 5000;
    while (delivered.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await worker.stop();
    expect(delivered).toEqual([1]);
    expect(calls[1]! - calls[0]!).toBeGreaterThanOrEqual(700);
    expect((await store.outboxStats("f.example")).depth).toBe(0);
    await store.close();
  });
});
