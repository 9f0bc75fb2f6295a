import { redisTopology } from "../config/redis-topology.js";
import type { Config } from "../config/schema.js";
import type { Store } from "./port.js";

/**
 * The configured Redis store (single node, cluster or Sentinel set, as `serve` connects), for
 * operator commands (`mls-fedgate store …`); closed by `await using`.
 */
export async function openStore(config: Readonly<Config>): Promise<Store & AsyncDisposable> {
  if (config.store.kind !== "redis") {
    throw new Error("store.kind is memory: its state lives in the DS process, there is nothing to inspect from outside");
  }
  const { createRedisStore } = await import("./redis.js");
  const store = await createRedisStore({ topology: redisTopology(config.store), prefix: config.store.prefix });
  return Object.assign(store, { [Symbol.asyncDispose]: () => store.close() });
}
