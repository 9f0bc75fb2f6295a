/**
 * fast-check generators of whole HTTP requests against every endpoint of a.example: real and
 * mutated MLS bytes, JSON of wrong shapes, huge and empty values, wrong types, broken transport
 * (bad JSON, charsets, compressed garbage), and for the Federation API correctly signed tokens
 * (so the fuzz reaches the handlers) next to tampered, replayed, foreign and missing ones.
 */
import fc from "fast-check";
import { toB64u } from "../../src/client/b64.js";
import { IDS, type Corpus, type Recorded, type World } from "./world.js";

export type AuthPlan =
  | { kind: "client"; who: "alice" | "bob" | "mallory" }
  | { kind: "none" }
  | { kind: "raw"; header: string }
  | { kind: "dev"; sub?: string; expired: boolean; wrongSecret: boolean; iss?: string; aud?: string }
  | { kind: "foreign" }
  | {
      kind: "peer";
      variant:
        "ok" | "replay" | "tamper" | "wrongPath" | "wrongBody" | "wrongMethod" | "stranger" | "forged" | "expired" | "longLived";
    };

export type BodyPlan =
  | { kind: "json"; value: unknown; contentType: string }
  | { kind: "raw"; text: string; contentType: string }
  | { kind: "encoded"; bytes: Uint8Array; encoding: string }
  | { kind: "huge" };

export interface Plan {
  /** Endpoint label for coverage counts, e.g. "POST /v1/groups/:id/commits". */
  label: string;
  method: string;
  path: string;
  body?: BodyPlan;
  auth: AuthPlan;
  requestId?: string;
}

/** Sizes around the configured limits (1 MiB body, 256 KiB message, 8 KiB KeyPackage). */
const BIG_FIELD = "A".repeat(400_000);
const KP_TOO_BIG = "A".repeat(12_000);
const HUGE_ARRAY_LEN = 10_001;

// ---------- MLS bytes ----------

type Op =
  | { op: "flip"; at: number; near: boolean; bit: number }
  | { op: "truncate"; at: number; near: boolean }
  | { op: "extend"; bytes: Uint8Array }
  | { op: "overwrite"; at: number; near: boolean; bytes: Uint8Array }
  | { op: "insert"; at: number; near: boolean; bytes: Uint8Array }
  | { op: "delete"; at: number; near: boolean; len: number }
  | { op: "set"; at: number; near: boolean; value: number }
  | { op: "splice"; at: number; near: boolean; other: number; from: number };

/** Positions are drawn near the start (where the framing lives) half of the time. */
function position(at: number, near: boolean, len: number): number {
  return near ? at % Math.min(len + 1, 96) : at % (len + 1);
}

export function mutate(bytes: Uint8Array, ops: Op[], pool: Uint8Array[]): Uint8Array {
  let b: Uint8Array = Uint8Array.from(bytes);
  for (const o of ops) {
    switch (o.op) {
      case "flip": {
        if (b.length === 0) break;
        const i = position(o.at, o.near, b.length - 1);
        b[i] = b[i]! ^ (1 << o.bit);
        break;
      }
      case "truncate":
        b = b.slice(0, position(o.at, o.near, b.length));
        break;
      case "extend":
        b = concat(b, o.bytes);
        break;
      case "overwrite": {
        const i = position(o.at, o.near, b.length);
        const out = Uint8Array.from(b);
        out.set(o.bytes.subarray(0, Math.max(0, b.length - i)), i);
        b = out;
        break;
      }
      case "insert": {
        const i = position(o.at, o.near, b.length);
        b = concat(concat(b.slice(0, i), o.bytes), b.slice(i));
        break;
      }
      case "delete": {
        const i = position(o.at, o.near, b.length);
        b = concat(b.slice(0, i), b.slice(i + o.len));
        break;
      }
      case "set": {
        if (b.length === 0) break;
        b[position(o.at, o.near, b.length - 1)] = o.value;
        break;
      }
      case "splice": {
        const other = pool[o.other % pool.length]!;
        const i = position(o.at, o.near, b.length);
        b = concat(b.slice(0, i), other.slice(o.from % (other.length + 1)));
        break;
      }
    }
  }
  return b;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

const at = fc.nat({ max: 1_000_000 });
const near = fc.boolean();
const smallBytes = fc.uint8Array({ minLength: 1, maxLength: 24 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant("flip" as const), at, near, bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("truncate" as const), at, near }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("extend" as const), bytes: smallBytes }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("overwrite" as const), at, near, bytes: smallBytes }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("insert" as const), at, near, bytes: smallBytes }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("delete" as const), at, near, len: fc.integer({ min: 1, max: 40 }) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("set" as const),
      at,
      near,
      value: fc.constantFrom(0, 1, 0x3f, 0x40, 0x7f, 0x80, 0xbf, 0xff),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("splice" as const), at, near, other: fc.nat(), from: fc.nat() }) },
);

const WEIRD_B64 = [
  "",
  "A",
  "AA==",
  "AAA=",
  "+/+/",
  "****",
  " AAAA",
  "AAAA\n",
  "\u0000",
  "é",
  "🙂",
  "AAAAA",
  "null",
  BIG_FIELD,
  KP_TOO_BIG,
];

