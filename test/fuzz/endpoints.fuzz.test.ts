/**
 * Endpoint fuzzing (issue 5): ≥ 10,000 generated requests per run over every client and federation
 * endpoint of a.example (peer: b.example), sent in concurrent batches over one keep-alive Agent.
 * For every answer: no 5xx, no 429 (limits are raised so they cannot mask the handlers), every
 * error in the `{error: {code, message}}` shape with a known code and its documented status, and
 * requests with broken credentials never accepted. For every batch in which nothing was accepted,
 * both providers' whole stores are byte-for-byte unchanged (rejected input changes no state).
 *
 * MLSFEDGATE_FUZZ_RUNS (batches) and MLSFEDGATE_FUZZ_SEED reproduce or extend a run.
 */
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { SignJWT } from "jose";
import { Agent } from "undici";
import { viewOf } from "../../src/domain/groups.js";
import { sha256B64u } from "../../src/encoding.js";
import { errorStatus, isErrorCode } from "../../src/errors.js";
import { signRequest } from "../../src/federation/service-auth.js";
import type { SigningKey } from "../../src/federation/keys.js";
import { clientSpecs, federationSpecs, labelsOf, requestArb, type AuthPlan, type Plan } from "./requests.js";
import { buildWorld, devToken, fingerprintDiff, quiesce, worldFingerprint, type World } from "./world.js";

const BATCH = 8;
const RUNS = Number(process.env.MLSFEDGATE_FUZZ_RUNS ?? 1300);
/** A shorter pass on the Redis store (the Lua scripts are a code path of their own). */
const RUNS_REDIS = Number(process.env.MLSFEDGATE_FUZZ_RUNS_REDIS ?? 250);
const SEED = Number(process.env.MLSFEDGATE_FUZZ_SEED ?? Date.now() % 2 ** 31);
const DEADLINE_MS = 150_000;
/** Prints every distinct rejection (status, endpoint, message) with its count. */
const VERBOSE = process.env.MLSFEDGATE_FUZZ_VERBOSE === "1";
const CLIENT_ID_OF_A = /^[^\s/@]+@a\.example\/[^\s/]+$/;
const HUGE_BODY = Buffer.from(JSON.stringify({ keyPackages: ["A".repeat(1_500_000)] }));

interface Sent {
  plan: Plan;
  status: number;
  code?: string;
  body: string;
  problems: string[];
  /** Accepted by a call that may change state (so the batch is not checked for "no change"). */
  mayMutate: boolean;
}

function printable(s: string): string {
  return /^[\x20-\x7e]*$/.test(s) ? s : encodeURIComponent(s);
}

function describePlan(p: Plan): string {
  const body =
    p.body === undefined
      ? ""
      : p.body.kind === "json"
        ? ` ${p.body.contentType || "(no type)"} ${JSON.stringify(p.body.value)?.slice(0, 300)}`
        : p.body.kind === "raw"
          ? ` raw ${JSON.stringify(p.body.text.slice(0, 80))}`
          : p.body.kind === "encoded"
            ? ` ${p.body.encoding} ${p.body.bytes.length} bytes`
            : " huge";
  return `${p.method} ${p.path.slice(0, 200)} auth=${JSON.stringify(p.auth)}${body}`;
}

/** A federation token built by hand (expired or too long-lived). */
async function handToken(
  key: SigningKey,
  path: string,
  method: string,
  body: Uint8Array,
  iat: number,
  exp: number,
): Promise<string> {
  return new SignJWT({ htm: method, htu: path, bdh: sha256B64u(body) })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "mls-fedgate+jwt" })
    .setIssuer("b.example")
    .setAudience("a.example")
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .setJti(crypto.randomUUID())
    .sign(key.privateKey);
}

