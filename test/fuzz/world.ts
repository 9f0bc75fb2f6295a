/**
 * The world the endpoint fuzzer runs against: two federated providers (a.example is the target,
 * b.example its peer), real MLS clients that built real groups, a corpus of the real MLS bytes
 * they sent, and a fingerprint of both stores to prove that rejected input changed nothing.
 */
import { createHash, randomUUID } from "node:crypto";
import { createCommit, createProposal, encodeMlsMessage } from "ts-mls";
import { SignJWT } from "jose";
import { MlsClient } from "../../src/client/index.js";
import { fromB64u, toB64u } from "../../src/client/b64.js";
import type { SigningKey } from "../../src/federation/keys.js";
import { MemoryStore } from "../../src/store/memory.js";
import type { MemoryFeeds } from "../../src/store/memory-feeds.js";
import type { Store } from "../../src/store/port.js";
import { redisUrl, startFederation, stopAll, testKey, uniquePrefix, type Provider } from "../helpers/providers.js";

/** A request body a real client sent, with who sent it and the group it was for. */
export interface Recorded {
  client: string;
  groupId?: string;
  body: Record<string, unknown>;
}

export interface Corpus {
  /** Commit bundles as sent (commit, welcome, groupInfo, added, removed), per group and committer. */
  bundles: Recorded[];
  /** Application messages and proposals as sent, per group and sender. */
  sent: Recorded[];
  /** KeyPackages by the client whose credential they carry. */
  keyPackagesOf: Record<string, Uint8Array[]>;
  keyPackages: Uint8Array[];
  /** KeyPackages of alice's own identity that were never uploaded (valid for her upload). */
  freshKeyPackages: Uint8Array[];
  commits: Uint8Array[];
  /** A commit built for an epoch that another commit won (never accepted). */
  staleCommits: Uint8Array[];
  messages: Uint8Array[];
  proposals: Uint8Array[];
  welcomes: Uint8Array[];
  groupInfos: Uint8Array[];
  /** Every MLS structure above, for cross-kind confusion. */
  all: Uint8Array[];
}

export interface World {
  a: Provider;
  b: Provider;
  bKey: SigningKey;
  /** A key of a domain that is not a peer of a.example. */
  strangerKey: SigningKey;
  /** A key b.example does not publish (forged signatures). */
  forgerKey: SigningKey;
  tokens: Record<"alice" | "bob" | "mallory", string>;
  /** A valid token of b.example's dev issuer (wrong issuer for a.example). */
  foreignToken: string;
  devSecretA: Uint8Array;
  groups: { g1: string; g2: string; g3: string };
  clients: Record<string, string>;
  corpus: Corpus;
  close(): Promise<void>;
}

export const IDS = {
  alice: "alice@a.example/phone",
  bob: "bob@a.example/laptop",
  mallory: "mallory@a.example/evil",
  carol: "carol@b.example/tablet",
  dave: "dave@b.example/desk",
} as const;

/** Limits raised so 429s and long polls do not mask the handlers. */
export const FUZZ_OVERRIDES = {
  limits: {
    // Small pages keep answers small while the fuzz grows logs and inboxes.
    inboxPageSize: 20,
    groupsLogPageSize: 20,
    maxWaitMs: 50,
    leaseMaxTtlMs: 400,
    rateLimit: { clientRequestsPerSecond: 1_000_000, peerRequestsPerSecond: 1_000_000, claimsPerTargetPerHour: 1_000_000 },
  },
  federation: { outbox: { batchSize: 100, retryBaseMs: 20, retryMaxMs: 200, pollMs: 50 } },
};

function recordBodies(client: MlsClient, sink: Recorded[]): void {
  const api = client.api;
  const original = api.request.bind(api);
  api.request = (async (method: string, path: string, body?: unknown, auth?: boolean) => {
    const groupId = /^\/v1\/groups\/([^/?]+)\//.exec(path)?.[1];
    if (body !== undefined)
      sink.push({ client: client.id, ...(groupId ? { groupId } : {}), body: body as Record<string, unknown> });
    return original(method, path, body, auth);
  }) as typeof api.request;
}

