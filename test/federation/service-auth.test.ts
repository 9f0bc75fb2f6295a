import { randomUUID } from "node:crypto";
import { SignJWT } from "jose";
import { request } from "undici";
import { sha256B64u } from "../../src/encoding.js";
import { signRequest } from "../../src/federation/service-auth.js";
import type { SigningKey } from "../../src/federation/keys.js";
import { startFederation, startProvider, stopAll, testKey, type Provider } from "../helpers/providers.js";

const PATH = "/federation/v1/device-updates";
const BODY = JSON.stringify({ user: "bob@b.example", version: 1, devices: [] });

async function post(url: string, path: string, body: string, token?: string) {
  const res = await request(url + path, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body,
  });
  return {
    status: res.statusCode,
    body: (await res.body.json()) as { error?: { code: string; reason?: string }; notified?: number },
  };
}

/** A token built by hand, so each claim can be broken on purpose. */
async function token(key: SigningKey, claims: Record<string, unknown>, header: Record<string, unknown> = {}) {
  const now = Math.floor(Date.now() / 1000);
  const payload = {
    iss: "b.example",
    aud: "a.example",
    iat: now,
    exp: now + 60,
    jti: randomUUID(),
    htm: "POST",
    htu: PATH,
    bdh: sha256B64u(BODY),
    ...claims,
  };
  return new SignJWT(payload)
    .setProtectedHeader({ alg: "EdDSA", kid: key.kid, typ: "mls-fedgate+jwt", ...header })
    .sign(key.privateKey);
}

describe("federation requests are authenticated by signed, single-use, request-bound tokens", () => {
  let providers: Provider[];
  let a: Provider;
  let bKey: SigningKey;

  beforeAll(async () => {
    bKey = await testKey();
    providers = await startFederation(
      ["a.example", "b.example"],
      () => ({}),
      (d) => (d === "b.example" ? { signingKey: bKey } : {}),
    );
    a = providers[0]!;
  });
  afterAll(() => stopAll(providers));

  it("accepts a correctly signed request", async () => {
    const res = await post(a.url, PATH, BODY, await token(bKey, {}));
    expect(res).toEqual({ status: 200, body: { notified: 0 } });
  });

  it("refuses a request without a token", async () => {
    expect(await post(a.url, PATH, BODY)).toMatchObject({
      status: 401,
      body: { error: { code: "unauthenticated", reason: "missing_token" } },
    });
  });

  it("refuses a forged signature (a key the peer does not publish)", async () => {
    const forger = await testKey();
    const forged = await token({ ...forger, kid: bKey.kid }, {});
    expect(await post(a.url, PATH, BODY, forged)).toMatchObject({
      status: 401,
      body: { error: { code: "unauthenticated", reason: "bad_signature" } },
    });
  });

  it("refuses an expired token and one that lives longer than 60 s", async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await token(bKey, { iat: now - 120, exp: now - 60 });
    expect(await post(a.url, PATH, BODY, expired)).toMatchObject({ status: 401, body: { error: { reason: "expired" } } });
    const long = await token(bKey, { exp: now + 3600 });
    expect(await post(a.url, PATH, BODY, long)).toMatchObject({ status: 401, body: { error: { reason: "bad_lifetime" } } });
  });

  it("refuses a token for another audience, method or path", async () => {
    expect(await post(a.url, PATH, BODY, await token(bKey, { aud: "c.example" }))).toMatchObject({
      status: 401,
      body: { error: { reason: "bad_aud" } },
    });
    expect(await post(a.url, PATH, BODY, await token(bKey, { htm: "GET" }))).toMatchObject({
      status: 401,
      body: { error: { reason: "bad_htm" } },
    });
    expect(await post(a.url, PATH, BODY, await token(bKey, { htu: "/federation/v1/deliver" }))).toMatchObject({
      status: 401,
      body: { error: { reason: "bad_htu" } },
    });
  });

  it("refuses a body changed after signing", async () => {
    const t = await signRequest(bKey, "b.example", "a.example", { method: "POST", path: PATH, body: Buffer.from(BODY) }, 60);
    const tampered = BODY.replace('"version":1', '"version":2');
    expect(await post(a.url, PATH, tampered, t)).toMatchObject({
      status: 401,
      body: { error: { code: "unauthenticated", reason: "bad_bdh" } },
    });
  });

  it("refuses a replayed token", async () => {
    const t = await token(bKey, {});
    expect((await post(a.url, PATH, BODY, t)).status).toBe(200);
    expect(await post(a.url, PATH, BODY, t)).toMatchObject({ status: 401, body: { error: { code: "replayed_request" } } });
  });

  it("refuses a domain that is not a configured peer", async () => {
    const stranger = await token(bKey, { iss: "evil.example" });
    expect(await post(a.url, PATH, BODY, stranger)).toMatchObject({
      status: 403,
      body: { error: { code: "forbidden", reason: "unknown_peer" } },
    });
  });

  it("does not let a peer speak for another provider's users", async () => {
    const body = JSON.stringify({ user: "mallory@a.example", version: 1, devices: [] });
    const t = await signRequest(bKey, "b.example", "a.example", { method: "POST", path: PATH, body: Buffer.from(body) }, 60);
    expect(await post(a.url, PATH, body, t)).toMatchObject({ status: 403, body: { error: { code: "forbidden" } } });
  });
});