/** base64url text of real, mutated, cross-kind or random MLS bytes, or text that is no base64url at all. */
type ByteKind =
  "keyPackages" | "freshKeyPackages" | "commits" | "staleCommits" | "messages" | "proposals" | "welcomes" | "groupInfos" | "all";

export function mlsText(corpus: Corpus, kinds: ByteKind[]): fc.Arbitrary<string> {
  const own = kinds.flatMap((k) => corpus[k]);
  const pick = (list: Uint8Array[]) => fc.nat({ max: list.length - 1 }).map((i) => list[i]!);
  const mutated = (list: Uint8Array[]) =>
    fc.tuple(pick(list), fc.array(opArb, { minLength: 1, maxLength: 4 })).map(([b, ops]) => mutate(b, ops, corpus.all));
  return fc.oneof(
    { weight: 2, arbitrary: pick(own).map(toB64u) },
    { weight: 8, arbitrary: mutated(own).map(toB64u) },
    { weight: 1, arbitrary: pick(corpus.all).map(toB64u) },
    { weight: 1, arbitrary: mutated(corpus.all).map(toB64u) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map(toB64u) },
    { weight: 1, arbitrary: pick(own).map((b) => Buffer.from(b).toString("base64")) },
    { weight: 1, arbitrary: fc.oneof(fc.constantFrom(...WEIRD_B64), fc.string({ maxLength: 40 })) },
  );
}

// ---------- JSON values ----------

const wrongValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    null,
    true,
    false,
    0,
    -1,
    1.5,
    2 ** 53,
    -(2 ** 63),
    1e308,
    "",
    [],
    {},
    [""],
    { "": "" },
    "__proto__",
    BIG_FIELD,
  ),
  fc.jsonValue({ maxDepth: 2 }),
  fc.string({ maxLength: 30 }),
  fc.array(fc.string({ maxLength: 10 }), { maxLength: 5 }),
);

/** A body derived from a well-shaped one: as is, a key dropped, a key added, a value of a wrong type, or any JSON. */
function shaped(base: fc.Arbitrary<Record<string, unknown>>): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 10, arbitrary: base },
    {
      weight: 2,
      arbitrary: fc.tuple(base, fc.nat()).map(([o, i]) => {
        const keys = Object.keys(o);
        if (keys.length === 0) return o;
        const { [keys[i % keys.length]!]: _drop, ...rest } = o;
        return rest;
      }),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(base, fc.constantFrom("extra", "__proto__", "constructor", ""), wrongValue)
        .map(([o, k, v]) => ({ ...o, [k]: v })),
    },
    {
      weight: 3,
      arbitrary: fc.tuple(base, fc.nat(), wrongValue).map(([o, i, v]) => {
        const keys = Object.keys(o);
        if (keys.length === 0) return o;
        return { ...o, [keys[i % keys.length]!]: v };
      }),
    },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  );
}

const users = [
  "alice@a.example",
  "bob@a.example",
  "mallory@a.example",
  "nobody@a.example",
  "carol@b.example",
  "dave@b.example",
  "x@c.example",
];
const userArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...users) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "",
      "alice",
      "@a.example",
      "alice@",
      "alice@A.EXAMPLE",
      "alice@a.example/phone",
      "a b@a.example",
      "x".repeat(600) + "@a.example",
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
);
const clients = [
  "alice@a.example/phone",
  "bob@a.example/laptop",
  "mallory@a.example/evil",
  "nobody@a.example/1",
  "carol@b.example/tablet",
  "dave@b.example/desk",
  "x@c.example/1",
];
const clientArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...clients) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "",
      "alice@a.example",
      "alice@a.example/",
      "/x",
      "alice@a.example/a/b",
      "alice@a.example/*",
      "a@a.example/" + "d".repeat(600),
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
);
const remoteClientArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom("carol@b.example/tablet", "dave@b.example/desk") },
  { weight: 1, arbitrary: clientArb },
);
const suitesArb = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom([1], [2, 1], [3], [1, 2, 3], [7], [0x0a0a, 1]) },
  { weight: 1, arbitrary: fc.array(fc.integer({ min: -5, max: 70_000 }), { maxLength: 70 }) },
);
const versionsArb = fc.option(
  fc.oneof(
    fc.constantFrom(["mls10"], [], ["mls11"], ["mls10", "mls10"]),
    fc.array(fc.string({ maxLength: 20 }), { maxLength: 10 }),
  ),
  {
    nil: undefined,
  },
);
const intArb = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: -2, max: 2000 }) },
  { weight: 1, arbitrary: fc.constantFrom(0, -1, 2 ** 31, 2 ** 53 - 1, 2 ** 53, 1e21, 0.5) },
);
const leaseTokenArb = fc.oneof(
  fc.constantFrom("", "x", "A".repeat(300)),
  fc.base64String({ maxLength: 24 }),
  fc.string({ maxLength: 20 }),
);

function opt<T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> {
  return fc.option(arb, { nil: undefined, freq: 2 });
}

