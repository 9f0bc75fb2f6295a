import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { ConfigError } from "../config/load.js";
import type { ConnectClient } from "./conformance.js";

/**
 * core-crypto is GPL-3.0: a devDependency of the tests, never imported by src/ nor shipped. Only
 * when asked, the CLI loads the test adapter (which loads core-crypto) from a source checkout at
 * run time — the specifier is computed, so no build or bundler pulls it in. See docs/INTEROP.md.
 */
export async function loadCoreCryptoAdapter(side: string, adapter: string) {
  if (side !== "a" && side !== "b" && side !== "both") throw new ConfigError("--core-crypto", "must be a, b or both");
  let mod: { connectCoreCrypto?: ConnectClient };
  try {
    mod = (await import(pathToFileURL(resolve(adapter)).href)) as typeof mod;
  } catch (e) {
    throw new ConfigError(
      "--core-crypto",
      `cannot load ${adapter} (${(e as Error).message}); it needs a source checkout with dev dependencies ` +
        "(npm ci) and TypeScript loading (npx tsx src/cli.ts conformance ...)",
    );
  }
  if (typeof mod.connectCoreCrypto !== "function")
    throw new ConfigError("--core-crypto", `${adapter} exports no connectCoreCrypto`);
  return { side: side as "a" | "b" | "both", name: "core-crypto", connect: mod.connectCoreCrypto };
}