/** Two providers on the embedded memory store (the whole store is digested) or each on its own prefix of the test Redis. */
export async function buildWorld(store: "memory" | "redis" = "memory"): Promise<World> {
  const bKey = await testKey();
  const [a, b] = (await startFederation(
    ["a.example", "b.example"],
    () =>
      store === "redis"
        ? { ...FUZZ_OVERRIDES, store: { kind: "redis", redisUrl: redisUrl(), prefix: uniquePrefix() } }
        : FUZZ_OVERRIDES,
    (d) => ({ ...(d === "b.example" ? { signingKey: bKey } : {}), ...(store === "memory" ? { store: new MemoryStore() } : {}) }),
  )) as [Provider, Provider];
  const recorded: Recorded[] = [];
  const [alice, bob, mallory] = await Promise.all([IDS.alice, IDS.bob, IDS.mallory].map((c) => MlsClient.connect(a.url, c)));
  const [carol, dave] = await Promise.all([IDS.carol, IDS.dave].map((c) => MlsClient.connect(b.url, c)));
  for (const c of [alice!, bob!, mallory!, carol!, dave!]) {
    recordBodies(c, recorded);
    await c.publishKeyPackages(4, { lastResort: true });
  }

  // g1: hub a.example, members alice, bob, carol (remote).
  const g1 = await alice!.createGroup();
  await alice!.addUsers(g1, ["bob@a.example", "carol@b.example"]);
  await Promise.all([bob!.sync({ waitMs: 2000 }), syncUntilIn(carol!, g1)]);
  for (let i = 0; i < 3; i++) await alice!.send(g1, `alice ${i}`);
  await bob!.send(g1, "bob here");
  await carol!.send(g1, "carol here");
  await bob!.update(g1);
  await Promise.all([alice!.sync(), syncUntilEpoch(carol!, g1, 2)]);
  await carol!.update(g1);
  await Promise.all([alice!.sync({ waitMs: 1000 }), bob!.sync({ waitMs: 1000 })]);
  // A proposal (PublicMessage) submitted once, so a resubmission is a duplicate.
  const proposal = await createProposal(alice!.state(g1), true, { proposalType: "remove", remove: { removed: 1 } }, alice!.cs);
  const proposalB64 = toB64u(encodeMlsMessage(proposal.message));
  await alice!.api.send(g1, proposalB64);
  // A commit that loses: built on the current epoch, then alice commits first.
  const stale = await createCommit({ state: bob!.state(g1), cipherSuite: bob!.cs });
  await alice!.sync();
  await alice!.update(g1);

  // g2: hub b.example, alice is a remote member (a.example holds a replica).
  const g2 = await carol!.createGroup();
  await carol!.addUsers(g2, ["alice@a.example", "dave@b.example"]);
  await Promise.all([syncUntilIn(alice!, g2), dave!.sync({ waitMs: 2000 })]);
  await carol!.send(g2, "carol in g2");
  await alice!.send(g2, "alice in g2");

  // g3: a send group of alice's with bob.
  const g3 = await alice!.createGroup({ mode: "send-group" });
  await alice!.addUsers(g3, ["bob@a.example"]);
  await alice!.send(g3, "announcement");
  await bob!.sync({ waitMs: 1000 });

  // Fresh KeyPackages of alice's identity that were never uploaded.
  const fresh = await MlsClient.connect(a.url, IDS.alice);
  const freshBodies: Recorded[] = [];
  fresh.api.request = (async (_m: string, _p: string, body?: unknown) => {
    freshBodies.push({ client: IDS.alice, body: body as Record<string, unknown> });
    return { accepted: [], rejected: [] };
  }) as typeof fresh.api.request;
  await fresh.publishKeyPackages(3, { lastResort: true });

  const corpus = corpusOf(
    recorded,
    freshBodies,
    { client: IDS.bob, groupId: g1, body: { commit: toB64u(encodeMlsMessage(stale.commit)) } },
    { client: IDS.alice, groupId: g1, body: { message: proposalB64 } },
  );

  const tokens = {
    alice: await tokenOf(alice!),
    bob: await tokenOf(bob!),
    mallory: await tokenOf(mallory!),
  };
  const foreignToken = await tokenOf(carol!);
  const world: World = {
    a,
    b,
    bKey,
    strangerKey: await testKey(),
    forgerKey: await testKey(),
    tokens,
    foreignToken,
    devSecretA: createHash("sha256").update("mls-fedgate-dev-token:a.example").digest(),
    groups: { g1, g2, g3 },
    clients: { ...IDS },
    corpus,
    close: () => stopAll([a, b]),
  };
  await quiesce(world);
  return world;
}

