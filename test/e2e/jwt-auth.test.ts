import { createServer, type Server } from "node:http";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey } from "jose";
import { FedgateApi } from "../../src/client/index.js";
import { freePort } from "../helpers/global-setup.js";
import { startProvider, stopAll, type Provider } from "../helpers/providers.js";

const ISSUER = "https://id.a.example";
const AUDIENCE = "mls-fedgate";

async function tokenFor(key: CryptoKey, sub: string, over: { iss?: string; aud?: string; kid?: string } = {}): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: "ES256", ...(over.kid ? { kid: over.kid } : {}) })
    .setSubject(sub)
    .setIssuer(over.iss ?? ISSUER)
    .setAudience(over.aud ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime("5m")
    .sign(key);
}

describe("jwt client auth against a configured issuer", () => {
  let keys: { publicKey: CryptoKey; privateKey: CryptoKey };
  let jwks: Server;
  let staticKey: Provider;
  let viaJwks: Provider;

  beforeAll(async () => {
    keys = await generateKeyPair("ES256");
    const jwk = { ...(await exportJWK(keys.publicKey)), kid: "k1", alg: "ES256" };
    const port = await freePort();
    jwks = createServer((_req, res) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((r) => jwks.listen(port, "127.0.0.1", r));
    const auth = { mode: "jwt", issuer: ISSUER, audience: AUDIENCE, algorithms: ["ES256"] };
    staticKey = await startProvider("a.example", { auth: { ...auth, publicKey: await exportSPKI(keys.publicKey) } });
    viaJwks = await startProvider("a.example", { auth: { ...auth, jwksUrl: `http://127.0.0.1:${port}/jwks` } });
  });
  afterAll(async () => {
    await stopAll([staticKey, viaJwks]);
    jwks.close();
  });

  it.each([
    ["a static public key", () => staticKey],
    ["a JWKS URL", () => viaJwks],
  ])("accepts tokens of the issuer verified with %s, with sub as the client id", async (_how, provider) => {
    const api = new FedgateApi(
      provider().url,
      "alice@a.example/phone",
      await tokenFor(keys.privateKey, "alice@a.example/phone", { kid: "k1" }),
    );
    await expect(api.listKeyPackages()).resolves.toEqual({ keyPackages: [] });
    expect((await api.devices("alice@a.example")).devices.map((d) => d.client)).toEqual(["alice@a.example/phone"]);
  });

  it("refuses tokens for another audience, from another issuer, signed by another key, or naming another domain", async () => {
    const other = await generateKeyPair("ES256");
    const bad = [
      await tokenFor(keys.privateKey, "alice@a.example/phone", { aud: "someone-else" }),
      await tokenFor(keys.privateKey, "alice@a.example/phone", { iss: "https://evil.example" }),
      await tokenFor(other.privateKey, "alice@a.example/phone"),
      await tokenFor(keys.privateKey, "alice@b.example/phone"),
      await tokenFor(keys.privateKey, "not-a-client-id"),
    ];
    for (const token of bad) {
      const api = new FedgateApi(staticKey.url, "alice@a.example/phone", token);
      await expect(api.listKeyPackages()).rejects.toMatchObject({ status: 401, code: "unauthenticated" });
    }
  });

  it("has no dev-token endpoint in jwt mode", async () => {
    await expect(new FedgateApi(staticKey.url, "alice@a.example/phone").login()).rejects.toMatchObject({
      status: 404,
      code: "not_found",
    });
  });
});