async function authHeader(
  world: World,
  auth: AuthPlan,
  method: string,
  path: string,
  body: Uint8Array,
): Promise<string | undefined> {
  switch (auth.kind) {
    case "client":
      return `Bearer ${world.tokens[auth.who]}`;
    case "none":
      return undefined;
    case "raw":
      return printable(auth.header);
    case "foreign":
      return `Bearer ${world.foreignToken}`;
    case "dev": {
      // A correctly signed token for a new a.example device would register it (by design): never generate one.
      const valid = !auth.wrongSecret && !auth.expired && auth.iss === undefined && auth.aud === undefined;
      const sub = valid && auth.sub !== undefined && CLIENT_ID_OF_A.test(auth.sub) ? "x@b.example/1" : auth.sub;
      const secret = auth.wrongSecret ? createHash("sha256").update("wrong").digest() : world.devSecretA;
      const now = Math.floor(Date.now() / 1000);
      return `Bearer ${await devToken(secret, { ...(sub !== undefined ? { sub } : {}), ...(auth.expired ? { exp: now - 10 } : {}), ...(auth.iss ? { iss: auth.iss } : {}), ...(auth.aud !== undefined ? { aud: auth.aud } : {}) })}`;
    }
    case "peer": {
      const facts = { method, path, body };
      const now = Math.floor(Date.now() / 1000);
      switch (auth.variant) {
        case "ok":
        case "replay":
          return `Bearer ${await signRequest(world.bKey, "b.example", "a.example", facts, 60)}`;
        case "tamper": {
          const [h, p, s] = (await signRequest(world.bKey, "b.example", "a.example", facts, 60)).split(".") as [
            string,
            string,
            string,
          ];
          const i = s.length >> 1;
          return `Bearer ${h}.${p}.${s.slice(0, i)}${s[i] === "A" ? "B" : "A"}${s.slice(i + 1)}`;
        }
        case "wrongPath":
          return `Bearer ${await signRequest(world.bKey, "b.example", "a.example", { ...facts, path: path + "x" }, 60)}`;
        case "wrongBody":
          return `Bearer ${await signRequest(world.bKey, "b.example", "a.example", { ...facts, body: Buffer.concat([Buffer.from(body), Buffer.from(" ")]) }, 60)}`;
        case "wrongMethod":
          return `Bearer ${await signRequest(world.bKey, "b.example", "a.example", { ...facts, method: method === "GET" ? "POST" : "GET" }, 60)}`;
        case "stranger":
          return `Bearer ${await signRequest(world.strangerKey, "c.example", "a.example", facts, 60)}`;
        case "forged":
          return `Bearer ${await signRequest({ ...world.forgerKey, kid: world.bKey.kid }, "b.example", "a.example", facts, 60)}`;
        case "expired":
          return `Bearer ${await handToken(world.bKey, path, method, body, now - 120, now - 60)}`;
        case "longLived":
          return `Bearer ${await handToken(world.bKey, path, method, body, now, now + 3600)}`;
      }
    }
  }
}

function bodyBytes(plan: Plan): { bytes?: Buffer; headers: Record<string, string> } {
  const b = plan.body;
  if (!b) return { headers: {} };
  switch (b.kind) {
    case "json":
      return {
        bytes: Buffer.from(JSON.stringify(b.value) ?? "null"),
        headers: b.contentType ? { "content-type": b.contentType } : {},
      };
    case "raw":
      return { bytes: Buffer.from(b.text), headers: { "content-type": b.contentType } };
    case "encoded":
      // Half garbage, half a real compressed JSON (so the charset/encoding paths see both).
      return {
        bytes:
          b.bytes.length % 2 ? Buffer.from(b.bytes) : b.encoding === "gzip" ? gzipSync(Buffer.from("{}")) : Buffer.from(b.bytes),
        headers: { "content-type": "application/json", "content-encoding": b.encoding },
      };
    case "huge":
      return { bytes: HUGE_BODY, headers: { "content-type": "application/json" } };
  }
}

const AUTH_FREE = new Set(["POST /v1/dev/token", "misc", "wrong method"]);

function authBroken(auth: AuthPlan): boolean {
  if (auth.kind === "client") return false;
  if (auth.kind === "peer") return auth.variant !== "ok" && auth.variant !== "replay";
  return true;
}

