import { createServer, type Server } from "node:http";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from "jose";
import { request } from "undici";
import { FedgateApi, MlsClient } from "../../src/client/index.js";
import { freePort } from "../helpers/global-setup.js";
import { redisUrl, startProvider, stopAll, testKey, uniquePrefix, type Provider } from "../helpers/providers.js";

/** Waits (at most ~1 s) until the wall clock is in a later second than `ms`: JWT iat has whole seconds. */
async function nextSecondAfter(ms: number): Promise<void> {
  const target = (Math.floor(ms / 1000) + 1) * 1000;
  const wait = target - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait + 5));
}

async function devToken(url: string, client: string): Promise<string> {
  const res = await fetch(`${url}/v1/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ client }),
  });
  return ((await res.json()) as { token: string }).token;
}

const deviceDeleted = { status: 401, code: "unauthenticated", details: { reason: "device_deleted" } };

async function deviceIds(api: FedgateApi, user: string): Promise<string[]> {
  return (await api.devices(user)).devices.map((d) => d.client);
}

describe("deleting a device revokes it (memory store, dev tokens)", () => {
  let a: Provider;
  beforeAll(async () => {
    a = await startProvider("a.example");
  });
  afterAll(() => stopAll([a]));

  it("refuses every call with the deleted device's token, and its upload does not re-register it", async () => {
    const phone = await MlsClient.connect(a.url, "alice@a.example/phone");
    const laptop = await MlsClient.connect(a.url, "alice@a.example/laptop");
    await phone.publishKeyPackages(2);
    const groupId = await phone.createGroup();
    expect(await deviceIds(laptop.api, "alice@a.example")).toEqual(["alice@a.example/laptop", "alice@a.example/phone"]);

    await laptop.api.removeDevice("alice@a.example/phone");

    await expect(phone.api.inbox(0)).rejects.toMatchObject(deviceDeleted);
    await expect(phone.api.group(groupId)).rejects.toMatchObject(deviceDeleted);
    await expect(phone.api.listKeyPackages()).rejects.toMatchObject(deviceDeleted);
    await expect(phone.publishKeyPackages(1)).rejects.toMatchObject(deviceDeleted);
    await expect(phone.api.removeDevice("alice@a.example/laptop")).rejects.toMatchObject(deviceDeleted);
    expect(await deviceIds(laptop.api, "alice@a.example")).toEqual(["alice@a.example/laptop"]);
    expect(await laptop.api.listKeyPackages()).toEqual({ keyPackages: [] });
  });

  it("brings the device back only through a token issued after the deletion", async () => {
    const tablet = await MlsClient.connect(a.url, "carol@a.example/tablet");
    const desk = await MlsClient.connect(a.url, "carol@a.example/desk");
    const deletedAt = Date.now();
    await desk.api.removeDevice("carol@a.example/tablet");
    await expect(tablet.api.listKeyPackages()).rejects.toMatchObject(deviceDeleted);

    await nextSecondAfter(deletedAt);
    const again = await MlsClient.connect(a.url, "carol@a.example/tablet");
    await again.publishKeyPackages(1);
    expect(await deviceIds(desk.api, "carol@a.example")).toEqual(["carol@a.example/desk", "carol@a.example/tablet"]);
    // The token from before the deletion stays refused.
    await expect(tablet.api.listKeyPackages()).rejects.toMatchObject(deviceDeleted);
  });

  it("ends an inbox stream the deleted device had open", async () => {
    const token = await devToken(a.url, "dave@a.example/phone");
    const phone = await MlsClient.connect(a.url, "dave@a.example/phone", { token });
    const laptop = await MlsClient.connect(a.url, "dave@a.example/laptop");
    // In a group, the phone's inbox gets the device update, which wakes its stream at once.
    await phone.createGroup();
    const stream = await request(`${a.url}/v1/inbox/stream`, { headers: { authorization: `Bearer ${token}` } });
    expect(stream.statusCode).toBe(200);
    const ended = stream.body.text();
    await laptop.api.removeDevice("dave@a.example/phone");
    const text = await Promise.race([
      ended,
      new Promise<string>((_, reject) => setTimeout(() => reject(new Error("open")), 5000)),
    ]);
    expect(text).toContain("event: device_update");
  });

  it("refuses to delete a device that is not the user's, and revokes nothing then", async () => {
    const erin = await MlsClient.connect(a.url, "erin@a.example/1");
    const frank = await MlsClient.connect(a.url, "frank@a.example/1");
    await expect(erin.api.removeDevice("frank@a.example/1")).rejects.toMatchObject({ status: 403, code: "forbidden" });
    await expect(erin.api.removeDevice("erin@a.example/never")).rejects.toMatchObject({ status: 404, code: "not_found" });
    await expect(frank.api.listKeyPackages()).resolves.toEqual({ keyPackages: [] });
    expect(await a.ds.ctx.store.deviceRevokedAt("erin@a.example/never")).toBeUndefined();
  });
});

describe("deleting a device revokes it (jwt tokens of an identity provider)", () => {
  const ISSUER = "https://id.a.example";
  let keys: { publicKey: CryptoKey; privateKey: CryptoKey };
  let jwks: Server;
  let a: Provider;

  const tokenFor = (sub: string, iat: number) =>
    new SignJWT({})
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setSubject(sub)
      .setIssuer(ISSUER)
      .setAudience("mls-fedgate")
      .setIssuedAt(iat)
      .setExpirationTime(iat + 600)
      .sign(keys.privateKey);

  beforeAll(async () => {
    keys = await generateKeyPair("ES256");
    const jwk = { ...(await exportJWK(keys.publicKey)), kid: "k1", alg: "ES256" };
    const port = await freePort();
    jwks = createServer((_req, res) => res.end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((r) => jwks.listen(port, "127.0.0.1", r));
    a = await startProvider("a.example", {
      auth: { mode: "jwt", issuer: ISSUER, audience: "mls-fedgate", algorithms: ["ES256"], jwksUrl: `http://127.0.0.1:${port}/` },
    });
  });
  afterAll(async () => {
    await stopAll([a]);
    jwks.close();
  });

  it("refuses tokens issued up to the deletion and accepts one issued after it, which registers the device again", async () => {
    const now = Math.floor(Date.now() / 1000);
    const phone = new FedgateApi(a.url, "gina@a.example/phone", await tokenFor("gina@a.example/phone", now - 5));
    const laptop = new FedgateApi(a.url, "gina@a.example/laptop", await tokenFor("gina@a.example/laptop", now - 5));
    await phone.listKeyPackages();
    await laptop.removeDevice("gina@a.example/phone");
    await expect(phone.listKeyPackages()).rejects.toMatchObject(deviceDeleted);
    const deletedAt = Math.floor((await a.ds.ctx.store.deviceRevokedAt("gina@a.example/phone"))! / 1000);
    // Issued in the second of the deletion: refused (JWT times are whole seconds).
    const same = new FedgateApi(a.url, "gina@a.example/phone", await tokenFor("gina@a.example/phone", deletedAt));
    await expect(same.listKeyPackages()).rejects.toMatchObject(deviceDeleted);
    expect(await deviceIds(laptop, "gina@a.example")).toEqual(["gina@a.example/laptop"]);

    const fresh = new FedgateApi(a.url, "gina@a.example/phone", await tokenFor("gina@a.example/phone", deletedAt + 1));
    await expect(fresh.listKeyPackages()).resolves.toEqual({ keyPackages: [] });
    expect(await deviceIds(laptop, "gina@a.example")).toEqual(["gina@a.example/laptop", "gina@a.example/phone"]);
  });
});

