import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Clock } from "../../src/clock.js";
import type { MimiClient } from "../../src/federation/mimi/client.js";
import { DEFAULT_MIMI_LIMITS } from "../../src/federation/mimi/codec.js";
import { MimiKeys } from "../../src/federation/mimi/envelope.js";
import { MimiGateway } from "../../src/federation/mimi/gateway.js";
import { MemoryStore } from "../../src/store/memory.js";

/** A clock that moves one second on every read, counting the reads. */
class SteppingClock implements Clock {
  reads = 0;
  constructor(private ms = 1_900_000_000_000) {}
  nowMs(): number {
    this.reads++;
    this.ms += 1000;
    return this.ms;
  }
  nowSeconds(): number {
    return Math.floor(this.nowMs() / 1000);
  }
}

describe("MIMI parts read time only from the injected Clock", () => {
  it("the follower's wait for the hub's winning commit ends when the injected clock passes its deadline", async () => {
    const store = new MemoryStore();
    await store.createGroup({
      groupId: "Zw",
      hub: "h.example",
      mode: "ordered",
      cipherSuite: 1,
      epoch: 1,
      nextSeq: 1,
      members: ["x@a.example/1"],
      owner: "x@a.example/1",
      createdAt: 0,
    });
    let lookups = 0;
    const getGroup = store.getGroup.bind(store);
    store.getGroup = (id: string) => {
      lookups++;
      return getGroup(id);
    };
    const clock = new SteppingClock();
    const gateway = new MimiGateway({} as MimiClient, store, new MimiKeys(), DEFAULT_MIMI_LIMITS, {} as never, clock);
    // The replica never reaches epoch 5: only the (fake) deadline can end the wait.
    await (gateway as unknown as { awaitReplicaEpoch(g: string, e: number): Promise<void> }).awaitReplicaEpoch("Zw", 5);
    expect(clock.reads).toBeGreaterThanOrEqual(2);
    // 2 s of fake time at 1 s per read: two looks at the replica, not the ~100 a wall-clock wait makes.
    expect(lookups).toBeLessThanOrEqual(3);
    await store.close();
  });

  it("no file in src/ but src/clock.ts calls Date.now()", () => {
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (path.endsWith(".ts") && path !== join("src", "clock.ts") && readFileSync(path, "utf8").includes("Date.now()"))
          offenders.push(path);
      }
    };
    walk("src");
    expect(offenders).toEqual([]);
  });
});
