/**
 * A test page (never served by a DS): Wire's core-crypto browser build (openmls in WASM, GPL-3.0,
 * test-only) as a member of a group whose other members use the web messenger. It drives the DS
 * with the same environment-neutral client as the Node interop tests, from its own origin (CORS).
 */
import * as cc from "@wireapp/core-crypto/browser";
import type { MlsEvent } from "../../../src/client/index.js";
import { CoreCryptoClient } from "../../helpers/core-crypto-client.js";

let client: CoreCryptoClient | undefined;
const seen: MlsEvent[] = [];

function me(): CoreCryptoClient {
  if (!client) throw new Error("connect first");
  return client;
}

/** Syncs until an event passes `want` (events are kept across calls), or throws after `timeoutMs`. */
async function until(want: (e: MlsEvent) => boolean, timeoutMs = 20_000): Promise<MlsEvent> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hit = seen.find(want);
    if (hit) return hit;
    if (Date.now() > deadline) throw new Error(`core-crypto page: timed out (events: ${seen.map((e) => e.kind).join(",")})`);
    seen.push(...(await me().sync({ waitMs: 500 })));
  }
}

const api = {
  async connect(baseUrl: string, id: string): Promise<string> {
    await cc.initWasmModule(new URL("/index_bg.wasm", location.href).href);
    client = await CoreCryptoClient.connect(cc, baseUrl, id);
    await client.publishKeyPackages(3);
    return cc.version();
  },
  async joined(): Promise<string> {
    const e = await until((x) => x.kind === "joined");
    return e.kind === "joined" ? e.groupId : "";
  },
  async heard(sender: string, text: string): Promise<boolean> {
    await until((e) => e.kind === "message" && e.sender.startsWith(sender) && e.text === text);
    return true;
  },
  async send(groupId: string, text: string): Promise<number> {
    return (await me().send(groupId, text)).seq;
  },
  async members(groupId: string): Promise<string[]> {
    return me().members(groupId);
  },
};

(globalThis as unknown as { ccTest: typeof api }).ccTest = api;
document.body.dataset.ready = "true";