/** Drops undefined fields so an "absent" option is really absent from the JSON. */
function clean(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

// ---------- paths and queries ----------

/** Path segments: the real group ids, unknown ones, and malformed ones (raw bad percent-encodings included). */
function groupSegment(world: World): fc.Arbitrary<string> {
  const { g1, g2, g3 } = world.groups;
  return fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(g1, g2, g3) },
    { weight: 2, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 40 }).map(toB64u) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(g1 + "=", g1 + "A", g1.slice(1), "A".repeat(400), "AA", "__proto__").map(encodeURIComponent),
    },
    { weight: 1, arbitrary: fc.constantFrom("%", "%E0%A4%A", "%zz", "%C0%AF", "%00", "..", ".", "%2F", "a%2Fb", "%FF%FE") },
    { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 20 }).map(encodeURIComponent) },
  );
}

function segment(values: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 8, arbitrary: values.filter((v) => v.length > 0).map(encodeURIComponent) },
    { weight: 1, arbitrary: fc.constantFrom("%", "%E0%A4%A", "%zz", "%00", "..", "%FF") },
  );
}

const numText = fc.oneof(
  { weight: 4, arbitrary: fc.nat({ max: 5000 }).map(String) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "-1",
      "1e3",
      "abc",
      "",
      "99999999999999999999",
      "999999999999999",
      "0x10",
      " 1",
      "1.5",
      "%",
      "%E0",
    ),
  },
);

function query(keys: string[]): fc.Arbitrary<string> {
  return fc
    .array(
      fc.tuple(
        fc.oneof(
          { weight: 6, arbitrary: fc.constantFrom(...keys) },
          { weight: 1, arbitrary: fc.constantFrom("x", "after[0]", "") },
        ),
        numText,
      ),
      {
        maxLength: 4,
      },
    )
    .map((pairs) =>
      pairs.length
        ? "?" + pairs.map(([k, v]) => `${encodeURIComponent(k)}=${/^%/.test(v) ? v : encodeURIComponent(v)}`).join("&")
        : "",
    );
}

// ---------- auth and transport ----------

const clientAuthArb: fc.Arbitrary<AuthPlan> = fc.oneof(
  {
    weight: 14,
    arbitrary: fc
      .constantFrom("alice", "bob", "mallory")
      .map((who) => ({ kind: "client" as const, who: who as "alice" | "bob" | "mallory" })),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "none" as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: "foreign" as const }) },
  {
    weight: 1,
    arbitrary: fc
      .oneof(
        fc.constantFrom(
          "Bearer",
          "Bearer ",
          "bearer x",
          "Basic YWxpY2U6eA==",
          "Bearer a.b.c",
          "Bearer eyJhbGciOiJub25lIn0.e30.",
          "Bearer " + "A".repeat(4000),
        ),
        fc.string({ maxLength: 60 }).map((s) => `Bearer ${s}`),
      )
      .map((header) => ({ kind: "raw" as const, header })),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({
        sub: fc.option(
          fc.oneof(
            fc.constantFrom("x@b.example/1", "alice@a.example", "alice", "", "alice@a.example/", "a@c.example/z"),
            fc.string({ maxLength: 12 }),
          ),
          { nil: undefined },
        ),
        expired: fc.boolean(),
        wrongSecret: fc.boolean(),
        iss: fc.option(fc.constantFrom("dev:b.example", "evil"), { nil: undefined }),
        aud: fc.option(fc.constantFrom("b.example", ""), { nil: undefined }),
      })
      .map((d) => ({ kind: "dev" as const, ...clean(d) }) as AuthPlan),
  },
);

const peerAuthArb: fc.Arbitrary<AuthPlan> = fc.oneof(
  { weight: 16, arbitrary: fc.constant({ kind: "peer" as const, variant: "ok" as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: "peer" as const, variant: "replay" as const }) },
  {
    weight: 3,
    arbitrary: fc
      .constantFrom("tamper", "wrongPath", "wrongBody", "wrongMethod", "stranger", "forged", "expired", "longLived")
      .map((variant) => ({
        kind: "peer" as const,
        variant: variant as Exclude<Extract<AuthPlan, { kind: "peer" }>["variant"], "ok" | "replay">,
      })),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "none" as const }) },
  {
    weight: 1,
    arbitrary: fc
      .oneof(
        fc.constantFrom("Bearer x.y.z", "Bearer ", "Basic eA=="),
        fc.string({ maxLength: 40 }).map((s) => `Bearer ${s}`),
      )
      .map((header) => ({ kind: "raw" as const, header })),
  },
);

const JSON_TYPES = ["application/json", "application/json; charset=utf-8"];
const OTHER_TYPES = [
  "text/plain",
  "application/json; charset=utf-16",
  "application/json; charset=latin-9",
  "application/x-www-form-urlencoded",
  "application/vnd.api+json",
  "",
];

