/**
 * npx tsx bench/sframe.ts [--frames N]
 *
 * Cost of SFrame per media frame through SframeKeyRing (keys derived once per KID), for each
 * RFC 9605 suite and two frame sizes, next to a bare WebCrypto AES-128-GCM encrypt+decrypt of the
 * same bytes (the floor any WebCrypto SFrame pays). Prints µs per frame and the ratio to the floor.
 */
import { SframeKeyRing } from "../src/client/sframe-key-ring.js";
import { SFRAME_SUITE_IDS, sframeSuite } from "../src/client/sframe-suites.js";

const framesArg = process.argv.indexOf("--frames");
const FRAMES = Math.min(20_000, Math.max(100, Number(framesArg >= 0 ? process.argv[framesArg + 1] : 2000)));
const TIME_CAP_MS = 20_000;
const SIZES = [
  { name: "audio 120 B", bytes: 120 },
  { name: "video 12 KB", bytes: 12_000 },
];

async function timeLoop(run: () => Promise<void>): Promise<number> {
  for (let i = 0; i < 50; i++) await run(); // warm-up
  const start = performance.now();
  let n = 0;
  while (n < FRAMES && performance.now() - start < TIME_CAP_MS) {
    await run();
    n++;
  }
  return ((performance.now() - start) * 1000) / n;
}

async function floor(bytes: number): Promise<number> {
  const key = await crypto.subtle.importKey("raw", new Uint8Array(16), "AES-GCM", false, ["encrypt", "decrypt"]);
  const data = new Uint8Array(bytes);
  const iv = new Uint8Array(12);
  return timeLoop(async () => {
    const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, data);
    await crypto.subtle.decrypt({ name: "AES-GCM", iv }, key, ct);
  });
}

async function sframeCost(suite: number, bytes: number): Promise<number> {
  const sender = new SframeKeyRing({ suite, replayWindow: 4096 });
  const receiver = new SframeKeyRing({ suite, replayWindow: 4096 });
  const keys = { epoch: 1n, baseKey: new Uint8Array(16).fill(1), leafCount: 2, senders: [0, 1] };
  sender.install({ ...keys, ownLeaf: 0 });
  receiver.install({ ...keys, ownLeaf: 1 });
  const metadata = new Uint8Array(10);
  const payload = new Uint8Array(bytes);
  return timeLoop(async () => {
    await receiver.decrypt(metadata, await sender.encrypt(metadata, payload));
  });
}

for (const size of SIZES) {
  const base = await floor(size.bytes);
  console.log(`${size.name}: bare AES-128-GCM encrypt+decrypt ${base.toFixed(1)} µs`);
  for (const suite of SFRAME_SUITE_IDS) {
    const cost = await sframeCost(suite, size.bytes);
    console.log(
      `  ${sframeSuite(suite).name.padEnd(27)} ${cost.toFixed(1).padStart(7)} µs/frame  ${(cost / base).toFixed(2)}× the floor`,
    );
  }
}
