import { startFederation, startProvider, stopAll, type Provider } from "../helpers/providers.js";

const APP = "https://app.example";
const OTHER = "https://evil.example";

function corsHeaders(res: Response): Record<string, string> {
  return Object.fromEntries([...res.headers].filter(([name]) => name.startsWith("access-control-")));
}

function preflight(url: string, origin: string, method = "POST") {
  return fetch(url, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": method, "access-control-request-headers": "authorization,content-type" },
  });
}

describe("CORS on the client API", () => {
  let listed: Provider[];
  let open: Provider;

  beforeAll(async () => {
    listed = await startFederation(["a.example", "b.example"], () => ({ cors: { origins: [APP] } }));
    open = await startProvider("c.example", { cors: { origins: "*" } });
  });
  afterAll(() => stopAll([...listed, open]));

  it("answers a preflight from a listed origin before authentication, allowing the token and every method", async () => {
    const res = await preflight(`${listed[0]!.url}/v1/groups/abc/commits`, APP);
    expect(res.status).toBe(204);
    const h = corsHeaders(res);
    expect(h["access-control-allow-origin"]).toBe(APP);
    expect(h["access-control-allow-methods"]?.split(",")).toEqual(expect.arrayContaining(["GET", "POST", "DELETE"]));
    expect(h["access-control-allow-headers"]?.split(",")).toEqual(expect.arrayContaining(["authorization", "content-type"]));
    expect(h["access-control-allow-credentials"]).toBeUndefined();
    expect(res.headers.get("vary")).toMatch(/origin/i);
  });

  it("lets a listed origin read error bodies and the request id", async () => {
    const res = await fetch(`${listed[0]!.url}/v1/groups/abc`, { headers: { origin: APP, authorization: "Bearer nope" } });
    expect(res.status).toBe(401);
    expect(res.headers.get("access-control-allow-origin")).toBe(APP);
    expect(res.headers.get("access-control-expose-headers")?.split(",")).toEqual(
      expect.arrayContaining(["retry-after", "x-request-id"]),
    );
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("unauthenticated");
  });

  it("allows nothing to an origin that is not listed", async () => {
    const pre = await preflight(`${listed[0]!.url}/v1/groups`, OTHER);
    expect(pre.status).toBe(403);
    expect(corsHeaders(pre)).toEqual({});
    const res = await fetch(`${listed[0]!.url}/v1/dev/token`, {
      method: "POST",
      headers: { origin: OTHER, "content-type": "application/json" },
      body: JSON.stringify({ client: "mallory@a.example/x" }),
    });
    expect(corsHeaders(res)).toEqual({});
    // A DS with no origins configured sends CORS headers to nobody.
    const none = await startProvider("d.example");
    try {
      expect(corsHeaders(await preflight(`${none.url}/v1/groups`, APP))).toEqual({});
    } finally {
      await none.ds.close();
    }
  });

  it("never sends CORS headers on federation routes, even to a listed origin or with '*'", async () => {
    for (const p of [listed[0]!, open]) {
      const pre = await preflight(`${p.url}/federation/v1/deliver`, APP);
      expect(corsHeaders(pre)).toEqual({});
      const res = await fetch(`${p.url}/federation/v1/users/bob@b.example/devices`, { headers: { origin: APP } });
      expect(res.status).toBe(401);
      expect(corsHeaders(res)).toEqual({});
    }
  });

  it("answers any origin with a plain wildcard when cors.origins is '*'", async () => {
    const pre = await preflight(`${open.url}/v1/inbox/stream`, OTHER, "GET");
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBe("*");
    const res = await fetch(`${open.url}/v1/dev/token`, {
      method: "POST",
      headers: { origin: OTHER, "content-type": "application/json" },
      body: JSON.stringify({ client: "carol@c.example/web" }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
  });
});
