/**
 * A Redis Cluster master SIGKILLed under load (issue 10): the master holding the group's slot
 * dies while alice streams messages and bob commits; its replica takes over (cluster-node-timeout
 * 1 s), node-redis follows the new slot owner, and the killed node is restarted and rejoins as a
 * replica. With store.waitReplicas = 1 nothing acknowledged is lost (see failover-load.ts).
 */
import { startRedisCluster, type RedisClusterSet } from "../helpers/redis-topologies.js";
import { runFailoverLoad } from "./failover-load.js";
import { sleep } from "./processes.js";

describe("a Redis Cluster master SIGKILLed under load", () => {
  let cluster: RedisClusterSet;
  beforeAll(async () => {
    cluster = await startRedisCluster();
  });
  afterAll(() => cluster?.stop());

  it("keeps every acknowledged commit and message exactly once, each epoch once, and recovers without a restart", async () => {
    await runFailoverLoad(
      { redisCluster: cluster.spec },
      {
        messages: Number(process.env.MLSFEDGATE_FAULTS_FAILOVER_MESSAGES ?? 600),
        commits: 15,
        failover: async (groupId) => {
          const slotKey = `{g:${groupId}}`;
          const victim = await cluster.masterOf(slotKey);
          const t0 = Date.now();
          await victim.kill9();
          let promoted = victim;
          while (promoted === victim) {
            if (Date.now() - t0 > 30_000) throw new Error("no replica took over the slot");
            await sleep(50);
            promoted = await cluster.masterOf(slotKey).catch(() => victim);
          }
          const failoverMs = Date.now() - t0;
          await victim.start(); // rejoins as a replica of the promoted node
          await cluster.healthy(30_000);
          return `cluster master :${victim.port} SIGKILLed; :${promoted.port} took over in ${failoverMs} ms; whole again after ${Date.now() - t0} ms`;
        },
      },
    );
  }, 300_000);
});
