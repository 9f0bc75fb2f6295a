/**
 * A Sentinel failover under load (issue 10): the master of a Sentinel set (1 master, 1 replica,
 * 3 sentinels, down-after 1 s) is SIGKILLed while alice streams messages and bob commits; the
 * sentinels promote the replica, node-redis follows, and the old master is restarted and demoted
 * to a replica. With store.waitReplicas = 1 nothing acknowledged is lost (see failover-load.ts).
 */
import { startSentinelSet, type SentinelSet } from "../helpers/redis-topologies.js";
import { runFailoverLoad } from "./failover-load.js";
import { sleep } from "./processes.js";

describe("a Sentinel failover under load", () => {
  let sentinel: SentinelSet;
  beforeAll(async () => {
    sentinel = await startSentinelSet();
  });
  afterAll(() => sentinel?.stop());

  it("keeps every acknowledged commit and message exactly once, each epoch once, and recovers without a restart", async () => {
    await runFailoverLoad(
      { redisSentinel: sentinel.spec },
      {
        messages: Number(process.env.MLSFEDGATE_FAULTS_FAILOVER_MESSAGES ?? 600),
        commits: 15,
        failover: async () => {
          const victim = await sentinel.master();
          const t0 = Date.now();
          await victim.kill9();
          let promoted = victim;
          while (promoted === victim) {
            if (Date.now() - t0 > 30_000) throw new Error("the sentinels promoted no replica");
            await sleep(50);
            promoted = await sentinel.master().catch(() => victim);
          }
          const failoverMs = Date.now() - t0;
          await victim.start(); // the sentinels demote it to a replica of the promoted node
          await sentinel.healthy(30_000);
          return `sentinel master :${victim.port} SIGKILLed; :${promoted.port} promoted in ${failoverMs} ms; whole again after ${Date.now() - t0} ms`;
        },
      },
    );
  }, 300_000);
});
