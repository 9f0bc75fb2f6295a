import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { printTable, runConformance } from "../../src/client/conformance.js";
import { freePort } from "../helpers/global-setup.js";

/** Starts `mls-fedgate serve` as a separate process (through tsx, so no build step is needed). */
async function serve(env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", "serve"], {
    env: { ...process.env, ...env, MLSFEDGATE_LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${output}`)), 30_000);
    child.stdout!.on("data", (d: Buffer) => {
      output += d.toString();
      if (output.includes("listening on")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => reject(new Error(`serve exited ${code}: ${output}`)));
  });
  return child;
}

describe("the conformance suite against two separately running mls-fedgate processes", () => {
  const children: ChildProcess[] = [];
  let urlA = "";
  let urlB = "";

  beforeAll(async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    urlA = `http://127.0.0.1:${pa}`;
    urlB = `http://127.0.0.1:${pb}`;
    const keys = mkdtempSync(join(tmpdir(), "mlsfg-keys-"));
    const common = { MLSFEDGATE_HOST: "127.0.0.1", MLSFEDGATE_STORE: "memory", MLSFEDGATE_AUTH: "dev" };
    children.push(
      await serve({
        ...common,
        MLSFEDGATE_DOMAIN: "a.example",
        MLSFEDGATE_PORT: String(pa),
        MLSFEDGATE_SIGNING_KEY_FILE: join(keys, "a.jwk.json"),
        MLSFEDGATE_PEERS: JSON.stringify({ "b.example": { url: urlB } }),
      }),
      await serve({
        ...common,
        MLSFEDGATE_DOMAIN: "b.example",
        MLSFEDGATE_PORT: String(pb),
        MLSFEDGATE_SIGNING_KEY_FILE: join(keys, "b.jwk.json"),
        MLSFEDGATE_PEERS: JSON.stringify({ "a.example": { url: urlA } }),
      }),
    );
  });

  afterAll(async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            c.once("exit", () => resolve());
            c.kill("SIGTERM");
          }),
      ),
    );
  });

  it("passes every cross-provider check", async () => {
    const results = await runConformance({ a: urlA, b: urlB });
    const failed = results.filter((r) => !r.ok);
    if (failed.length) throw new Error(printTable(results));
    expect(results.length).toBeGreaterThanOrEqual(10);
  });
});
