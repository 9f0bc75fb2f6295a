import { connect, type Socket } from "node:net";
import { request } from "undici";
import { signRequest } from "../../src/federation/service-auth.js";
import type { SigningKey } from "../../src/federation/keys.js";
import { startFederation, startProvider, stopAll, testKey, type Provider } from "../helpers/providers.js";

/** Short edge limits, so every cap and timeout is reached in well under a second. */
const LIMITS = {
  headersTimeoutMs: 300,
  requestTimeoutMs: 600,
  sseStreamsPerClient: 2,
  longPollsPerClient: 2,
  jsonMaxDepth: 8,
};

const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth);

async function tokenOf(url: string, client: string): Promise<string> {
  const res = await fetch(`${url}/v1/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ client }),
  });
  return ((await res.json()) as { token: string }).token;
}

async function post(url: string, path: string, body: string, authorization?: string) {
  const res = await request(url + path, {
    method: "POST",
    headers: { "content-type": "application/json", ...(authorization ? { authorization } : {}) },
    body,
  });
  const json = (await res.body.json()) as { error?: { code: string; reason?: string; message: string } };
  return { status: res.statusCode, error: json.error, json };
}

/** A raw TCP connection to the DS: what it writes back, and when it closes. */
function rawConnection(url: string): { socket: Socket; received: () => string; closed: Promise<number> } {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  let text = "";
  socket.on("data", (d) => (text += d.toString("utf8")));
  socket.on("error", () => {});
  const opened = Date.now();
  const closed = new Promise<number>((resolve) => socket.on("close", () => resolve(Date.now() - opened)));
  return { socket, received: () => text, closed };
}

describe("the edge: nothing expensive before authentication, caps on streams, timeouts on slow requests", () => {
  let a: Provider;
  let b: Provider;
  let bKey: SigningKey;
  let bob: string;

  beforeAll(async () => {
    bKey = await testKey();
    [a, b] = (await startFederation(
      ["a.example", "b.example"],
      () => ({ limits: LIMITS }),
      (d) => (d === "b.example" ? { signingKey: bKey } : {}),
    )) as [Provider, Provider];
    bob = await tokenOf(a.url, "bob@a.example/1");
  });
  afterAll(() => stopAll([a, b]));

  describe("before authentication", () => {
    it("refuses a client request with a bad token with 401 without parsing its body (invalid or too deep JSON)", async () => {
      for (const body of ["{not json", nested(10_000), `{"keyPackages": ${nested(50)}}`]) {
        for (const auth of [undefined, "Bearer not-a-token", `Bearer ${bob.slice(0, -4)}AAAA`]) {
          const res = await post(a.url, "/v1/key-packages", body, auth);
          expect(res).toMatchObject({ status: 401, error: { code: "unauthenticated" } });
        }
      }
    });

    it("answers a bad client or peer token before the body has arrived, and closes the connection", async () => {
      const path = "/federation/v1/deliver";
      // Names the configured peer b.example but is signed by another key: refused by its signature.
      const forged = await signRequest(
        await testKey(),
        "b.example",
        "a.example",
        { method: "POST", path, body: Buffer.alloc(0) },
        60,
      );
      for (const [target, authorization] of [
        ["/v1/key-packages", "Bearer nope"],
        [path, `Bearer ${forged}`],
      ]) {
        const c = rawConnection(a.url);
        c.socket.write(
          `POST ${target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
            `Authorization: ${authorization}\r\nContent-Length: 1000000\r\n\r\n` +
            nested(100),
        );
        await c.closed;
        expect(c.received()).toMatch(/^HTTP\/1\.1 401 /);
        expect(c.received()).toContain('"code":"unauthenticated"');
        expect(c.received().toLowerCase()).toContain("connection: close");
      }
    });

    it("refuses a federation request without a valid peer token with 401/403 without parsing its body", async () => {
      const deep = nested(10_000);
      expect(await post(a.url, "/federation/v1/deliver", deep)).toMatchObject({
        status: 401,
        error: { code: "unauthenticated", reason: "missing_token" },
      });
      expect(await post(a.url, "/federation/v1/deliver", "{not json", "Bearer x.y.z")).toMatchObject({
        status: 401,
        error: { reason: "malformed_token" },
      });
      // Signed by a key b.example does not publish: the signature fails, the body is never parsed.
      const forged = await signRequest(
        await testKey(),
        "b.example",
        "a.example",
        { method: "POST", path: "/federation/v1/deliver", body: Buffer.from(deep) },
        60,
      );
      expect(await post(a.url, "/federation/v1/deliver", deep, `Bearer ${forged}`)).toMatchObject({
        status: 401,
        error: { code: "unauthenticated" },
      });
    });

    it("caps the unauthenticated dev-token body at a few KiB", async () => {
      const res = await post(a.url, "/v1/dev/token", JSON.stringify({ client: "x".repeat(10_000) }));
      expect(res).toMatchObject({ status: 413, error: { code: "payload_too_large" } });
    });
  });

  describe("after authentication", () => {
    it("refuses JSON nested deeper than limits.jsonMaxDepth with 400 bad_request, from clients and peers", async () => {
      const deep = `{"keyPackages": ${nested(8)}}`;
      expect(await post(a.url, "/v1/key-packages", deep, `Bearer ${bob}`)).toMatchObject({
        status: 400,
        error: { code: "bad_request", reason: "json_too_deep" },
      });
      // Brackets inside strings do not count: this body is parsed and its item refused on its own merits.
      const inString = JSON.stringify({ keyPackages: [nested(100)] });
      expect(await post(a.url, "/v1/key-packages", inString, `Bearer ${bob}`)).toMatchObject({
        status: 201,
        json: { accepted: [], rejected: [{ index: 0, code: "invalid_mls" }] },
      });

      const path = "/federation/v1/device-updates";
      const fedDeep = `{"user": "bob@b.example", "version": 1, "devices": ${nested(20)}}`;
      const signed = await signRequest(bKey, "b.example", "a.example", { method: "POST", path, body: Buffer.from(fedDeep) }, 60);
      expect(await post(a.url, path, fedDeep, `Bearer ${signed}`)).toMatchObject({
        status: 400,
        error: { code: "bad_request", reason: "json_too_deep" },
      });
    });
  });

  describe("per-client caps on long-lived requests", () => {
    const openStream = (token: string) => {
      const abort = new AbortController();
      const res = request(`${a.url}/v1/inbox/stream`, { headers: { authorization: `Bearer ${token}` }, signal: abort.signal });
      return { res, close: () => abort.abort() };
    };

    it("refuses a client's SSE stream over limits.sseStreamsPerClient with 429 stream_limit, and frees the slot on close", async () => {
      const carol = await tokenOf(a.url, "carol@a.example/1");
      const first = openStream(carol);
      const second = openStream(carol);
      expect((await first.res).statusCode).toBe(200);
      expect((await second.res).statusCode).toBe(200);
      const third = await request(`${a.url}/v1/inbox/stream`, { headers: { authorization: `Bearer ${carol}` } });
      expect(third.statusCode).toBe(429);
      expect(await third.body.json()).toMatchObject({ error: { code: "stream_limit", kind: "sse", limit: 2 } });
      // Another client is not affected.
      const dan = openStream(await tokenOf(a.url, "dan@a.example/1"));
      expect((await dan.res).statusCode).toBe(200);
      dan.close();

      first.close();
      await (await first.res).body.text().catch(() => "");
      let again: Awaited<ReturnType<typeof request>> | undefined;
      for (let i = 0; i < 40 && again?.statusCode !== 200; i++) {
        await again?.body.text();
        again = await request(`${a.url}/v1/inbox/stream`, {
          headers: { authorization: `Bearer ${carol}` },
          signal: AbortSignal.timeout(2000),
        });
        if (again.statusCode !== 200) await new Promise((r) => setTimeout(r, 25));
      }
      expect(again?.statusCode).toBe(200);
      again!.body.destroy();
      second.close();
    });

    it("refuses a client's long-poll over limits.longPollsPerClient with 429 stream_limit; an immediate read still answers", async () => {
      const erin = await tokenOf(a.url, "erin@a.example/1");
      // Two long-pollers that poll again whenever their call ends. The probe below may overtake one
      // of them and take its slot (the caps are taken in arrival order); that poller is then refused
      // and tries again a moment later, so both slots end up held by waits.
      const stop = new AbortController();
      let pollsAnswered = 0;
      const pollers = [0, 1].map(async () => {
        while (!stop.signal.aborted) {
          const res = await request(`${a.url}/v1/inbox?waitMs=10000`, {
            headers: { authorization: `Bearer ${erin}` },
            signal: stop.signal,
          }).catch(() => undefined);
          await res?.body.text().catch(() => "");
          if (res) pollsAnswered++;
          if (res?.statusCode === 429) await new Promise((r) => setTimeout(r, 100));
        }
      });
      let third: Awaited<ReturnType<typeof request>> | undefined;
      const deadline = Date.now() + 15_000;
      while (third?.statusCode !== 429 && Date.now() < deadline) {
        await third?.body.text();
        if (third !== undefined) await new Promise((r) => setTimeout(r, 25));
        third = await request(`${a.url}/v1/inbox?waitMs=10000`, {
          headers: { authorization: `Bearer ${erin}` },
          signal: AbortSignal.timeout(1500),
        }).catch(() => undefined);
      }
      expect({ status: third?.statusCode, pollsAnswered }).toMatchObject({ status: 429 });
      expect(await third!.body.json()).toMatchObject({ error: { code: "stream_limit", kind: "long_poll", limit: 2 } });
      const now = await request(`${a.url}/v1/inbox?waitMs=0`, { headers: { authorization: `Bearer ${erin}` } });
      expect(now.statusCode).toBe(200);
      await now.body.json();
      stop.abort();
      await Promise.all(pollers);
    });
  });

  describe("timeouts", () => {
    it("ends a slow body (1 byte at a time) with 408 request_timeout after limits.requestTimeoutMs", async () => {
      const c = rawConnection(a.url);
      c.socket.write(
        "POST /v1/key-packages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
          `Authorization: Bearer ${bob}\r\nContent-Length: 1000\r\n\r\n{`,
      );
      const drip = setInterval(() => c.socket.write(" "), 100);
      const ms = await c.closed;
      clearInterval(drip);
      expect(c.received()).toMatch(/^HTTP\/1\.1 408 /);
      expect(c.received()).toContain('"code":"request_timeout"');
      expect(ms).toBeGreaterThanOrEqual(LIMITS.requestTimeoutMs - 50);
      expect(ms).toBeLessThan(LIMITS.requestTimeoutMs + 2000);
    });

    it("ends a request whose headers do not arrive with 408 request_timeout after limits.headersTimeoutMs", async () => {
      const c = rawConnection(a.url);
      c.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n");
      const ms = await c.closed;
      expect(c.received()).toMatch(/^HTTP\/1\.1 408 /);
      expect(c.received()).toContain('"code":"request_timeout"');
      expect(ms).toBeGreaterThanOrEqual(LIMITS.headersTimeoutMs - 50);
      expect(ms).toBeLessThan(LIMITS.requestTimeoutMs + 2000);
    });

    it("does not cut a long-poll or a stream that waits longer than the request timeout", async () => {
      const frank = await tokenOf(a.url, "frank@a.example/1");
      const started = Date.now();
      const res = await request(`${a.url}/v1/inbox?waitMs=${LIMITS.requestTimeoutMs * 2}`, {
        headers: { authorization: `Bearer ${frank}` },
      });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toMatchObject({ messages: [] });
      expect(Date.now() - started).toBeGreaterThanOrEqual(LIMITS.requestTimeoutMs * 2 - 50);
    });
  });
});

describe("the connection cap", () => {
  let c: Provider;
  beforeAll(async () => {
    c = await startProvider("c.example", { limits: { maxConnections: 3 } });
  });
  afterAll(() => stopAll([c]));

  it("closes connections over limits.maxConnections at accept and counts them; freed slots serve again", async () => {
    const held = [0, 1, 2].map(() => rawConnection(c.url));
    await Promise.all(held.map((h) => new Promise((r) => h.socket.once("connect", r))));
    const over = rawConnection(c.url);
    over.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    await over.closed;
    expect(over.received()).toBe("");

    held[0]!.socket.destroy();
    await held[0]!.closed;
    let metrics = "";
    for (let i = 0; i < 40 && !metrics; i++) {
      const res = await request(`${c.url}/metrics`, { reset: true }).catch(() => undefined);
      if (res?.statusCode === 200) metrics = await res.body.text();
      else await new Promise((r) => setTimeout(r, 25));
    }
    expect(metrics).toMatch(/mlsfg_connections_dropped_total \d+/);
    expect(Number(/mlsfg_connections_dropped_total (\d+)/.exec(metrics)![1])).toBeGreaterThanOrEqual(1);
    for (const h of held) h.socket.destroy();
  });
});