function transport(value: fc.Arbitrary<unknown>): fc.Arbitrary<BodyPlan> {
  return fc.oneof(
    {
      weight: 24,
      arbitrary: fc
        .tuple(value, fc.constantFrom(...JSON_TYPES))
        .map(([v, contentType]) => ({ kind: "json" as const, value: v, contentType })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(value, fc.constantFrom(...OTHER_TYPES))
        .map(([v, contentType]) => ({ kind: "json" as const, value: v, contentType })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          fc.oneof(
            fc.constantFrom(
              "",
              "{",
              "[",
              "null",
              "1",
              '"x"',
              "{}{}",
              '{"a":1,}',
              "\uFEFF{}",
              "[".repeat(20_000) + "]".repeat(20_000),
              '{"__proto__":{"x":1}}',
              "tru",
            ),
            fc.string({ maxLength: 40 }),
          ),
          fc.constantFrom(...JSON_TYPES),
        )
        .map(([text, contentType]) => ({ kind: "raw" as const, text, contentType })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.uint8Array({ maxLength: 64 }), fc.constantFrom("gzip", "deflate", "br", "x-unknown", "identity"))
        .map(([bytes, encoding]) => ({ kind: "encoded" as const, bytes, encoding })),
    },
    { weight: 1, arbitrary: fc.constant({ kind: "huge" as const }) },
  );
}

const requestIdArb = fc.option(
  fc.oneof(fc.constantFrom("abc-123", "x".repeat(200), "a b", "é", ""), fc.string({ maxLength: 20 })),
  { nil: undefined, freq: 4 },
);

/** A coherent request: real bytes sent to their own group by (or for) their own sender, one part mutated. */
export interface Joint {
  path: string;
  body: unknown;
  auth?: AuthPlan;
}

interface Spec {
  label: string;
  method: string;
  path: fc.Arbitrary<string>;
  body?: fc.Arbitrary<unknown>;
  auth: fc.Arbitrary<AuthPlan>;
  weight: number;
  /** Drawn instead of the independent parts three times out of four. */
  joint?: fc.Arbitrary<Joint>;
}

function plan(spec: Spec): fc.Arbitrary<Plan> {
  return fc
    .record({
      path: spec.path,
      body: spec.body ? transport(spec.body) : fc.constant(undefined),
      auth: spec.auth,
      requestId: requestIdArb,
      joint: spec.joint ? fc.option(spec.joint, { nil: undefined, freq: 4 }).map((j) => j ?? undefined) : fc.constant(undefined),
      useJoint: fc.nat({ max: 3 }).map((n) => n > 0),
    })
    .map(({ path, body, auth, requestId, joint, useJoint }) => {
      const j = useJoint ? joint : undefined;
      const b: BodyPlan | undefined = j ? { kind: "json", value: j.body, contentType: "application/json" } : body;
      return {
        label: spec.label,
        method: spec.method,
        path: j ? j.path : path,
        auth: j?.auth ?? auth,
        ...(b ? { body: b } : {}),
        ...(requestId !== undefined ? { requestId } : {}),
      };
    });
}

const WHO: Record<string, "alice" | "bob" | "mallory"> = { [IDS.alice]: "alice", [IDS.bob]: "bob", [IDS.mallory]: "mallory" };

function pickFrom<T>(list: T[]): fc.Arbitrary<T> {
  return fc.nat({ max: list.length - 1 }).map((i) => list[i]!);
}

function mutatedText(corpus: Corpus, text: unknown, ops: Op[]): string {
  if (typeof text !== "string") return toB64u(corpus.all[ops.length % corpus.all.length]!);
  const bytes = Buffer.from(text, "base64url");
  return toB64u(mutate(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), ops, corpus.all));
}

const memberLists = fc.oneof(
  fc.constant([] as string[]),
  fc.array(fc.constantFrom(IDS.alice, IDS.bob, IDS.mallory, IDS.carol, IDS.dave, "nobody@a.example/1", "x@c.example/1"), {
    minLength: 1,
    maxLength: 3,
  }),
);

/** A recorded commit bundle with one of its parts mutated (or none: a retry). */
function bundleVariant(corpus: Corpus, r: Recorded): fc.Arbitrary<Record<string, unknown>> {
  return fc
    .record({
      field: fc.constantFrom(
        "commit",
        "commit",
        "commit",
        "welcome",
        "groupInfo",
        "groupInfo",
        "added",
        "removed",
        "leaseToken",
        "none",
      ),
      ops: fc.array(opArb, { minLength: 1, maxLength: 3 }),
      list: memberLists,
      token: leaseTokenArb,
      other: fc.nat(),
    })
    .map(({ field, ops, list, token, other }) => {
      const body = { ...r.body };
      switch (field) {
        case "commit":
          body.commit = mutatedText(corpus, body.commit, ops);
          break;
        case "welcome":
        case "groupInfo":
          if (typeof body[field] === "string" && other % 3 !== 0) body[field] = mutatedText(corpus, body[field], ops);
          else if (other % 3 === 0) delete body[field];
          else
            body[field] = toB64u(
              (field === "welcome" ? corpus.welcomes : corpus.groupInfos)[
                other % (field === "welcome" ? corpus.welcomes.length : corpus.groupInfos.length)
              ]!,
            );
          break;
        case "added":
        case "removed":
          body[field] = list;
          break;
        case "leaseToken":
          body.leaseToken = token;
          break;
      }
      return body;
    });
}

function localBundles(corpus: Corpus): Recorded[] {
  return corpus.bundles.filter((b) => WHO[b.client] !== undefined);
}

