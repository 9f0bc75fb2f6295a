import { randomBytes } from "node:crypto";
import { jest } from "@jest/globals";
import {
  createCommit,
  createGroup,
  decodeMlsMessage,
  defaultCapabilities,
  defaultLifetime,
  encodeMlsMessage,
  generateKeyPackage,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
} from "ts-mls";
import { MlsClient, type MlsEvent } from "../../src/client/index.js";
import { GAP_FILL } from "../../src/domain/replica.js";
import { FakePeer } from "../helpers/fake-peer.js";
import { freePort } from "../helpers/global-setup.js";
import { redisUrl, startProvider, stopAll, uniquePrefix, type Provider } from "../helpers/providers.js";

/**
 * A configured peer C with its own valid signing key attacks two real DSs (A hubs group G, B
 * follows it) on each store. Every attack is refused with its code (docs/SECURITY.md, "Hostile
 * peer") while Alice (A) and Bob (B), real ts-mls clients, keep talking in G.
 */
const C = "c.example";
const carol = "carol@c.example/1";
const junk = Buffer.from("not an MLS message").toString("base64url");
const newGroupId = () => randomBytes(16).toString("base64url");

function cView(groupId: string, over: Record<string, unknown> = {}) {
  return { groupId, hub: C, epoch: 0, mode: "ordered", cipherSuite: 1, members: [carol], owner: carol, ...over };
}

function cEntry(seq: number, over: Record<string, unknown> = {}) {
  return { seq, kind: "application", epoch: 0, sender: carol, message: junk, sha256: "00", recipients: [], ...over };
}

const texts = (events: MlsEvent[]) => events.flatMap((e) => (e.kind === "message" ? [e.text] : []));