async function tokenOf(c: MlsClient): Promise<string> {
  // The api holds the token it logged in with; a fresh login returns an equivalent one.
  const { token } = await c.api.request<{ token: string }>("POST", "/v1/dev/token", { client: c.id }, false);
  return token;
}

async function syncUntilIn(c: MlsClient, groupId: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!c.groupIds().includes(groupId)) {
    if (Date.now() > deadline) throw new Error(`${c.id} did not join ${groupId}`);
    await c.sync({ waitMs: 300 });
  }
}

function strings(v: unknown): string[] {
  return typeof v === "string" ? [v] : [];
}

async function syncUntilEpoch(c: MlsClient, groupId: string, epoch: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!c.groupIds().includes(groupId) || c.epoch(groupId) < epoch) {
    if (Date.now() > deadline) throw new Error(`${c.id} did not reach epoch ${epoch} of ${groupId}`);
    await c.sync({ waitMs: 300 });
  }
}

function corpusOf(recorded: Recorded[], freshBodies: Recorded[], stale: Recorded, proposal: Recorded): Corpus {
  const bytes = (list: string[]) => list.map((s) => fromB64u(s));
  const keyPackagesOf: Record<string, Uint8Array[]> = {};
  const bundles: Recorded[] = [];
  const sent: Recorded[] = [proposal];
  const groupInfos: string[] = [];
  for (const r of recorded) {
    const { body } = r;
    if (Array.isArray(body.keyPackages)) {
      (keyPackagesOf[r.client] ??= []).push(...bytes([...(body.keyPackages as string[]), ...strings(body.lastResort)]));
    } else if (typeof body.commit === "string" && r.groupId) {
      bundles.push(r);
      groupInfos.push(...strings(body.groupInfo));
    } else if (typeof body.message === "string" && r.groupId) sent.push(r);
    else if (typeof body.groupInfo === "string") groupInfos.push(body.groupInfo);
  }
  const fresh = freshBodies.flatMap(({ body }) =>
    Array.isArray(body.keyPackages) ? [...(body.keyPackages as string[]), ...strings(body.lastResort)] : [],
  );
  const c: Omit<Corpus, "all" | "bundles" | "sent" | "keyPackagesOf"> = {
    keyPackages: Object.values(keyPackagesOf).flat(),
    freshKeyPackages: bytes(fresh),
    commits: bytes(bundles.map((b) => b.body.commit as string)),
    staleCommits: bytes([stale.body.commit as string]),
    messages: bytes(sent.filter((m) => m !== proposal).map((m) => m.body.message as string)),
    proposals: bytes([proposal.body.message as string]),
    welcomes: bytes(bundles.flatMap((b) => strings(b.body.welcome))),
    groupInfos: bytes(groupInfos),
  };
  for (const [k, v] of Object.entries(c)) if (v.length === 0) throw new Error(`fuzz corpus has no ${k}`);
  return { ...c, bundles: [...bundles, stale], sent, keyPackagesOf, all: Object.values(c).flat() };
}

/** Client JWTs of a.example's dev issuer, built by hand so each claim can be wrong. */
export async function devToken(
  secret: Uint8Array,
  claims: { sub?: string; exp?: number; iss?: string; aud?: string },
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({})
    .setProtectedHeader({ alg: "HS256" })
    .setIssuedAt(now)
    .setExpirationTime(claims.exp ?? now + 3600);
  jwt.setIssuer(claims.iss ?? "dev:a.example").setAudience(claims.aud ?? "a.example");
  if (claims.sub !== undefined) jwt.setSubject(claims.sub);
  jwt.setJti(randomUUID());
  return jwt.sign(secret);
}