function jointCommit(corpus: Corpus, world: World): fc.Arbitrary<Joint> {
  return fc
    .tuple(pickFrom(localBundles(corpus)), fc.nat({ max: 9 }), fc.constantFrom("alice", "bob", "mallory"), groupSegment(world))
    .chain(([r, roll, who, g]) =>
      bundleVariant(corpus, r).map((body) => ({
        path: `/v1/groups/${roll < 8 ? r.groupId : g}/commits`,
        body,
        auth: { kind: "client" as const, who: roll % 3 === 0 ? (who as "alice" | "bob" | "mallory") : WHO[r.client]! },
      })),
    );
}

function jointMessage(corpus: Corpus, world: World): fc.Arbitrary<Joint> {
  const local = corpus.sent.filter((m) => WHO[m.client] !== undefined);
  return fc
    .tuple(
      pickFrom(local),
      fc.array(opArb, { minLength: 1, maxLength: 3 }),
      fc.nat({ max: 9 }),
      fc.constantFrom("alice", "bob", "mallory"),
      groupSegment(world),
    )
    .map(([r, ops, roll, who, g]) => ({
      path: `/v1/groups/${roll < 8 ? r.groupId : g}/messages`,
      body: { message: roll === 0 ? r.body.message : mutatedText(corpus, r.body.message, ops) },
      // Mostly a non-member: a member's mutated ciphertext is accepted (the DS cannot read it).
      auth: {
        kind: "client" as const,
        who: roll % 2 === 0 ? "mallory" : roll % 3 === 0 ? (who as "alice" | "bob" | "mallory") : WHO[r.client]!,
      },
    }));
}

function jointUpload(corpus: Corpus): fc.Arbitrary<Joint> {
  return fc
    .record({
      who: fc.constantFrom("alice", "bob", "mallory") as fc.Arbitrary<"alice" | "bob" | "mallory">,
      picks: fc.array(
        fc.tuple(
          fc.nat(),
          fc.oneof(
            { weight: 7, arbitrary: fc.array(opArb, { minLength: 1, maxLength: 3 }) },
            { weight: 1, arbitrary: fc.constant([] as Op[]) },
          ),
        ),
        {
          minLength: 1,
          maxLength: 3,
        },
      ),
      lastResort: fc.option(fc.tuple(fc.nat(), fc.array(opArb, { minLength: 0, maxLength: 2 })), { nil: undefined }),
      virtual: fc.option(fc.boolean(), { nil: undefined, freq: 5 }),
    })
    .map(({ who, picks, lastResort, virtual }) => {
      const id = IDS[who];
      const own = [...(corpus.keyPackagesOf[id] ?? []), ...(who === "alice" ? corpus.freshKeyPackages : [])];
      const make = ([i, ops]: [number, Op[]]) =>
        toB64u(ops.length ? mutate(own[i % own.length]!, ops, corpus.all) : own[i % own.length]!);
      return {
        path: "/v1/key-packages",
        body: clean({ keyPackages: picks.map(make), lastResort: lastResort ? make(lastResort) : undefined, virtual }),
        auth: { kind: "client" as const, who },
      };
    });
}

function jointSubmit(corpus: Corpus, world: World): fc.Arbitrary<Joint> {
  const remote = (list: Recorded[]) => list.filter((r) => r.client === IDS.carol && r.groupId === world.groups.g1);
  const bundles = remote(corpus.bundles);
  const sent = remote(corpus.sent);
  const commit = fc.tuple(pickFrom(bundles), fc.constantFrom(IDS.carol, IDS.dave)).chain(([r, sender]) =>
    bundleVariant(corpus, r).map((bundle) => {
      const { leaseToken, ...rest } = bundle;
      return { sender, kind: "commit", bundle: rest, ...(leaseToken !== undefined ? { leaseToken } : {}) };
    }),
  );
  const message = fc
    .tuple(pickFrom(sent), fc.array(opArb, { minLength: 1, maxLength: 3 }), fc.constantFrom(IDS.dave, IDS.dave, IDS.carol))
    .map(([r, ops, sender]) => ({ sender, kind: "message", message: mutatedText(corpus, r.body.message, ops) }));
  return fc.oneof(commit, message).map((body) => ({ path: `/federation/v1/groups/${world.groups.g1}/submit`, body }));
}

const c = <T>(v: T) => fc.constant(v);