function checkAnswer(
  plan: Plan,
  status: number,
  contentType: string,
  text: string,
): { problems: string[]; code?: string; json?: unknown } {
  const problems: string[] = [];
  let json: unknown;
  if (contentType.includes("json")) {
    try {
      json = JSON.parse(text);
    } catch {
      problems.push(`answer is not JSON: ${text.slice(0, 100)}`);
    }
  }
  if (status >= 500) problems.push(`5xx: ${status} ${text.slice(0, 300)}`);
  if (status === 429) problems.push("429: a rate limit masked the handler");
  let code: string | undefined;
  if (status >= 400) {
    const err = (json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    if (!err || typeof err !== "object") problems.push(`error without {error:{…}} body: ${status} ${text.slice(0, 200)}`);
    else {
      code = typeof err.code === "string" ? err.code : undefined;
      if (!isErrorCode(err.code)) problems.push(`unknown error code ${JSON.stringify(err.code)}`);
      else if (errorStatus[err.code] !== status)
        problems.push(`code ${err.code} with status ${status}, documented ${errorStatus[err.code]}`);
      if (typeof err.message !== "string" || err.message.length === 0) problems.push("error without a message");
    }
  } else if (
    status >= 200 &&
    status < 300 &&
    status !== 204 &&
    !plan.path.startsWith("/metrics") &&
    !plan.path.startsWith("/v1/inbox/stream")
  ) {
    if (json === undefined) problems.push(`success answer that is not JSON (${contentType})`);
  }
  if (!AUTH_FREE.has(plan.label) && authBroken(plan.auth) && status < 400)
    problems.push(`accepted with broken credentials: ${status}`);
  return { problems, ...(code ? { code } : {}), json };
}

const SEQUENCED = new Set([
  "POST /v1/groups/:id/commits",
  "POST /v1/groups/:id/messages",
  "POST /federation/v1/groups/:id/submit",
]);

/** Next seq of each fixture group at its hub, before a batch: an answer below it is a retry's original answer. */
let nextSeqs = new Map<string, number>();

async function readNextSeqs(world: World): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const [groupId, store] of [
    [world.groups.g1, world.a.ds.ctx.store],
    [world.groups.g2, world.b.ds.ctx.store],
    [world.groups.g3, world.a.ds.ctx.store],
  ] as const) {
    const g = await store.getGroup(groupId);
    if (g) out.set(groupId, g.nextSeq);
  }
  return out;
}

function groupOfPath(path: string): string | undefined {
  const m = /\/groups\/([^/?]+)\//.exec(path);
  try {
    return m ? decodeURIComponent(m[1]!) : undefined;
  } catch {
    return undefined;
  }
}

function mayMutate(plan: Plan, status: number, json: unknown): boolean {
  if (status < 200 || status >= 300) return false;
  if (SEQUENCED.has(plan.label)) {
    // The same bytes again get the original answer and must change nothing (idempotent retries).
    const seq = (json as { seq?: unknown } | undefined)?.seq;
    const before = nextSeqs.get(groupOfPath(plan.path) ?? "");
    if (typeof seq === "number" && before !== undefined && seq < before) return false;
  }
  // A follower's catch-up pulls from the hub into its replica: a read that may write.
  if (plan.label === "GET /v1/groups/:id/messages") return true;
  // An inbox read first pulls the client's group feeds into its inbox (domain/feed-reader.ts).
  if (plan.path.startsWith("/v1/inbox")) return true;
  if (plan.method === "GET") return false;
  // An upload that accepted nothing is a rejection and must not change anything either.
  if (plan.label === "POST /v1/key-packages") return ((json as { accepted?: unknown[] } | undefined)?.accepted?.length ?? 1) > 0;
  return true;
}

export const timing = new Map<string, { n: number; ms: number; max: number }>();

async function sendOnce(agent: Agent, world: World, plan: Plan, presetAuth?: string): Promise<Sent & { auth?: string }> {
  const t0 = performance.now();
  const { bytes, headers } = bodyBytes(plan);
  const auth = presetAuth ?? (await authHeader(world, plan.auth, plan.method, plan.path, bytes ?? new Uint8Array()));
  if (auth !== undefined) headers.authorization = auth;
  if (plan.requestId !== undefined) headers["x-request-id"] = printable(plan.requestId);
  const stream = plan.path.startsWith("/v1/inbox/stream");
  const abort = new AbortController();
  const res = await agent.request({
    origin: world.a.url,
    path: plan.path,
    method: plan.method as "GET",
    headers,
    ...(bytes ? { body: bytes } : {}),
    ...(stream ? { signal: abort.signal } : {}),
  });
  const contentType = String(res.headers["content-type"] ?? "");
  let text = "";
  if (stream && res.statusCode === 200) {
    abort.abort();
    await res.body.text().catch(() => "");
  } else text = await res.body.text();
  const { problems, code, json } = checkAnswer(plan, res.statusCode, contentType, text);
  const t = timing.get(plan.label) ?? { n: 0, ms: 0, max: 0 };
  const took = performance.now() - t0;
  timing.set(plan.label, { n: t.n + 1, ms: t.ms + took, max: Math.max(t.max, took) });
  if (VERBOSE && took > 1000)
    process.stdout.write(`slow ${took.toFixed(0)} ms: ${res.statusCode} ${describePlan(plan).slice(0, 300)}\n`);
  return {
    plan,
    status: res.statusCode,
    ...(code ? { code } : {}),
    body: text.slice(0, 500),
    problems,
    mayMutate: mayMutate(plan, res.statusCode, json),
    ...(auth ? { auth } : {}),
  };
}

