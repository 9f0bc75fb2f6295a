import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { exportSPKI, generateKeyPair } from "jose";
import { startProvider, stopAll, type Provider } from "../helpers/providers.js";

describe("the web messenger at /app/", () => {
  let dev: Provider;
  let off: Provider;

  beforeAll(async () => {
    // The static files come from `npm run build`; build them if this checkout has not yet.
    if (!existsSync("dist/web/index.html")) {
      const build = spawnSync("node", ["scripts/build-browser.mjs"], { stdio: "inherit" });
      expect(build.status).toBe(0);
    }
    dev = await startProvider("a.example");
    off = await startProvider("b.example", { web: { enabled: false } });
  });
  afterAll(() => stopAll([dev, off]));

  it("is served with dev auth, under a content security policy that allows this DS only", async () => {
    const page = await fetch(`${dev.url}/app/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/text\/html/);
    expect(page.headers.get("content-security-policy")).toContain("connect-src 'self'");
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(await page.text()).toContain('src="app.js"');
    const script = await fetch(`${dev.url}/app/app.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get("content-type")).toMatch(/javascript/);
    const bare = await fetch(`${dev.url}/app`, { redirect: "manual" });
    expect(bare.status).toBe(301);
    expect(bare.headers.get("location")).toBe("/app/");
    expect((await fetch(`${dev.url}/`, { redirect: "manual" })).headers.get("location")).toBe("/app/");
  });

  it("is not served when web.enabled is false, nor by default with jwt auth", async () => {
    expect((await fetch(`${off.url}/app/`)).status).toBe(404);
    expect((await fetch(`${off.url}/`)).status).toBe(404);
    const { publicKey } = await generateKeyPair("ES256");
    const auth = { mode: "jwt", issuer: "https://id.example", audience: "ds", publicKey: await exportSPKI(publicKey) };
    const jwt = await startProvider("c.example", { auth });
    try {
      expect((await fetch(`${jwt.url}/app/`)).status).toBe(404);
    } finally {
      await jwt.ds.close();
    }
  });
});