/** Every endpoint of the client API (and the unauthenticated ones around it). */
export function clientSpecs(world: World): Spec[] {
  const { corpus } = world;
  const g = groupSegment(world);
  const kp = mlsText(corpus, ["keyPackages", "freshKeyPackages"]);
  const commit = mlsText(corpus, ["commits", "staleCommits"]);
  const message = mlsText(corpus, ["messages", "proposals"]);
  const welcome = mlsText(corpus, ["welcomes"]);
  const groupInfo = mlsText(corpus, ["groupInfos"]);
  const manyKps = Array.from({ length: 101 }, (_, i) => toB64u(corpus.keyPackages[i % corpus.keyPackages.length]!));
  const hugeList = Array.from({ length: HUGE_ARRAY_LEN }, () => "A");
  const ids = fc.array(clientArb, { maxLength: 4 });
  return [
    {
      label: "POST /v1/dev/token",
      method: "POST",
      path: c("/v1/dev/token"),
      body: shaped(fc.record({ client: clientArb })),
      auth: c({ kind: "none" }),
      weight: 2,
    },
    {
      label: "POST /v1/key-packages",
      method: "POST",
      path: c("/v1/key-packages"),
      body: shaped(
        fc
          .record({
            keyPackages: fc.oneof(
              { weight: 10, arbitrary: fc.array(kp, { maxLength: 4 }) },
              { weight: 1, arbitrary: fc.constantFrom(manyKps, hugeList) },
            ),
            lastResort: opt(kp),
            virtual: opt(fc.boolean()),
          })
          .map(clean),
      ),
      auth: clientAuthArb,
      weight: 8,
      joint: jointUpload(corpus),
    },
    { label: "GET /v1/key-packages", method: "GET", path: c("/v1/key-packages"), auth: clientAuthArb, weight: 1 },
    {
      label: "DELETE /v1/key-packages/:ref",
      method: "DELETE",
      path: segment(fc.oneof(fc.base64String({ minLength: 4, maxLength: 44 }), fc.string({ maxLength: 20 }))).map(
        (s) => `/v1/key-packages/${s}`,
      ),
      auth: clientAuthArb,
      weight: 1,
    },
    {
      label: "POST /v1/key-packages/claim",
      method: "POST",
      path: c("/v1/key-packages/claim"),
      body: shaped(fc.record({ user: userArb, cipherSuites: suitesArb, versions: versionsArb }).map(clean)),
      auth: clientAuthArb,
      weight: 3,
    },
    {
      label: "GET /v1/users/:user/devices",
      method: "GET",
      path: segment(userArb).map((u) => `/v1/users/${u}/devices`),
      auth: clientAuthArb,
      weight: 2,
    },
    {
      label: "DELETE /v1/devices/:client",
      method: "DELETE",
      path: segment(clientArb.filter((x) => x !== "alice@a.example/phone" && x !== "bob@a.example/laptop")).map(
        (x) => `/v1/devices/${x}`,
      ),
      auth: clientAuthArb,
      weight: 1,
    },
    {
      label: "GET /v1/peers/:domain",
      method: "GET",
      path: segment(fc.oneof(fc.constantFrom("b.example", "a.example", "c.example", "B.EXAMPLE"), fc.domain())).map(
        (d) => `/v1/peers/${d}`,
      ),
      auth: clientAuthArb,
      weight: 1,
    },
    {
      label: "POST /v1/groups",
      method: "POST",
      path: c("/v1/groups"),
      body: shaped(
        fc
          .record({
            groupId: fc.oneof(
              fc.constantFrom(world.groups.g1, world.groups.g2, "", "A".repeat(400), "a+b"),
              fc.uint8Array({ minLength: 0, maxLength: 300 }).map(toB64u),
              fc.string({ maxLength: 20 }),
            ),
            cipherSuite: fc.oneof(fc.constantFrom(1, 2, 3, 0, 7, 65535, -1, 1.5), fc.integer()),
            mode: opt(fc.oneof(fc.constantFrom("ordered", "send-group"), fc.string({ maxLength: 10 }))),
            groupInfo: opt(groupInfo),
            replyTo: opt(
              fc.oneof(fc.constantFrom(world.groups.g1, world.groups.g3, world.groups.g2), fc.string({ maxLength: 10 })),
            ),
          })
          .map(clean),
      ),
      auth: clientAuthArb,
      weight: 3,
    },
    { label: "GET /v1/groups/:id", method: "GET", path: g.map((x) => `/v1/groups/${x}`), auth: clientAuthArb, weight: 2 },
    {
      label: "POST /v1/groups/:id/commits",
      method: "POST",
      path: g.map((x) => `/v1/groups/${x}/commits`),
      body: shaped(
        fc
          .record({
            commit,
            welcome: opt(welcome),
            groupInfo: opt(groupInfo),
            added: opt(ids),
            removed: opt(ids),
            leaseToken: opt(leaseTokenArb),
          })
          .map(clean),
      ),
      auth: clientAuthArb,
      weight: 10,
      joint: jointCommit(corpus, world),
    },
    {
      label: "POST /v1/groups/:id/messages",
      method: "POST",
      path: g.map((x) => `/v1/groups/${x}/messages`),
      body: shaped(fc.record({ message })),
      auth: fc.oneof(
        { weight: 3, arbitrary: c({ kind: "client", who: "mallory" } as AuthPlan) },
        { weight: 3, arbitrary: clientAuthArb },
      ),
      weight: 10,
      joint: jointMessage(corpus, world),
    },
    {
      label: "GET /v1/groups/:id/messages",
      method: "GET",
      path: fc.tuple(g, query(["after", "limit"])).map(([x, q]) => `/v1/groups/${x}/messages${q}`),
      auth: clientAuthArb,
      weight: 2,
    },
    {
      label: "POST /v1/groups/:id/lease",
      method: "POST",
      path: g.map((x) => `/v1/groups/${x}/lease`),
      body: shaped(fc.record({ ttlMs: intArb })),
      auth: clientAuthArb,
      weight: 2,
    },
    {
      label: "DELETE /v1/groups/:id/lease/:token",
      method: "DELETE",
      path: fc.tuple(g, segment(leaseTokenArb)).map(([x, t]) => `/v1/groups/${x}/lease/${t}`),
      auth: clientAuthArb,
      weight: 1,
    },
    {
      label: "GET /v1/groups/:id/group-info",
      method: "GET",
      path: g.map((x) => `/v1/groups/${x}/group-info`),
      auth: clientAuthArb,
      weight: 1,
    },
    {
      label: "GET /v1/groups/:id/tree",
      method: "GET",
      path: fc.tuple(g, query(["leaf"])).map(([x, q]) => `/v1/groups/${x}/tree${q}`),
      auth: clientAuthArb,
      weight: 2,
    },
    {
      label: "GET /v1/groups/:id/commit-log",
      method: "GET",
      path: fc.tuple(g, query(["after"])).map(([x, q]) => `/v1/groups/${x}/commit-log${q}`),
      auth: clientAuthArb,
      weight: 1,
    },
    {
      label: "GET /v1/inbox",
      method: "GET",
      path: query(["after", "limit", "waitMs"]).map((q) => `/v1/inbox${q}`),
      auth: clientAuthArb,
      weight: 2,
    },
    {
      label: "POST /v1/inbox/ack",
      method: "POST",
      path: c("/v1/inbox/ack"),
      body: shaped(fc.record({ upTo: intArb })),
      auth: clientAuthArb,
      weight: 1,
    },
    {
      label: "GET /v1/inbox/stream",
      method: "GET",
      path: query(["after"]).map((q) => `/v1/inbox/stream${q}`),
      auth: clientAuthArb,
      weight: 1,
    },
    {
      label: "misc",
      method: "GET",
      path: fc.oneof(
        fc.constantFrom(
          "/healthz",
          "/readyz",
          "/metrics",
          "/.well-known/mls-federation",
          "/",
          "/v1",
          "/v1/",
          "/v2/groups",
          "/federation",
          "/v1/groups/",
          "/%",
          "/v1/%E0%A4%A",
        ),
        fc.webPath().filter((p) => p.startsWith("/")),
      ),
      auth: clientAuthArb,
      weight: 1,
    },
    {
      label: "wrong method",
      method: "PUT",
      path: fc.constantFrom("/v1/key-packages", "/v1/groups", "/v1/inbox", "/federation/v1/deliver", "/healthz"),
      body: fc.constant({}),
      auth: clientAuthArb,
      weight: 1,
    },
  ];
}