describe.each([["memory"], ["redis"]])("a hostile peer against real DSs on the %s store", (kind) => {
  let a: Provider;
  let b: Provider;
  let c: FakePeer;
  let alice: MlsClient;
  let bob: MlsClient;
  let groupId: string;
  const sentByAlice: string[] = [];
  const receivedByBob: string[] = [];

  /** Honest traffic: Alice → Bob and Bob → Alice in G, both ways through federation. */
  async function roundTrip(text: string): Promise<void> {
    await alice.send(groupId, text);
    sentByAlice.push(text);
    receivedByBob.push(...texts(await bob.syncUntil((ev) => texts(ev).includes(text))));
    await bob.send(groupId, `${text}/reply`);
    await alice.syncUntil((ev) => texts(ev).includes(`${text}/reply`));
    // B's replica has every entry A ordered (the reply reaches B's replica after Alice may read it).
    const deadline = Date.now() + 5000;
    const want = (await a.ds.ctx.store.getGroup(groupId))!.nextSeq - 1;
    while ((await b.ds.ctx.store.contiguousSeq(groupId)) < want) {
      if (Date.now() > deadline) throw new Error(`B's replica of G stays behind seq ${want}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  beforeAll(async () => {
    c = await FakePeer.start(C);
    const [pa, pb] = [await freePort(), await freePort()];
    const config = (other: string, port: number) => ({
      ...(kind === "redis" ? { store: { kind: "redis", redisUrl: redisUrl(), prefix: uniquePrefix() } } : {}),
      federation: {
        peers: { [other]: { url: `http://127.0.0.1:${port}` }, [C]: { url: c.url } },
        outbox: { batchSize: 100, retryBaseMs: 50, retryMaxMs: 400, pollMs: 100 },
      },
      limits: { rateLimit: { claimsPerTargetPerHour: 3, claimsPerPeerPerHour: 6 } },
    });
    a = await startProvider("a.example", { port: pa, ...config("b.example", pb) });
    b = await startProvider("b.example", { port: pb, ...config("a.example", pa) });
    alice = await MlsClient.connect(a.url, "alice@a.example/1");
    bob = await MlsClient.connect(b.url, "bob@b.example/1");
    await alice.publishKeyPackages(5);
    await bob.publishKeyPackages(3);
    groupId = await alice.createGroup();
    await alice.addUsers(groupId, ["bob@b.example"]);
    await bob.syncUntil((ev) => ev.some((e) => e.kind === "joined"));
    await roundTrip("hello");
  });

  afterAll(async () => {
    await stopAll([a, b].filter(Boolean));
    await c?.close();
  });

  it("cannot take over a group through a gap-fill answer or a delivery naming itself hub (item 1)", async () => {
    const before = await b.ds.ctx.store.getGroup(groupId);
    const logBefore = await b.ds.ctx.store.readLog(groupId, 0, 1000);
    const own = newGroupId();
    // C answers B's pull for its own group with A's group G and itself as hub.
    c.script = (req) =>
      req.path.startsWith(`/federation/v1/groups/${own}/messages`)
        ? {
            status: 200,
            body: {
              // A newer epoch than B holds: a believed answer would replace B's record of G.
              group: cView(groupId, { epoch: 1000, members: [carol, bob.id] }),
              entries: [cEntry(before!.nextSeq), cEntry(before!.nextSeq + 1, { recipients: [bob.id] })],
            },
          }
        : undefined;
    // A delivery with a gap (seq 3 of C's group) makes B pull from C …
    const gap = await c.call(b, "POST", "/federation/v1/deliver", {
      groups: { [own]: cView(own) },
      messages: [{ groupId: own, ...cEntry(3) }],
    });
    expect(gap).toEqual({ status: 200, body: { accepted: 1 } });
    expect(c.requests(`/federation/v1/groups/${own}/messages`)).toHaveLength(1);
    // … and the answer about another group was not believed.
    expect(await b.ds.ctx.store.getGroup(groupId)).toEqual(before);
    expect(await b.ds.ctx.store.readLog(groupId, 0, 1000)).toEqual(logBefore);
    expect(await b.ds.ctx.store.contiguousSeq(own)).toBe(0);

    // Delivering G directly, as its hub or in A's name, is refused entry by entry.
    for (const hub of [C, "a.example"]) {
      const direct = await c.call(b, "POST", "/federation/v1/deliver", {
        groups: { [groupId]: cView(groupId, { hub, epoch: 1000, members: [carol, bob.id] }) },
        messages: [{ groupId, ...cEntry(before!.nextSeq, { recipients: [bob.id] }) }],
      });
      expect(direct.status).toBe(200);
      expect(direct.body).toMatchObject({ accepted: 0, refused: [{ groupId, seq: before!.nextSeq, code: "forbidden" }] });
    }
    expect(await b.ds.ctx.store.getGroup(groupId)).toEqual(before);
    c.script = () => undefined;
    await roundTrip("after takeover attempts");
    expect((await b.ds.ctx.store.getGroup(groupId))?.hub).toBe("a.example");
  });

  it("bounds gap fill: an endless, stalling or far-off hub log stops the pull (item 2)", async () => {
    const endless = newGroupId();
    const stalling = newGroupId();
    const faroff = newGroupId();
    const page = (from: number, first: number) =>
      Array.from({ length: GAP_FILL.pageSize }, (_, i) => cEntry(first + i, { message: `${junk}${from}` }));
    c.script = (req) => {
      const m = /^\/federation\/v1\/groups\/([^/]+)\/messages\?after=(\d+)/.exec(req.path);
      if (!m) return undefined;
      const [g, after] = [m[1]!, Number(m[2])];
      // stalling: skips the missing seq; faroff: seqs beyond the page; any other: an endless log.
      const first = g === stalling ? after + 2 : g === faroff ? after + 5000 : after + 1;
      return { status: 200, body: { group: cView(g), entries: page(after, first) } };
    };
    for (const g of [endless, stalling, faroff]) {
      const started = Date.now();
      const answer = await c.call(b, "POST", "/federation/v1/deliver", {
        groups: { [g]: cView(g) },
        messages: [{ groupId: g, ...cEntry(2) }],
      });
      expect(answer).toEqual({ status: 200, body: { accepted: 1 } });
      expect(Date.now() - started).toBeLessThan(GAP_FILL.maxMs + 5000);
    }
    const pulls = (g: string) => c.requests(`/federation/v1/groups/${g}/messages`).length;
    expect(pulls(endless)).toBeLessThanOrEqual(GAP_FILL.maxRequests);
    expect(pulls(endless)).toBeGreaterThan(1);
    expect(await b.ds.ctx.store.contiguousSeq(endless)).toBeLessThanOrEqual(GAP_FILL.maxEntries);
    expect([pulls(stalling), pulls(faroff)]).toEqual([1, 1]);
    // The stalling page was stored (it is in range) but cannot advance; the far-off page was refused whole.
    expect(await b.ds.ctx.store.contiguousSeq(stalling)).toBe(0);
    expect((await b.ds.ctx.store.readLog(faroff, 0, 10)).map((e) => e.seq)).toEqual([2]);
    // One deliver with a gap in each of 50 groups: the budget is per request, not per group.
    const many = Array.from({ length: 50 }, newGroupId);
    const fanned = await c.call(b, "POST", "/federation/v1/deliver", {
      groups: Object.fromEntries(many.map((g) => [g, cView(g)])),
      messages: many.map((g) => ({ groupId: g, ...cEntry(2) })),
    });
    expect(fanned).toEqual({ status: 200, body: { accepted: 50 } });
    expect(many.reduce((n, g) => n + pulls(g), 0)).toBeLessThanOrEqual(GAP_FILL.maxRequests);
    c.script = () => undefined;
    await roundTrip("after gap-fill attacks");
  });

  it("cannot use a log page's logStart to skip held entries, jump without evidence or pass bad values (item 2)", async () => {
    const [honest, late, fractional, negative] = [newGroupId(), newGroupId(), newGroupId(), newGroupId()];
    const logStart: Record<string, unknown> = { [honest]: 1_000_000, [late]: 10, [fractional]: 1.5, [negative]: -3 };
    c.script = (req) => {
      const m = /^\/federation\/v1\/groups\/([^/]+)\/messages\?after=(\d+)/.exec(req.path);
      if (!m) return undefined;
      const g = m[1]!;
      // `late` claims its log starts after the entry it answers with.
      const entries = g === late ? [cEntry(3)] : [];
      return { status: 200, body: { group: cView(g), entries, logStart: logStart[g] } };
    };
    for (const g of [honest, late, fractional, negative]) {
      const answer = await c.call(b, "POST", "/federation/v1/deliver", {
        groups: { [g]: cView(g) },
        messages: [2, 5].map((seq) => ({ groupId: g, ...cEntry(seq) })),
      });
      expect(answer).toEqual({ status: 200, body: { accepted: 2 } });
    }
    const seqs = async (g: string) => (await b.ds.ctx.store.readLog(g, 0, 10)).map((e) => e.seq);
    // A far logStart skips only the unheld seq 1: held 2 and 5 stay, the real gap at 3 stays a gap.
    expect(await b.ds.ctx.store.contiguousSeq(honest)).toBe(2);
    expect(await seqs(honest)).toEqual([2, 5]);
    // A logStart past the page's first entry, or not a positive integer: the page is refused whole.
    for (const g of [late, fractional, negative]) {
      expect(await b.ds.ctx.store.contiguousSeq(g)).toBe(0);
      expect(await seqs(g)).toEqual([2, 5]);
    }
    c.script = () => undefined;
    await roundTrip("after logStart attacks");
  });

  it("cannot drain a user's KeyPackages with made-up requesters (item 4)", async () => {
    const claim = (requester: string, user = "alice@a.example") =>
      c.call(a, "POST", "/federation/v1/key-packages/claim", { user, requester, cipherSuites: [1], versions: ["mls10"] });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await claim(`made-up-${i}@c.example/x`)).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    expect((await claim("made-up-9@c.example/x")).body.error).toMatchObject({ code: "rate_limited" });
    // The requester must be C's own client.
    expect(await claim("mallory@b.example/1")).toMatchObject({ status: 403, body: { error: { code: "forbidden" } } });
    // Per peer domain over all users: 3 more claims (to users A does not know), then 429.
    const others = [];
    for (let i = 0; i < 4; i++) others.push((await claim(`x@c.example/${i}`, `nobody${i}@a.example`)).body.error?.code);
    expect(others).toEqual(["unknown_user", "unknown_user", "unknown_user", "rate_limited"]);
    const left = (await alice.api.request<{ keyPackages: { lastResort: boolean }[] }>("GET", "/v1/key-packages")).keyPackages;
    expect(left.filter((k) => !k.lastResort)).toHaveLength(2);
    // Another peer's claims are keyed by its own domain: Bob still gets one of Alice's KeyPackages.
    const honest = await bob.api.claim("alice@a.example", [1]);
    expect(honest.bundles.map((x) => x.client)).toEqual(["alice@a.example/1"]);
    await roundTrip("after claim drain");
  });

  it("sees no view, log, commit log or member list of a group it has no member in (item 5)", async () => {
    const base = `/federation/v1/groups/${groupId}`;
    const answers = [
      await c.call(a, "GET", `${base}/messages?after=1000000`),
      await c.call(a, "GET", `${base}/messages`),
      await c.call(a, "GET", `${base}/commit-log`),
      await c.call(a, "GET", `${base}?member=${encodeURIComponent(carol)}`),
      await c.call(a, "GET", `${base}?member=${encodeURIComponent(alice.id)}`),
      await c.call(a, "GET", `${base}/group-info?member=${encodeURIComponent(carol)}`),
    ];
    expect(answers.map((x) => [x.status, x.body.error?.code])).toEqual([
      [403, "forbidden"],
      [403, "forbidden"],
      [403, "forbidden"],
      [403, "not_a_member"],
      [403, "forbidden"],
      [403, "not_a_member"],
    ]);
    // Nothing names a member C did not name itself (it asked about Alice once, and hears her name back).
    for (const x of answers) expect(JSON.stringify(x.body)).not.toMatch(/bob@|members/);
    await roundTrip("after member-list probes");
  });

  it("answers a mixed deliver entry by entry, so one bad group never sets aside another's (item 6)", async () => {
    const own = newGroupId();
    const answer = await c.call(b, "POST", "/federation/v1/deliver", {
      groups: { [own]: cView(own), [groupId]: cView(groupId) },
      messages: [
        { groupId: own, ...cEntry(1) },
        { groupId: own, ...cEntry(2, { recipients: [alice.id] }) },
        { groupId: own, ...cEntry(3, { sender: alice.id, recipients: [bob.id] }) },
        { groupId, ...cEntry(99) },
        { groupId: "constructor", ...cEntry(1) },
      ],
    });
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({
      accepted: 1,
      refused: [
        { groupId: own, seq: 2, code: "bad_request", message: expect.any(String) },
        { groupId: own, seq: 3, code: "not_a_member", message: expect.any(String) },
        { groupId, seq: 99, code: "forbidden", message: expect.any(String) },
        { groupId: "constructor", seq: 1, code: "forbidden", message: expect.any(String) },
      ],
    });
    // The forged-sender entry is kept (so C's own group has no gap here) but goes to nobody.
    expect((await b.ds.ctx.store.readLog(own, 0, 10)).map((e) => [e.seq, e.recipients])).toEqual([
      [1, []],
      [3, []],
    ]);
    const inboxed = await b.ds.ctx.store.readInbox(bob.id, 0, 1000);
    expect(inboxed.filter(({ item }) => item.kind === "ref" && item.groupId === own)).toEqual([]);

    // Between real DSs: a group id that collides on B is refused, G's entries in the same batch are not.
    const collide = await bob.createGroup();
    await alice.createGroup({ groupId: collide });
    await a.ds.ctx.outbox.stop();
    try {
      await alice.send(collide, "into the colliding group");
      await alice.send(groupId, "beside the collision");
      sentByAlice.push("beside the collision");
      const refusedBefore = (await a.ds.ctx.metrics.refused.get()).values.find((v) => v.labels.peer === "b.example")?.value ?? 0;
      // A's group happens to carry the id of B's own group; queue its entry for B as a member there would.
      const [entry] = await a.ds.ctx.store.readLog(collide, 0, 1);
      await a.ds.ctx.store.enqueueOutbox("b.example", [{ id: `${collide}:${entry!.seq}`, groupId: collide, seq: entry!.seq }]);
      await a.ds.ctx.outbox.flushOnce("b.example");
      await a.ds.ctx.outbox.flushOnce("b.example");
      const refusedAfter = (await a.ds.ctx.metrics.refused.get()).values.find((v) => v.labels.peer === "b.example")?.value ?? 0;
      expect(refusedAfter - refusedBefore).toBe(1);
      receivedByBob.push(...texts(await bob.syncUntil((ev) => texts(ev).includes("beside the collision"))));
      expect((await b.ds.ctx.store.getGroup(collide))?.hub).toBe("b.example");
    } finally {
      a.ds.ctx.outbox.start();
    }
    await roundTrip("after mixed deliveries");
  });

  it("refuses a non-member re-posting a member's exact bytes, without another fan-out (item 8)", async () => {
    await alice.send(groupId, "say it once");
    sentByAlice.push("say it once");
    receivedByBob.push(...texts(await bob.syncUntil((ev) => texts(ev).includes("say it once"))));
    const [said] = (await a.ds.ctx.store.readLog(groupId, 0, 10_000)).slice(-1);
    const enqueue = jest.spyOn(a.ds.ctx.store, "enqueueOutbox");
    const inbox = jest.spyOn(a.ds.ctx.store, "appendInboxMany");
    try {
      const viaC = await c.call(a, "POST", `/federation/v1/groups/${groupId}/submit`, {
        sender: carol,
        kind: "message",
        message: said!.message,
      });
      expect(viaC).toMatchObject({ status: 403, body: { error: { code: "not_a_member" } } });
      const eve = await MlsClient.connect(a.url, "eve@a.example/1");
      const local = await eve.api.request("POST", `/v1/groups/${groupId}/messages`, { message: said!.message }).catch((e) => e);
      expect(local).toMatchObject({ status: 403, code: "not_a_member" });
      // A member re-posting another member's bytes gets the original answer and fans nothing out.
      const replay = await bob.api.request<{ seq: number }>("POST", `/v1/groups/${groupId}/messages`, { message: said!.message });
      expect(replay).toEqual({ seq: said!.seq });
      expect(enqueue).not.toHaveBeenCalled();
      expect(inbox).not.toHaveBeenCalled();
    } finally {
      enqueue.mockRestore();
      inbox.mockRestore();
    }
    expect((await a.ds.ctx.store.readLog(groupId, said!.seq, 10)).length).toBe(0);
    await roundTrip("after replays");
  });

  it("answers untrusted names like __proto__ and constructor with 4xx, never 500 (item 9)", async () => {
    const ask = (path: string, body?: unknown) =>
      alice.api.request(body === undefined ? "GET" : "POST", path, body).then(
        () => 200,
        (e: { status: number; code: string }) => `${e.status} ${e.code}`,
      );
    expect(await ask("/v1/peers/__proto__")).toBe("404 peer_unknown");
    expect(await ask("/v1/peers/constructor")).toBe("404 peer_unknown");
    expect(await ask("/v1/peers/hasOwnProperty")).toBe("404 peer_unknown");
    expect(await ask("/v1/users/x%40constructor/devices")).toBe("404 peer_unknown");
    expect(await ask("/v1/key-packages/claim", { user: "x@constructor", cipherSuites: [1] })).toBe("404 peer_unknown");
    for (const iss of ["constructor", "__proto__"]) {
      const spoof = await c.call(b, "POST", "/federation/v1/deliver", { groups: {}, messages: [] }, { iss });
      expect(spoof).toMatchObject({ status: 403, body: { error: { code: "forbidden", reason: "unknown_peer" } } });
    }
    const proto = await c.call(a, "GET", "/federation/v1/groups/__proto__/messages");
    expect(proto).toMatchObject({ status: 404, body: { error: { code: "unknown_group" } } });
    await roundTrip("after odd names");
  });

  it("makes the hub recheck a forwarded commit's Welcome instead of trusting the follower", async () => {
    // Carol (C) builds a real commit on G's group id, adding a KeyPackage of Dave (A) that anyone may claim.
    const cs = await getCiphersuiteImpl(getCiphersuiteFromName("MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"));
    const credential = { credentialType: "basic" as const, identity: new TextEncoder().encode(carol) };
    const own = await generateKeyPackage(credential, defaultCapabilities(), defaultLifetime, [], cs);
    const state = await createGroup(Buffer.from(groupId, "base64url"), own.publicPackage, own.privatePackage, [], cs);
    const dave = await MlsClient.connect(a.url, "dave@a.example/1");
    await dave.publishKeyPackages(1);
    const [bundle] = (await alice.api.claim("dave@a.example", [1])).bundles;
    const decoded = decodeMlsMessage(Buffer.from(bundle!.keyPackage, "base64url"), 0)![0];
    if (decoded.wireformat !== "mls_key_package") throw new Error("no KeyPackage");
    const made = await createCommit(
      { state, cipherSuite: cs },
      { extraProposals: [{ proposalType: "add", add: { keyPackage: decoded.keyPackage } }] },
    );
    const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64url");
    const commit = b64(encodeMlsMessage(made.commit));
    const welcome = b64(encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: made.welcome! }));
    const submit = (added: string[]) =>
      c.call(a, "POST", `/federation/v1/groups/${groupId}/submit`, {
        sender: carol,
        kind: "commit",
        bundle: { commit, welcome, added },
      });
    const codes = [];
    // Dave's KeyPackage routed to Bob; to nobody; an A client the Welcome is not for; an unknown provider.
    for (const added of [[bob.id], [], [dave.id, "eve@a.example/9"], [dave.id, "zed@z.example/1"]])
      codes.push((await submit(added)).body.error?.code);
    expect(codes).toEqual(["invalid_welcome", "invalid_welcome", "invalid_welcome", "peer_unknown"]);
    // A consistent bundle passes those checks, and then the hub's own ordering refuses a non-member.
    expect(await submit([dave.id])).toMatchObject({ status: 403, body: { error: { code: "not_a_member" } } });
    expect((await a.ds.ctx.store.getGroup(groupId))?.members).toEqual([alice.id, bob.id]);
    await roundTrip("after forged commits");
  });

  it("does not believe a claim answer or device list that names another user's clients", async () => {
    c.script = (req) =>
      req.path === "/federation/v1/key-packages/claim"
        ? {
            status: 200,
            body: {
              user: "carol@c.example",
              version: "mls10",
              cipherSuite: 1,
              bundles: [{ client: bob.id, keyPackage: junk, identityKey: junk, lastResort: false }],
              missing: [],
            },
          }
        : undefined;
    const forged = await alice.api.claim("carol@c.example", [1]).catch((e) => e);
    expect(forged).toMatchObject({ status: 502, code: "peer_error" });
    c.script = (req) =>
      req.path === "/federation/v1/key-packages/claim" ? { status: 200, body: { bundles: "nope" } } : undefined;
    expect(await alice.api.claim("carol@c.example", [1]).catch((e) => e)).toMatchObject({ status: 502, code: "peer_error" });
    c.script = (req) =>
      req.path.startsWith("/federation/v1/users/")
        ? { status: 200, body: { user: "carol@c.example", version: 1, devices: [{ client: bob.id, cipherSuites: [1] }] } }
        : undefined;
    const devices = await alice.api.request("GET", "/v1/users/carol%40c.example/devices").catch((e) => e);
    expect(devices).toMatchObject({ status: 502, code: "peer_error" });
    c.script = () => undefined;
  });

  it("leaves the honest conversation between Alice and Bob complete and in order", async () => {
    await roundTrip("the end");
    expect(receivedByBob).toEqual(sentByAlice);
    expect(await b.ds.ctx.store.getGroup(groupId)).toMatchObject({ hub: "a.example", members: [alice.id, bob.id] });
  });
});