/** Waits until both outboxes are drained, so asynchronous deliveries are not blamed on the next batch. */
export async function quiesce(world: World, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [ab, ba] = await Promise.all([
      world.a.ds.ctx.store.outboxStats("b.example"),
      world.b.ds.ctx.store.outboxStats("a.example"),
    ]);
    if (ab.depth === 0 && ba.depth === 0) return;
    if (Date.now() > deadline) throw new Error(`outboxes did not drain: a→b ${ab.depth}, b→a ${ba.depth}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * One line per stored item of everything a MemoryStore holds except the replay cache (which every
 * signed request adds to by design). Log payloads and GroupInfos enter through their hashes, so the
 * text stays small while the fuzz grows the logs, and two fingerprints can be diffed line by line
 * to name what a rejected request changed.
 */
export function fingerprint(store: Store): string {
  if (!(store instanceof MemoryStore)) throw new Error("fingerprint needs a MemoryStore");
  type Queues = Map<string, { counter: number; seen: Map<string, number>; entries: { cursor: number }[] }>;
  const m = store as unknown as {
    keydir: {
      keys: Map<string, { pool: { ref: string }[]; lastResort: Map<number, { ref: string }> }>;
      refs: Map<string, { client: string; expiresAt: number }>;
      devices: Map<string, { version: number; clients: Set<string> }>;
      revoked: Map<string, { atMs: number }>;
    };
    groups: Map<
      string,
      {
        record: unknown;
        log: Map<
          number,
          { entry: { seq: number; kind: string; sha256: string; message: string; recipients: string[] }; refs: number }
        >;
        floor: number;
        skipped?: Map<number, number>;
        answers: Map<string, unknown>;
        commitLog: { entry: unknown }[];
        groupInfo?: unknown;
        dispatched: number;
        replica: boolean;
      }
    >;
    memberships: Map<string, Set<string>>;
    queues: { inboxes: Queues; outboxes: Queues };
    feeds: MemoryFeeds;
  };
  // Every field of the store and of its parts is digested below or named here as no stored state:
  // configuration, the integrity marker (random per process), sweep thresholds, the clock, the
  // event emitter, the queues' callback into the group logs, and the replay cache `seen` (every
  // signed request adds to it by design). A new field fails here until the fingerprint covers it.
  covers(store, "MemoryStore", [
    ...["kind", "keydir", "groups", "memberships", "queues", "feeds"],
    ...["events", "integrity", "clock", "retentionMs", "deliveredGraceMs", "trimHubLogs"],
  ]);
  covers(m.keydir, "MemoryKeyDirectory", ["keys", "refs", "devices", "revoked", "clock", "sweepRefsAt"]);
  covers(m.queues, "MemoryQueues", ["inboxes", "outboxes", "seen", "clock", "retentionMs", "events", "sweepSeenAt", "reference"]);
  covers(m.feeds, "MemoryFeeds", ["spans", "marks"]);
  const lines: string[] = [];
  const add = (v: unknown) => lines.push(JSON.stringify(v));
  const { keys, refs, devices, revoked } = m.keydir;
  for (const [client, k] of keys) add(["kp", client, k.pool.map((p) => p.ref), [...k.lastResort].map(([s, lr]) => [s, lr.ref])]);
  for (const [ref, r] of refs) add(["ref", ref, r.client, r.expiresAt]);
  for (const [user, d] of devices) add(["dev", user, d.version, [...d.clients]]);
  for (const [client, r] of revoked) add(["revoked", client, r.atMs]);
  for (const [id, g] of m.groups) {
    add([
      "group",
      id,
      g.record,
      g.answers.size,
      g.commitLog.map((c) => c.entry),
      g.floor,
      [...(g.skipped ?? [])],
      g.groupInfo ? createHash("sha256").update(JSON.stringify(g.groupInfo)).digest("hex") : null,
      g.dispatched,
      g.replica,
    ]);
    for (const [seq, { entry: e, refs }] of g.log)
      add(["log", seq, e.seq, e.kind, e.sha256, e.message.length, e.recipients, refs]);
  }
  for (const [client, groups] of m.memberships) add(["member", client, [...groups]]);
  const feeds = m.feeds.snapshot();
  for (const [groupId, spans] of feeds.spans) add(["spans", groupId, spans]);
  for (const [client, marks] of feeds.marks) add(["marks", client, marks]);
  for (const [name, queues] of [["in", m.queues.inboxes] as const, ["out", m.queues.outboxes] as const]) {
    for (const [key, q] of queues) add([name, key, q.counter, q.seen.size, q.entries.map((e) => e.cursor)]);
  }
  return lines.join("\n");
}

/** Throws when `part` has a field not in `known` (state the fingerprint would miss). */
function covers(part: object, name: string, known: string[]): void {
  const unknown = Object.keys(part).filter((k) => !known.includes(k));
  if (unknown.length) throw new Error(`${name} has state the fuzz fingerprint does not cover: ${unknown.join(", ")}`);
}

/**
 * Through the Store port (works on any adapter): every fixture group on both stores (record, log
 * seqs and hashes, commit log, GroupInfo epoch), and for every fixture client and user its
 * KeyPackages, inbox and device list, and both outboxes.
 */
export async function portSnapshot(world: World, store: Store): Promise<string> {
  const groups = await Promise.all(
    Object.values(world.groups).map(async (id) => [
      await store.getGroup(id),
      (await store.readLog(id, 0, 100_000)).map((e) => `${e.seq}:${e.kind}:${e.sha256}:${e.recipients.join(",")}`),
      await store.commitLog(id, -1),
      (await store.getGroupInfo(id))?.epoch,
      await store.contiguousSeq(id),
    ]),
  );
  const clients = [...Object.values(IDS), "nobody@a.example/1", "alice@a.example/*", "bob@a.example/*", "mallory@a.example/*"];
  const perClient = await Promise.all(
    clients.map(async (c) => [
      c,
      await store.listKeyPackages(c),
      (await store.readInbox(c, 0, 100_000)).map((e) => e.cursor),
      await store.groupsOf(c),
    ]),
  );
  const users = [
    "alice@a.example",
    "bob@a.example",
    "mallory@a.example",
    "nobody@a.example",
    "carol@b.example",
    "dave@b.example",
    "x@c.example",
  ];
  const devices = await Promise.all(users.map((u) => store.listDevices(u)));
  const outboxes = await Promise.all(["a.example", "b.example"].map((p) => store.peekOutbox(p, 100_000)));
  return createHash("sha256")
    .update(JSON.stringify([groups, perClient, devices, outboxes]))
    .digest("hex");
}

export async function worldFingerprint(world: World): Promise<string> {
  const { a, b } = world;
  if (a.ds.ctx.store instanceof MemoryStore)
    return `${prefixLines("a", fingerprint(a.ds.ctx.store))}\n${prefixLines("b", fingerprint(b.ds.ctx.store))}`;
  return (await portSnapshot(world, a.ds.ctx.store)) + (await portSnapshot(world, b.ds.ctx.store));
}

const prefixLines = (store: string, text: string) =>
  text
    .split("\n")
    .map((l) => `${store} ${l}`)
    .join("\n");

/** The lines only one of two fingerprints has (at most `max` of each side), to name what changed. */
export function fingerprintDiff(before: string, after: string, max = 6): string {
  const b = new Set(before.split("\n"));
  const a = new Set(after.split("\n"));
  const gone = [...b].filter((l) => !a.has(l)).slice(0, max);
  const added = [...a].filter((l) => !b.has(l)).slice(0, max);
  return [...gone.map((l) => `  - ${l.slice(0, 300)}`), ...added.map((l) => `  + ${l.slice(0, 300)}`)].join("\n");
}