describe("deleting a device revokes it on every replica (two replicas on one Redis)", () => {
  let r1: Provider;
  let r2: Provider;
  beforeAll(async () => {
    const store = { kind: "redis", redisUrl: redisUrl(), prefix: uniquePrefix() };
    const key = await testKey();
    // A short cache: the other replica must notice the deletion within it.
    const auth = { revocationCacheMs: 200 };
    r1 = await startProvider("a.example", { store, auth }, { signingKey: key });
    r2 = await startProvider("a.example", { store, auth }, { signingKey: key });
  });
  afterAll(() => stopAll([r1, r2]));

  it("refuses the old token on the replica that did not delete it, within the cache time, and re-registers a new token there", async () => {
    const token = await devToken(r2.url, "hank@a.example/phone");
    const phone = await MlsClient.connect(r2.url, "hank@a.example/phone", { token });
    const laptop = await MlsClient.connect(r1.url, "hank@a.example/laptop");
    await phone.publishKeyPackages(1);
    expect(await deviceIds(laptop.api, "hank@a.example")).toEqual(["hank@a.example/laptop", "hank@a.example/phone"]);
    await phone.api.inbox(0); // r2 has now cached "not deleted"

    const deletedAt = Date.now();
    await laptop.api.removeDevice("hank@a.example/phone");
    // r1 refuses at once (it recorded the deletion); r2 once its cached answer is older than 200 ms.
    await expect(new FedgateApi(r1.url, phone.id, token).inbox(0)).rejects.toMatchObject(deviceDeleted);
    let refusedAfterMs: number | undefined;
    while (refusedAfterMs === undefined && Date.now() - deletedAt < 3000) {
      try {
        await phone.api.inbox(0);
        await new Promise((r) => setTimeout(r, 25));
      } catch (e) {
        expect(e).toMatchObject(deviceDeleted);
        refusedAfterMs = Date.now() - deletedAt;
      }
    }
    expect(refusedAfterMs).toBeDefined();
    expect(refusedAfterMs!).toBeLessThan(1500);
    await expect(phone.publishKeyPackages(1)).rejects.toMatchObject(deviceDeleted);
    expect(await deviceIds(laptop.api, "hank@a.example")).toEqual(["hank@a.example/laptop"]);

    await nextSecondAfter(deletedAt);
    const back = await MlsClient.connect(r2.url, "hank@a.example/phone");
    await back.api.inbox(0);
    expect(await deviceIds(laptop.api, "hank@a.example")).toEqual(["hank@a.example/laptop", "hank@a.example/phone"]);
  });
});
