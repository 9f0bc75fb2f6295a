import { request as httpsRequest } from "node:https";
import { MlsClient } from "../../src/client/index.js";
import { systemClock } from "../../src/clock.js";
import { encodeNotifyBody, encodeUpdateRoomResponse } from "../../src/federation/mimi/codec.js";
import { startMixedFederation, type MimiProvider } from "../helpers/mimi.js";
import { stopAll } from "../helpers/providers.js";
import type { KeyPair, TestPki } from "../helpers/pki.js";

interface Answer {
  status: number;
  body: Buffer;
  error?: string;
}

/** A raw MIMI request to a DS's mTLS listener with the given client certificate (or none). */
function post(
  url: string,
  path: string,
  opts: { tls?: KeyPair; ca: string; from: string; host?: string; body?: Uint8Array },
): Promise<Answer> {
  return new Promise((resolve) => {
    const u = new URL(url);
    const req = httpsRequest(
      {
        host: u.hostname,
        port: u.port,
        path,
        method: "POST",
        ca: opts.ca,
        servername: opts.host ?? "a.example",
        checkServerIdentity: () => undefined,
        ...(opts.tls ? { cert: opts.tls.cert, key: opts.tls.key } : {}),
        headers: { from: opts.from, host: opts.host ?? "a.example", "content-type": "application/octet-stream" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      },
    );
    req.on("error", (e) => resolve({ status: 0, body: Buffer.alloc(0), error: e.message }));
    req.end(Buffer.from(opts.body ?? new Uint8Array([1])));
  });
}

const reason = (a: Answer) => (JSON.parse(a.body.toString()) as { error: { code: string; reason?: string } }).error;

describe("MIMI transport: mutually authenticated TLS, From/Host, notify duplicates", () => {
  let providers: MimiProvider[];
  let pki: TestPki;
  let a: MimiProvider, b: MimiProvider;

  beforeAll(async () => {
    ({ providers, pki } = await startMixedFederation(["a.example", "b.example"], () => "mimi"));
    [a, b] = providers as [MimiProvider, MimiProvider];
  });
  afterAll(async () => {
    await stopAll(providers);
    pki.dispose();
  });

  it("serves the directory with endpoint templates on the MIMI listener", async () => {
    const res = await fetch(`${a.mimiUrl}/.well-known/mimi-protocol-directory`, {
      // @ts-expect-error undici's dispatcher option is not in the DOM fetch types
      dispatcher: new (await import("undici")).Agent({ connect: { ca: a.ca.cert, rejectUnauthorized: false } }),
    });
    const doc = (await res.json()) as Record<string, string>;
    expect(Object.keys(doc).sort()).toEqual(["groupInfo", "keyMaterial", "notify", "submitMessage", "update"]);
    expect(doc.keyMaterial).toBe(`${a.mimiUrl}/mimi/v1/keyMaterial/{targetUser}`);
  });

  it("refuses a request without a client certificate", async () => {
    const res = await post(a.mimiUrl, "/mimi/v1/notify/x", { ca: a.ca.cert, from: "mimi@b.example" });
    expect(res.status).toBe(401);
    expect(reason(res)).toMatchObject({ code: "unauthenticated", reason: "no_client_certificate" });
  });

  it("refuses a certificate from a CA not trusted for the peer", async () => {
    const rogueCa = pki.ca("rogue");
    const rogue = pki.leaf(rogueCa, "b.example");
    const res = await post(a.mimiUrl, "/mimi/v1/notify/x", { ca: a.ca.cert, tls: rogue, from: "mimi@b.example" });
    expect(res.status).toBe(401);
    expect(reason(res)).toMatchObject({ code: "unauthenticated", reason: "untrusted_certificate" });
  });

  it("refuses a trusted certificate that names another domain than From", async () => {
    const wrong = pki.leaf(b.ca, "z.example");
    const res = await post(a.mimiUrl, "/mimi/v1/notify/x", { ca: a.ca.cert, tls: wrong, from: "mimi@b.example" });
    expect(res.status).toBe(401);
    expect(reason(res)).toMatchObject({ code: "unauthenticated", reason: "certificate_domain_mismatch" });
  });

  it("refuses a From that is no MIMI peer, and a Host that is not the provider", async () => {
    const other = await post(a.mimiUrl, "/mimi/v1/notify/x", { ca: a.ca.cert, tls: b.tls, from: "mimi@c.example" });
    expect(other.status).toBe(403);
    const host = await post(a.mimiUrl, "/mimi/v1/notify/x", {
      ca: a.ca.cert,
      tls: b.tls,
      from: "mimi@b.example",
      host: "q.example",
    });
    expect(host.status).toBe(403);
    expect(reason(host)).toMatchObject({ reason: "wrong_host" });
  });

  it("refuses, as a client, a server whose certificate does not name the peer's domain", async () => {
    // a.example's listener presents a.example's certificate; pretend it is b.example's address.
    const { MimiClient } = await import("../../src/federation/mimi/client.js");
    const { loadMimiTls } = await import("../../src/federation/mimi/tls.js");
    const tls = loadMimiTls({
      ...b.ds.config,
      federation: {
        ...b.ds.config.federation,
        peers: {
          "c.example": { url: a.mimiUrl, protocol: "mimi", tls: { caCertificates: [a.ca.cert], pinnedCertificates: [] } },
        },
      },
    })!;
    const client = new MimiClient({
      domain: "b.example",
      peers: { "c.example": { url: a.mimiUrl, protocol: "mimi" } },
      tls,
      timeoutMs: 3000,
      maxResponseBytes: 1 << 20,
      directoryCacheSeconds: 1,
      clock: systemClock,
    });
    await expect(client.directory("c.example")).rejects.toMatchObject({ code: "peer_unreachable" });
    await client.close();
  });

  it("ages its directory cache on the injected clock, not the wall clock", async () => {
    const { MimiClient } = await import("../../src/federation/mimi/client.js");
    const { loadMimiTls } = await import("../../src/federation/mimi/tls.js");
    const { FakeClock } = await import("../helpers/clock.js");
    const tls = loadMimiTls(b.ds.config)!;
    const clock = new FakeClock();
    // Mutable on purpose: after the first fetch the peer "moves" to a dead port.
    const peers: Record<string, { url: string; protocol: string }> = { "a.example": { url: a.mimiUrl, protocol: "mimi" } };
    const client = new MimiClient({
      domain: "b.example",
      peers,
      tls,
      timeoutMs: 3000,
      maxResponseBytes: 1 << 20,
      directoryCacheSeconds: 60,
      clock,
    });
    try {
      expect(Object.keys(await client.directory("a.example"))).toContain("update");
      peers["a.example"] = { url: "https://127.0.0.1:9/", protocol: "mimi" };
      clock.advance(59_000);
      expect(Object.keys(await client.directory("a.example"))).toContain("update"); // still cached
      clock.advance(2_000);
      await expect(client.directory("a.example")).rejects.toMatchObject({ code: "peer_unreachable" });
    } finally {
      await client.close();
    }
  });

  it("answers byte-identical notify duplicates 201 and processes them once", async () => {
    const alice = await MlsClient.connect(a.url, "alice@a.example/dup", { commitFormat: "public" });
    const bob = await MlsClient.connect(b.url, "bob@b.example/dup", { commitFormat: "public" });
    await bob.publishKeyPackages(2);
    const groupId = await alice.createGroup();
    await alice.addUsers(groupId, ["bob@b.example"]);
    await bob.syncUntil((ev) => ev.some((e) => e.kind === "joined"));
    // Replay a notify of a real application message from the hub's identity twice.
    await alice.send(groupId, "once");
    await bob.syncUntil((ev) => ev.some((e) => e.kind === "message"));
    const { messages } = await alice.api.messages(groupId, 0);
    const app = messages.find((m) => m.kind === "application")!;
    const body = encodeNotifyBody([
      {
        timestamp: 1n,
        message: { value: undefined as never, bytes: Buffer.from(app.message, "base64url") },
        kind: "application",
      },
    ]);
    const room = encodeURIComponent(`mimi://a.example/r/${groupId}`);
    const first = await post(b.mimiUrl, `/mimi/v1/notify/${room}`, {
      ca: b.ca.cert,
      tls: a.tls,
      from: "mimi@a.example",
      host: "b.example",
      body,
    });
    const second = await post(b.mimiUrl, `/mimi/v1/notify/${room}`, {
      ca: b.ca.cert,
      tls: a.tls,
      from: "mimi@a.example",
      host: "b.example",
      body,
    });
    expect([first.status, second.status]).toEqual([201, 201]);
    expect(await bob.sync({ waitMs: 300 })).toEqual([]);
    // A notify body that does not decode is refused without effect.
    const bad = await post(b.mimiUrl, `/mimi/v1/notify/${room}`, {
      ca: b.ca.cert,
      tls: a.tls,
      from: "mimi@a.example",
      host: "b.example",
      body: encodeUpdateRoomResponse({ responseCode: "notAllowed", errorDescription: "x" }),
    });
    expect(bad.status).toBe(400);
  });
});

describe("MIMI peers trusted by pinned (self-signed) certificates", () => {
  it("federates when the pinned certificate is presented, and refuses a CA-issued one for the same domain", async () => {
    const { providers, pki } = await startMixedFederation(
      ["a.example", "b.example"],
      () => "mimi",
      undefined,
      undefined,
      (d) => (d === "b.example" ? "pinned" : "ca"),
    );
    try {
      const [a, b] = providers as [MimiProvider, MimiProvider];
      const alice = await MlsClient.connect(a.url, "alice@a.example/pin");
      const bob = await MlsClient.connect(b.url, "bob@b.example/pin");
      await bob.publishKeyPackages(1);
      await alice.publishKeyPackages(1);
      expect((await alice.api.claim("bob@b.example", [1])).bundles).toHaveLength(1);
      expect((await bob.api.claim("alice@a.example", [1])).bundles).toHaveLength(1);
      // Another certificate for b.example (even one from a CA that a.example trusts for itself) is not the pinned one.
      const other = pki.leaf(a.ca, "b.example");
      const res = await post(a.mimiUrl, "/mimi/v1/notify/x", { ca: a.ca.cert, tls: other, from: "mimi@b.example" });
      expect(res.status).toBe(401);
      expect(reason(res)).toMatchObject({ reason: "untrusted_certificate" });
    } finally {
      await stopAll(providers);
      pki.dispose();
    }
  });
});

describe("per-peer trust anchors", () => {
  it("refuses a certificate for c.example issued by the CA trusted only for b.example", async () => {
    const { providers, pki } = await startMixedFederation(["a.example", "b.example", "c.example"], () => "mimi");
    try {
      const [a, b, c] = providers as [MimiProvider, MimiProvider, MimiProvider];
      const forged = pki.leaf(b.ca, "c.example");
      const res = await post(a.mimiUrl, "/mimi/v1/notify/x", { ca: a.ca.cert, tls: forged, from: "mimi@c.example" });
      expect(res.status).toBe(401);
      expect(reason(res)).toMatchObject({ reason: "untrusted_certificate" });
      const genuine = await post(a.mimiUrl, "/mimi/v1/notify/x", { ca: a.ca.cert, tls: c.tls, from: "mimi@c.example" });
      expect(genuine.status).toBe(400); // authenticated; "x" is no room URI
    } finally {
      await stopAll(providers);
      pki.dispose();
    }
  });
});
