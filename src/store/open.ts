import type { Config } from "../config/schema.js";
import type { Store } from "./port.js";

/** The configured Redis store, for operator commands (`mls-fedgate store …`); closed by `await using`. */
export async function openStore(config: Readonly<Config>): Promise<Store & AsyncDisposable> {
  if (config.store.kind !== "redis") {
    throw new Error("store.kind is memory: its state lives in the DS process, there is nothing to inspect from outside");
  }
  const { createRedisStore } = await import("./redis.js");
  const store = await createRedisStore({ url: config.store.redisUrl, prefix: config.store.prefix });
  return Object.assign(store, { [Symbol.asyncDispose]: () => store.close() });
}