describe("per-peer rate limiting", () => {
  it("answers 429 rate_limited with Retry-After once a peer exceeds its requests per second", async () => {
    const bKey = await testKey();
    const providers = await startFederation(
      ["a.example", "b.example"],
      (d) =>
        d === "a.example"
          ? { limits: { rateLimit: { clientRequestsPerSecond: 1000, peerRequestsPerSecond: 3, claimsPerTargetPerHour: 1000 } } }
          : {},
      (d) => (d === "b.example" ? { signingKey: bKey } : {}),
    );
    try {
      const a = providers[0]!;
      const answers = [];
      for (let i = 0; i < 6; i++) {
        const t = await signRequest(bKey, "b.example", "a.example", { method: "POST", path: PATH, body: Buffer.from(BODY) }, 60);
        answers.push(
          await request(a.url + PATH, {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Bearer ${t}` },
            body: BODY,
          }),
        );
      }
      const statuses = answers.map((r) => r.statusCode);
      expect(statuses.filter((s) => s === 200)).toHaveLength(3);
      const limited = answers.filter((r) => r.statusCode === 429);
      expect(limited).toHaveLength(3);
      expect(Number(limited[0]!.headers["retry-after"])).toBeGreaterThanOrEqual(1);
      expect(((await limited[0]!.body.json()) as { error: { code: string } }).error.code).toBe("rate_limited");
      await Promise.all(answers.filter((r) => r.statusCode !== 429).map((r) => r.body.dump()));
    } finally {
      await stopAll(providers);
    }
  });
});

describe("replay protection is shared by the replicas of a provider", () => {
  it("refuses on replica 2 a token already used on replica 1 (shared Redis)", async () => {
    const { redisUrl, uniquePrefix } = await import("../helpers/providers.js");
    const bKey = await testKey();
    const store = { kind: "redis", redisUrl: redisUrl(), prefix: uniquePrefix() };
    const b = await startProvider("b.example", {}, { signingKey: bKey });
    const peers = { "b.example": { url: b.url } };
    const key = await testKey();
    const r1 = await startProvider("a.example", { store, federation: { peers } }, { signingKey: key });
    const r2 = await startProvider("a.example", { store, federation: { peers } }, { signingKey: key });
    try {
      const t = await signRequest(bKey, "b.example", "a.example", { method: "POST", path: PATH, body: Buffer.from(BODY) }, 60);
      expect((await post(r1.url, PATH, BODY, t)).status).toBe(200);
      expect(await post(r2.url, PATH, BODY, t)).toMatchObject({ status: 401, body: { error: { code: "replayed_request" } } });
    } finally {
      await stopAll([r1, r2, b]);
    }
  });
});
