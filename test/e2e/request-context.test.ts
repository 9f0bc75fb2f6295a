import { createServer, type Server } from "node:http";
import { freePort } from "../helpers/global-setup.js";
import { startProvider, type Provider } from "../helpers/providers.js";

/**
 * The request id is request-scoped (AsyncLocalStorage), not a parameter: whatever a request makes
 * the DS call on a peer carries that request's x-request-id, also when requests overlap.
 */
describe("request-scoped context", () => {
  let a: Provider;
  let peer: Server;
  const seen: { path: string; requestId: string | undefined }[] = [];

  beforeAll(async () => {
    const port = await freePort();
    // A stand-in provider b.example that answers device lists slowly, so requests overlap.
    peer = createServer((req, res) => {
      seen.push({ path: req.url ?? "", requestId: req.headers["x-request-id"] as string | undefined });
      const user = decodeURIComponent((req.url ?? "").split("/")[4] ?? "");
      setTimeout(() => {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ user, version: 1, devices: [{ client: `${user}/phone`, cipherSuites: [1] }] }));
      }, 100);
    });
    await new Promise<void>((r) => peer.listen(port, "127.0.0.1", r));
    a = await startProvider("a.example", { federation: { peers: { "b.example": { url: `http://127.0.0.1:${port}` } } } });
  });
  afterAll(async () => {
    await a.ds.close();
    await new Promise((r) => peer.close(r));
  });

  it("sends each request's own id to the peer it calls, with requests overlapping", async () => {
    const tokenRes = await fetch(`${a.url}/v1/dev/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ client: "alice@a.example/phone" }),
    });
    const { token } = (await tokenRes.json()) as { token: string };
    const ask = async (user: string, requestId: string) => {
      const res = await fetch(`${a.url}/v1/users/${user}@b.example/devices`, {
        headers: { authorization: `Bearer ${token}`, "x-request-id": requestId },
      });
      expect(res.status).toBe(200);
      expect(res.headers.get("x-request-id")).toBe(requestId);
      return ((await res.json()) as { user: string }).user;
    };
    const users = ["u1", "u2", "u3", "u4"];
    expect(await Promise.all(users.map((u) => ask(u, `trace-${u}`)))).toEqual(users.map((u) => `${u}@b.example`));
    expect(seen).toHaveLength(users.length);
    for (const s of seen) {
      const user = decodeURIComponent(s.path.split("/")[4]!).split("@")[0];
      expect(s.requestId).toBe(`trace-${user}`);
    }
  });
});