async function send(agent: Agent, world: World, plan: Plan): Promise<Sent[]> {
  const first = await sendOnce(agent, world, plan);
  if (!(plan.auth.kind === "peer" && plan.auth.variant === "replay")) return [first];
  const second = await sendOnce(agent, world, plan, first.auth);
  if (second.status < 400) second.problems.push(`a replayed federation token was accepted: ${second.status}`);
  else if (second.code !== "replayed_request" && second.code !== first.code)
    second.problems.push(`replay answered ${second.code}, first answer ${first.code}`);
  return [first, second];
}

interface Outcome {
  sent: number;
  rejected: number;
  verified: number;
  batches: number;
  coverage: Map<string, number>;
  summary: string;
}

/** Runs `runs` batches of BATCH concurrent requests; throws with every problem found. */
async function fuzz(world: World, agent: Agent, deliverSeed: DeliverSeed, runs: number, name: string): Promise<Outcome> {
  const specs = [...clientSpecs(world), ...federationSpecs(world, deliverSeed)];
  const batches = fc.sample(fc.array(requestArb(specs), { minLength: BATCH, maxLength: BATCH }), { numRuns: runs, seed: SEED });
  const started = Date.now();
  const coverage = new Map<string, number>(labelsOf(specs).map((l) => [l, 0]));
  const statuses = new Map<number, number>();
  const codes = new Map<string, number>();
  const messages = new Map<string, number>();
  const count = <K>(m: Map<K, number>, k: K) => m.set(k, (m.get(k) ?? 0) + 1);
  const failures: string[] = [];
  let sent = 0;
  let quiesceMs = 0;
  let verified = 0;
  let rebaselined = 0;
  let rejected = 0;

  /** Replays a batch one request at a time to name the request that changed state. */
  const pinpoint = async (batch: Plan[]): Promise<string> => {
    for (const plan of batch) {
      await quiesce(world);
      nextSeqs = await readNextSeqs(world);
      const before = await worldFingerprint(world);
      const [r] = await send(agent, world, plan);
      if (r && !r.mayMutate && (await worldFingerprint(world)) !== before)
        return `\n  replayed alone, this one changes state: ${r.status} ${describePlan(plan)}`;
    }
    return "\n  (no single request of the batch changes state when replayed alone)";
  };

  let baseline = await worldFingerprint(world);
  for (const batch of batches) {
    if (Date.now() - started > DEADLINE_MS) break;
    nextSeqs = await readNextSeqs(world);
    const results = (await Promise.all(batch.map((p) => send(agent, world, p)))).flat();
    for (const r of results) {
      sent += 1;
      count(coverage, r.plan.label);
      count(statuses, r.status);
      if (r.status >= 400) rejected += 1;
      if (r.code) count(codes, r.code);
      if (VERBOSE) {
        if (r.mayMutate) count(messages, `accepted write ${r.status} ${r.plan.label}`);
        if (r.plan.label === "POST /v1/key-packages" && r.status === 201) {
          for (const item of (
            JSON.parse(r.body.length < 500 ? r.body : "{}") as { rejected?: { code: string; message: string }[] }
          ).rejected ?? []) {
            count(messages, `201 upload item: ${item.code} ${item.message.replace(/[A-Za-z0-9_-]{20,}/g, "…").slice(0, 100)}`);
          }
        }
        if (r.status >= 400)
          count(messages, `${r.status} ${r.plan.label}: ${r.body.replace(/[A-Za-z0-9_-]{20,}/g, "…").slice(0, 140)}`);
      }
      for (const p of r.problems)
        failures.push(`${p}\n  request: ${describePlan(r.plan)}\n  answer: ${r.status} ${r.body.slice(0, 200)}`);
    }
    if (results.some((r) => r.mayMutate)) {
      const q0 = Date.now();
      await quiesce(world);
      quiesceMs += Date.now() - q0;
      baseline = await worldFingerprint(world);
      rebaselined += 1;
      continue;
    }
    const after = await worldFingerprint(world);
    verified += 1;
    if (after !== baseline) {
      failures.push(
        `state changed although every request of the batch was rejected:\n  ${results.map((r) => `${r.status} ${describePlan(r.plan)}`).join("\n  ")}\nchanged:\n${fingerprintDiff(baseline, after)}${await pinpoint(batch)}`,
      );
      baseline = await worldFingerprint(world);
    }
    if (failures.length > 50) break;
  }
  const seconds = (Date.now() - started) / 1000;
  const summary = `fuzz (${name}) seed ${SEED}: ${sent} requests in ${seconds.toFixed(1)} s (${rejected} rejected); batches checked for no state change: ${verified}, with accepted writes: ${rebaselined}; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((x, y) => x[0] - y[0])))}`;
  process.stdout.write(`${summary}\nerror codes ${JSON.stringify(Object.fromEntries([...codes].sort((x, y) => y[1] - x[1])))}\n`);
  if (VERBOSE) {
    process.stdout.write(`waiting for outboxes: ${quiesceMs} ms\n`);
    process.stdout.write(
      [...timing].map(([k, t]) => `time ${k}: ${t.n} × ${(t.ms / t.n).toFixed(1)} ms, max ${t.max.toFixed(0)} ms`).join("\n") +
        "\n",
    );
    process.stdout.write(
      [...messages]
        .sort((x, y) => y[1] - x[1])
        .map(([k, n]) => `${n}\t${k}`)
        .join("\n") + "\n",
    );
  }
  if (failures.length)
    throw new Error(
      `${summary}\n${failures.length} problems (reproduce with MLSFEDGATE_FUZZ_SEED=${SEED}):\n\n${failures.slice(0, 15).join("\n\n")}`,
    );
  return { sent, rejected, verified, batches: batches.length, coverage, summary };
}

