import { createServer, type Server } from "node:http";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from "jose";
import { FedgateApi } from "../../src/client/index.js";
import { loadConfig } from "../../src/index.js";
import { freePort } from "../helpers/global-setup.js";
import { startProvider, stopAll, type Provider } from "../helpers/providers.js";

const ISSUER = "https://id.a.example";
const AUDIENCE = "mls-fedgate";
const MAX_LIFETIME_S = 3600;

describe("client tokens in jwt mode", () => {
  let keys: { publicKey: CryptoKey; privateKey: CryptoKey };
  let jwks: Server;
  let a: Provider;
  const now = () => Math.floor(Date.now() / 1000);

  /** A token of the configured issuer; `claims` sets or (undefined) drops iat/exp/sub. */
  const token = (claims: { sub?: string; iat?: number; exp?: number }) => {
    const payload: JWTPayload = { iss: ISSUER, aud: AUDIENCE, ...claims };
    for (const k of Object.keys(payload) as (keyof JWTPayload)[]) if (payload[k] === undefined) delete payload[k];
    return new SignJWT(payload).setProtectedHeader({ alg: "ES256", kid: "k1" }).sign(keys.privateKey);
  };
  const call = async (sub: string, claims: { sub?: string; iat?: number; exp?: number }) =>
    new FedgateApi(a.url, sub, await token(claims)).listKeyPackages();

  beforeAll(async () => {
    keys = await generateKeyPair("ES256");
    const jwk = { ...(await exportJWK(keys.publicKey)), kid: "k1", alg: "ES256" };
    const port = await freePort();
    jwks = createServer((_req, res) => res.end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((r) => jwks.listen(port, "127.0.0.1", r));
    a = await startProvider("a.example", {
      auth: {
        mode: "jwt",
        issuer: ISSUER,
        audience: AUDIENCE,
        algorithms: ["ES256"],
        jwksUrl: `http://127.0.0.1:${port}/`,
        maxTokenLifetimeSeconds: MAX_LIFETIME_S,
      },
    });
  });
  afterAll(async () => {
    await stopAll([a]);
    jwks.close();
  });

  const sub = "alice@a.example/phone";

  it("accepts a token that expires within auth.maxTokenLifetimeSeconds, with or without iat", async () => {
    await expect(call(sub, { sub, iat: now(), exp: now() + MAX_LIFETIME_S })).resolves.toEqual({ keyPackages: [] });
    await expect(call(sub, { sub, exp: now() + 60 })).resolves.toEqual({ keyPackages: [] });
  });

  it("refuses a token without exp (it would never expire)", async () => {
    await expect(call(sub, { sub, iat: now() })).rejects.toMatchObject({
      status: 401,
      code: "unauthenticated",
      message: expect.stringContaining('"exp"'),
    });
  });

  it("refuses a token that lives longer than auth.maxTokenLifetimeSeconds, by exp − iat, or by exp − now without iat", async () => {
    const refused = { status: 401, code: "unauthenticated", details: { reason: "lifetime" } };
    await expect(call(sub, { sub, iat: now(), exp: now() + MAX_LIFETIME_S + 1 })).rejects.toMatchObject(refused);
    await expect(call(sub, { sub, exp: now() + 2 * MAX_LIFETIME_S })).rejects.toMatchObject(refused);
  });

  it("refuses a token issued in the future", async () => {
    await expect(call(sub, { sub, iat: now() + 600, exp: now() + 900 })).rejects.toMatchObject({
      status: 401,
      details: { reason: "bad_iat" },
    });
  });

  it("refuses a sub that is no device id of this domain: the virtual client, over 512 characters, control characters", async () => {
    const long = `${"u".repeat(512 - "@a.example/d".length + 1)}@a.example/d`;
    const subs = [
      "alice@a.example/*",
      long,
      "alice@a.example/ph\u0001one",
      "alice@a.example/phone\u007f",
      "al\u0085ice@a.example/phone",
      "alice@a.example",
      "alice@b.example/phone",
    ];
    for (const s of subs) {
      await expect(call(sub, { sub: s, iat: now(), exp: now() + 60 })).rejects.toMatchObject({
        status: 401,
        code: "unauthenticated",
        message: expect.stringContaining("token subject rejected"),
      });
    }
    const longest = `${"u".repeat(512 - "@a.example/d".length)}@a.example/d`;
    expect(longest).toHaveLength(512);
    await expect(call(longest, { sub: longest, iat: now(), exp: now() + 60 })).resolves.toEqual({ keyPackages: [] });
    await expect(call(sub, { iat: now(), exp: now() + 60 })).rejects.toMatchObject({ status: 401 });
  });
});

describe("dev tokens", () => {
  let a: Provider;
  beforeAll(async () => {
    a = await startProvider("a.example");
  });
  afterAll(() => stopAll([a]));

  it("are not issued for the virtual client user/* or ids with control characters", async () => {
    for (const client of ["alice@a.example/*", "alice@a.example/x\u0000"]) {
      await expect(new FedgateApi(a.url, client).login()).rejects.toMatchObject({ status: 400, code: "bad_request" });
    }
  });
});

describe("token and edge settings", () => {
  it("refuse a dev token lifetime over the maximum and a headers timeout over the request timeout", () => {
    expect(() => loadConfig({ overrides: { auth: { devTokenTtlSeconds: 7200, maxTokenLifetimeSeconds: 3600 } } })).toThrow(
      "config error: auth.devTokenTtlSeconds: must not exceed auth.maxTokenLifetimeSeconds",
    );
    expect(() => loadConfig({ overrides: { limits: { headersTimeoutMs: 5000, requestTimeoutMs: 1000 } } })).toThrow(
      "config error: limits.headersTimeoutMs: must not exceed limits.requestTimeoutMs",
    );
    expect(loadConfig({ env: { MLSFEDGATE_AUTH__MAX_TOKEN_LIFETIME_SECONDS: "172800" } }).auth.maxTokenLifetimeSeconds).toBe(
      172800,
    );
  });
});
