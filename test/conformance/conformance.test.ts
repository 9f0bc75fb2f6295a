import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { printTable, runConformance } from "../../src/client/conformance.js";
import { connectCoreCrypto } from "../helpers/core-crypto.js";
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
    const common = {
      MLSFEDGATE_HOST: "127.0.0.1",
      MLSFEDGATE_STORE: "memory",
      MLSFEDGATE_AUTH: "dev",
      // Both identity forms and last resort by upload slot, as the demo configs: core-crypto clients need them.
      MLSFEDGATE_IDENTITY__SCHEMES: '["fedgate","wire"]',
      MLSFEDGATE_KEY_PACKAGES__LAST_RESORT_BY_SLOT: "true",
    };
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

  it("passes every check with Wire core-crypto clients on B (bob and carol) and ts-mls on A", async () => {
    const results = await runConformance({
      a: urlA,
      b: urlB,
      other: { side: "b", name: "core-crypto", connect: connectCoreCrypto },
    });
    if (results.some((r) => !r.ok)) throw new Error(printTable(results));
    expect(results[1]!.name).toMatch(/core-crypto on B/);
    expect(results.length).toBeGreaterThanOrEqual(10);
  });

  it("`mls-fedgate conformance --core-crypto a` loads the test adapter and passes with core-crypto on A", async () => {
    const out = await runCli(["conformance", "--a", urlA, "--b", urlB, "--core-crypto", "a"]);
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/PASS {2}clients \(core-crypto on A\)/);
    expect(out.stdout).toMatch(/ 0 failed/);
  });
});

/** Runs the CLI from source (tsx), as docs/INTEROP.md tells an operator to. */
function runCli(args: string[]): Promise<{ code: number | null; stdout: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stdout += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 50_000);
  return new Promise((resolve) =>
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout });
    }),
  );
}