type DeliverSeed = { view: Record<string, unknown>; entries: Record<string, unknown>[] };

/** The hub's real log of g2 as b.example would deliver it to a.example. */
async function deliverSeedOf(world: World): Promise<DeliverSeed> {
  const bStore = world.b.ds.ctx.store;
  const g2 = (await bStore.getGroup(world.groups.g2))!;
  return {
    view: viewOf(g2) as unknown as Record<string, unknown>,
    entries: (await bStore.readLog(world.groups.g2, 0, 100)).map((e) => ({
      groupId: world.groups.g2,
      seq: e.seq,
      kind: e.kind,
      epoch: e.epoch,
      sender: e.sender,
      message: e.message,
      sha256: e.sha256,
      recipients: e.recipients.filter((r) => r.includes("@a.example/")),
    })),
  };
}

describe.each([
  { store: "memory" as const, runs: RUNS, minimum: 10_000, minPerEndpoint: 40 },
  { store: "redis" as const, runs: RUNS_REDIS, minimum: RUNS_REDIS * BATCH, minPerEndpoint: 3 },
])("fuzzing every client and federation endpoint ($store store)", ({ store, runs, minimum, minPerEndpoint }) => {
  let world: World;
  let agent: Agent;
  let deliverSeed: DeliverSeed;

  beforeAll(async () => {
    world = await buildWorld(store);
    agent = new Agent({ connections: BATCH * 2, keepAliveTimeout: 30_000, pipelining: 1 });
    deliverSeed = await deliverSeedOf(world);
  }, 120_000);

  afterAll(async () => {
    await agent?.close();
    await world?.close();
  });

  it(`answers ≥ ${minimum} generated requests with no 5xx, well-formed errors, and no state change from rejected input`, async () => {
    const out = await fuzz(world, agent, deliverSeed, runs, store);
    expect(out.sent).toBeGreaterThanOrEqual(minimum);
    // Every endpoint was reached, and most batches were held to "nothing changed".
    for (const [label, n] of out.coverage) expect([label, n >= minPerEndpoint]).toEqual([label, true]);
    expect(out.verified).toBeGreaterThan(out.batches / 3);
    expect(out.rejected).toBeGreaterThan(out.sent / 2);
  }, 240_000);
});
