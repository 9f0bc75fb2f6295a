import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { build } from "esbuild";

/** Bundles `source` as a web app would (esbuild, platform browser: the "browser" export condition, no Node built-ins). */
async function bundleForBrowser(dir: string, source: string) {
  const entry = join(dir, `entry-${Math.random().toString(36).slice(2)}.js`);
  writeFileSync(entry, source);
  return build({
    entryPoints: [entry],
    bundle: true,
    platform: "browser",
    format: "esm",
    write: false,
    metafile: true,
    logLevel: "silent",
  });
}

describe("mls-fedgate/client in a browser bundle", () => {
  let app: string;

  beforeAll(() => {
    const built = spawnSync("node", ["scripts/build-browser.mjs", "--client-only"], { stdio: "inherit" });
    expect(built.status).toBe(0);
    // A consumer project with this package installed under node_modules/mls-fedgate.
    app = mkdtempSync(join(tmpdir(), "mlsfg-bundle-"));
    mkdirSync(join(app, "node_modules"));
    symlinkSync(resolve("."), join(app, "node_modules", "mls-fedgate"), "dir");
  });
  afterAll(() => rmSync(app, { recursive: true, force: true }));

  it("resolves to the browser ESM build and pulls in no Node built-in", async () => {
    const result = await bundleForBrowser(
      app,
      'import { MlsClient, IndexedDbClientStorage, MemoryClientStorage } from "mls-fedgate/client";\n' +
        "export { MlsClient, IndexedDbClientStorage, MemoryClientStorage };\n",
    );
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs).toContain("dist/browser/client.js");
    expect(inputs.filter((i) => i.startsWith("dist/src/"))).toEqual([]);
    expect(inputs.filter((i) => /^node:|^(crypto|fs|path|buffer|stream|http|net|os|url|util|events)$/.test(i))).toEqual([]);
    expect(inputs.some((i) => i.includes("node_modules/ts-mls/"))).toBe(true);
    expect(inputs.some((i) => i.includes("node_modules/idb/"))).toBe(true);
    const code = result.outputFiles[0]!.text;
    expect(code).not.toMatch(/from\s*["']node:|require\(["']node:/);
  });

  it("would catch a Node built-in: the server entry does not bundle for the browser", async () => {
    const failure = await bundleForBrowser(app, 'import "mls-fedgate";\n').then(
      () => undefined,
      (e: { errors?: { text: string }[] }) => e.errors?.map((x) => x.text).join("\n"),
    );
    expect(failure).toMatch(/node:|built into node/);
  });
});