/** Every endpoint of the Federation API; signed as b.example unless the auth plan breaks it. */
export function federationSpecs(
  world: World,
  deliverSeed: { view: Record<string, unknown>; entries: Record<string, unknown>[] },
): Spec[] {
  const { corpus } = world;
  const g = groupSegment(world);
  const commit = mlsText(corpus, ["commits", "staleCommits"]);
  const message = mlsText(corpus, ["messages", "proposals"]);
  const welcome = mlsText(corpus, ["welcomes"]);
  const groupInfo = mlsText(corpus, ["groupInfos"]);
  const { g1, g2, g3 } = world.groups;
  const viewArb = fc
    .record({
      hub: fc.oneof(
        { weight: 6, arbitrary: c("b.example") },
        { weight: 1, arbitrary: fc.constantFrom("a.example", "c.example", "") },
      ),
      epoch: fc.oneof({ weight: 4, arbitrary: c(deliverSeed.view.epoch as number) }, { weight: 1, arbitrary: intArb }),
      members: fc.oneof(
        { weight: 4, arbitrary: c(deliverSeed.view.members as string[]) },
        { weight: 1, arbitrary: fc.array(clientArb, { maxLength: 3 }) },
      ),
      mode: fc.oneof(
        { weight: 6, arbitrary: c(deliverSeed.view.mode as string) },
        { weight: 1, arbitrary: fc.constantFrom("send-group", "x") },
      ),
    })
    .map((v) => ({ ...deliverSeed.view, ...v }));
  const entryArb = fc
    .record({
      base: fc.constantFrom(...deliverSeed.entries),
      seq: fc.oneof({ weight: 4, arbitrary: c(undefined) }, { weight: 1, arbitrary: intArb }),
      message: fc.oneof({ weight: 2, arbitrary: c(undefined) }, { weight: 1, arbitrary: message }),
      recipients: fc.oneof(
        { weight: 4, arbitrary: c(undefined) },
        { weight: 1, arbitrary: fc.array(clientArb, { maxLength: 3 }) },
      ),
      kind: fc.oneof(
        { weight: 6, arbitrary: c(undefined) },
        { weight: 1, arbitrary: fc.constantFrom("commit", "welcome", "device_update", "x") },
      ),
    })
    .map(({ base, ...over }) => ({ ...base, ...clean(over) }));
  const deliverBody = fc
    .record({
      groupId: fc.oneof({ weight: 6, arbitrary: c(g2) }, { weight: 1, arbitrary: fc.constantFrom(g1, g3, "", "zz") }),
      view: viewArb,
      entries: fc.array(shaped(entryArb), { minLength: 0, maxLength: 3 }),
      mismatch: fc.boolean(),
    })
    .map(({ groupId, view, entries, mismatch }) => ({
      groups: { [groupId]: { ...view, groupId: mismatch ? g1 : groupId } },
      messages: entries.map((e) => (typeof e === "object" && e !== null && !Array.isArray(e) ? { ...e, groupId } : e)),
    }));
  const bundle = fc
    .record({
      commit,
      welcome: opt(welcome),
      groupInfo: opt(groupInfo),
      added: opt(fc.array(clientArb, { maxLength: 3 })),
      removed: opt(fc.array(clientArb, { maxLength: 3 })),
    })
    .map(clean);
  const f = "/federation/v1";
  return [
    {
      label: "POST /federation/v1/key-packages/claim",
      method: "POST",
      path: c(`${f}/key-packages/claim`),
      body: shaped(
        fc
          .record({
            user: userArb,
            requester: remoteClientArb,
            cipherSuites: suitesArb,
            versions: fc.oneof(c(["mls10"]), versionsArb),
          })
          .map(clean),
      ),
      auth: peerAuthArb,
      weight: 3,
    },
    {
      label: "GET /federation/v1/users/:user/devices",
      method: "GET",
      path: segment(userArb).map((u) => `${f}/users/${u}/devices`),
      auth: peerAuthArb,
      weight: 2,
    },
    {
      label: "POST /federation/v1/groups/:id/submit",
      method: "POST",
      path: g.map((x) => `${f}/groups/${x}/submit`),
      body: shaped(
        fc.oneof(
          { weight: 4, arbitrary: fc.record({ sender: remoteClientArb, kind: c("message"), message }) },
          {
            weight: 4,
            arbitrary: fc
              .record({ sender: remoteClientArb, kind: c("commit"), bundle: shaped(bundle), leaseToken: opt(leaseTokenArb) })
              .map(clean),
          },
          {
            weight: 1,
            arbitrary: fc.record({ sender: remoteClientArb, kind: fc.constantFrom("application", "welcome", ""), message }),
          },
        ),
      ),
      auth: peerAuthArb,
      weight: 8,
      joint: jointSubmit(corpus, world),
    },
    {
      label: "POST /federation/v1/groups/:id/lease",
      method: "POST",
      path: g.map((x) => `${f}/groups/${x}/lease`),
      body: shaped(fc.record({ holder: remoteClientArb, ttlMs: intArb })),
      auth: peerAuthArb,
      weight: 2,
    },
    {
      label: "POST /federation/v1/groups/:id/lease/release",
      method: "POST",
      path: g.map((x) => `${f}/groups/${x}/lease/release`),
      body: shaped(fc.record({ holder: remoteClientArb, leaseToken: leaseTokenArb })),
      auth: peerAuthArb,
      weight: 1,
    },
    {
      label: "GET /federation/v1/groups/:id",
      method: "GET",
      path: fc
        .tuple(g, fc.option(segment(remoteClientArb), { nil: undefined }))
        .map(([x, m]) => `${f}/groups/${x}${m === undefined ? "" : `?member=${m}`}`),
      auth: peerAuthArb,
      weight: 1,
    },
    {
      label: "GET /federation/v1/groups/:id/group-info",
      method: "GET",
      path: fc.tuple(g, segment(remoteClientArb)).map(([x, m]) => `${f}/groups/${x}/group-info?member=${m}`),
      auth: peerAuthArb,
      weight: 1,
    },
    {
      label: "GET /federation/v1/groups/:id/messages",
      method: "GET",
      path: fc.tuple(g, query(["after", "limit"])).map(([x, q]) => `${f}/groups/${x}/messages${q}`),
      auth: peerAuthArb,
      weight: 2,
    },
    {
      label: "GET /federation/v1/groups/:id/commit-log",
      method: "GET",
      path: fc.tuple(g, query(["after"])).map(([x, q]) => `${f}/groups/${x}/commit-log${q}`),
      auth: peerAuthArb,
      weight: 1,
    },
    {
      label: "POST /federation/v1/deliver",
      method: "POST",
      path: c(`${f}/deliver`),
      body: shaped(deliverBody),
      auth: peerAuthArb,
      weight: 8,
    },
    {
      label: "POST /federation/v1/device-updates",
      method: "POST",
      path: c(`${f}/device-updates`),
      body: shaped(
        fc.record({
          user: fc.oneof(
            { weight: 4, arbitrary: fc.constantFrom("carol@b.example", "dave@b.example") },
            { weight: 1, arbitrary: userArb },
          ),
          version: intArb,
          devices: fc.array(fc.record({ client: remoteClientArb, cipherSuites: suitesArb }), { maxLength: 3 }),
        }),
      ),
      auth: peerAuthArb,
      weight: 2,
    },
    {
      label: "GET /federation/v1 (unknown)",
      method: "GET",
      path: fc.constantFrom(`${f}/`, `${f}/nope`, `${f}/groups`),
      auth: peerAuthArb,
      weight: 1,
    },
  ];
}

export function requestArb(specs: Spec[]): fc.Arbitrary<Plan> {
  return fc.oneof(...specs.map((s) => ({ weight: s.weight, arbitrary: plan(s) })));
}

export function labelsOf(specs: Spec[]): string[] {
  return specs.map((s) => s.label);
}
