import { build } from "esbuild";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import type { TransformStats } from "../../src/client/index.js";

/**
 * WebRTC in headless Chromium (fake camera, loopback only) with every video frame SFrame-encrypted
 * by the encoded-transform worker: frames decode with the keys, not without, and stop decoding for
 * a member who does not get the next epoch's keys. Facts this relies on: /work/shared/CALLS-NOTES.md.
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const FLAGS = [
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  "--allow-loopback-in-peer-connection",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
];
const root = join(import.meta.dirname, "../..");

interface CallTest {
  setup(): Promise<void>;
  giveKeys(epoch: number, names: string[]): void;
  framesDecoded(link: string): Promise<number>;
  stats(name: string): Promise<TransformStats>;
  connectionStates(): Record<string, string>;
}
declare const callTest: CallTest;

async function serveBundle(dir: string): Promise<{ server: Server; url: string }> {
  await build({
    entryPoints: { page: join(root, "test/browser/page/call-page.ts"), worker: join(root, "src/client/sframe-worker.ts") },
    outdir: dir,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    logLevel: "warning",
  });
  const files: Record<string, [string, string]> = {
    "/": [join(root, "test/browser/page/index.html"), "text/html"],
    "/page.js": [join(dir, "page.js"), "text/javascript"],
    "/worker.js": [join(dir, "worker.js"), "text/javascript"],
  };
  const server = createServer((req, res) => {
    const file = files[req.url ?? ""];
    if (!file) return void res.writeHead(404).end();
    readFile(file[0]).then(
      (body) => res.writeHead(200, { "content-type": file[1] }).end(body),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  return { server, url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/` };
}

describe("SFrame encoded transforms in Chromium", () => {
  let dir: string;
  let server: Server;
  let browser: Browser;
  let page: Page;

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const decoded = (link: string) => page.evaluate((l) => callTest.framesDecoded(l), link);
  const stats = (name: string) => page.evaluate((n) => callTest.stats(n), name);
  const giveKeys = (epoch: number, names: string[]) =>
    page.evaluate(([e, n]) => callTest.giveKeys(e, n), [epoch, names] as const);
  /** Decoded frames per second on a link, over `ms`. */
  async function rate(link: string, ms = 2000): Promise<number> {
    const before = await decoded(link);
    await sleep(ms);
    return ((await decoded(link)) - before) * (1000 / ms);
  }
  /** The rate on a live link, measured again (up to 3 windows) while the shared machine is busy: a stalled link never passes. */
  async function liveRate(link: string, fps = 5): Promise<number> {
    let measured = 0;
    for (let attempt = 1; attempt <= 3 && measured <= fps; attempt++) measured = await rate(link);
    return measured;
  }
  async function waitForFrames(link: string, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((await decoded(link)) === 0) {
      if (Date.now() > deadline)
        throw new Error(`no frame decoded on ${link}: ${JSON.stringify(await page.evaluate(() => callTest.connectionStates()))}`);
      await sleep(200);
    }
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sframe-page-"));
    let url: string;
    ({ server, url } = await serveBundle(dir));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
    page = await browser.newPage();
    page.on("pageerror", (e) => console.error("page error:", e));
    await page.goto(url);
    await page.waitForFunction(() => "callTest" in globalThis);
    await giveKeys(1, ["alice", "bob"]);
    await page.evaluate(() => callTest.setup());
  });

  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => server?.close(r));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("decodes both ways between members that hold the epoch's keys", async () => {
    await waitForFrames("alice->bob");
    await waitForFrames("bob->alice");
    await sleep(1000); // warm-up past the first key frame requests
    expect(await liveRate("alice->bob")).toBeGreaterThan(5);
    expect(await liveRate("bob->alice")).toBeGreaterThan(5);
    const [alice, bob] = [await stats("alice"), await stats("bob")];
    expect(alice.encrypted).toBeGreaterThan(20);
    expect(bob.decrypted).toBeGreaterThan(20);
    expect(bob.kidsSeen).toEqual(["1"]); // alice: leaf 0, epoch 1
    expect(alice.kidsSeen).toEqual(["11"]); // bob: leaf 1, epoch 1
  });

  it("sends only SFrame ciphertext: a receiver without keys sees alice's KID and decodes no frame", async () => {
    const eve = await stats("eve");
    expect(eve.kidsSeen).toEqual(["1"]);
    expect(eve.decrypted).toBe(0);
    expect(eve.dropped.unknown_key).toBeGreaterThan(10);
    expect(await decoded("alice->eve")).toBe(0);
  });

  it("keeps decoding across a key rotation both members take part in", async () => {
    await giveKeys(2, ["alice"]);
    await sleep(200); // bob processes the commit a little later
    await giveKeys(2, ["bob"]);
    await sleep(2000); // resume: one key frame request
    expect(await liveRate("alice->bob")).toBeGreaterThan(5);
    expect(await liveRate("bob->alice")).toBeGreaterThan(5);
    expect((await stats("bob")).kidsSeen).toEqual(["1", "2"]);
  });

  it("stops decoding for a member who does not get the next epoch's keys", async () => {
    const dropsBefore = (await stats("bob")).dropped.unknown_key ?? 0;
    await giveKeys(3, ["alice"]);
    await sleep(1500);
    expect(await rate("alice->bob")).toBeLessThan(1);
    expect((await stats("bob")).dropped.unknown_key ?? 0).toBeGreaterThan(dropsBefore + 10);
  });
});
