import { createHash, randomBytes } from "node:crypto";
import { SignJWT } from "jose";
import {
  createApplicationMessage,
  createCommit,
  createGroup,
  createGroupInfoWithExternalPubAndRatchetTree,
  decodeMlsMessage,
  defaultCapabilities,
  encodeMlsMessage,
  generateKeyPackage,
  type ClientState,
  type Extension,
  type KeyPackage,
  type MLSMessage,
} from "ts-mls";
import { makeKeyPackageRef, signKeyPackage } from "ts-mls/keyPackage.js";
import { MlsClient, fromB64u, toB64u } from "../../src/client/index.js";
import { startProvider, stopAll, type Provider } from "../helpers/providers.js";

const BODY_BYTES = 64 * 1024;
const MESSAGE_BYTES = 16 * 1024;
const KP_CAP = 5;
const DAY = 24 * 3600;
const utf8 = new TextEncoder();

interface Answer {
  status: number;
  headers: Headers;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** One raw HTTP call; `raw` sends the text as is (invalid JSON, oversize bodies). */
async function http(
  p: Provider,
  method: string,
  path: string,
  o: { token?: string; json?: unknown; raw?: string; auth?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (o.json !== undefined || o.raw !== undefined) headers["content-type"] = "application/json";
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  if (o.auth) headers.authorization = o.auth;
  const res = await fetch(p.url + path, {
    method,
    headers,
    ...(o.raw !== undefined ? { body: o.raw } : o.json !== undefined ? { body: JSON.stringify(o.json) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

function expectError(a: Answer, status: number, code: string): void {
  expect({ status: a.status, body: a.body }).toEqual({
    status,
    body: { error: expect.objectContaining({ code, message: expect.any(String) }) },
  });
}

async function tokenOf(p: Provider, client: string): Promise<string> {
  const a = await http(p, "POST", "/v1/dev/token", { json: { client } });
  expect(a.status).toBe(200);
  return a.body.token as string;
}

const mls = (m: MLSMessage): string => toB64u(encodeMlsMessage(m));
const kpWire = (kp: KeyPackage): string => mls({ version: "mls10", wireformat: "mls_key_package", keyPackage: kp });

async function keyPackage(c: MlsClient, o: { identity?: string; lifetime?: [number, number]; extensions?: Extension[] } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const [from, to] = o.lifetime ?? [-60, 30 * DAY];
  const identity = utf8.encode(o.identity ?? c.id);
  const lifetime = { notBefore: BigInt(now + from), notAfter: BigInt(now + to) };
  const { publicPackage, privatePackage } = await generateKeyPackage(
    { credentialType: "basic", identity },
    defaultCapabilities(),
    lifetime,
    o.extensions ?? [],
    c.cs,
  );
  return {
    kp: publicPackage,
    priv: privatePackage,
    b64: kpWire(publicPackage),
    ref: toB64u(await makeKeyPackageRef(publicPackage, c.cs.hash)),
  };
}

function flipLast(b64: string): string {
  const bytes = fromB64u(b64);
  bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1;
  return toB64u(bytes);
}

describe("a provider refuses bad input with a specific error and leaves its store unchanged", () => {
  let a: Provider;
  let alice: MlsClient, bob: MlsClient, carol: MlsClient, mallory: MlsClient;
  let tok: Record<"alice" | "bob" | "mallory", string>;
  let groupId: string;

  beforeAll(async () => {
    // Snapshots read a lot; rate limits have their own providers below.
    const limits = {
      bodyBytes: BODY_BYTES,
      messageBytes: MESSAGE_BYTES,
      keyPackagesPerClient: KP_CAP,
      rateLimit: { clientRequestsPerSecond: 100_000 },
    };
    a = await startProvider("a.example", { cipherSuites: [1, 2], limits });
    [alice, bob, carol, mallory] = (await Promise.all(
      ["alice@a.example/phone", "bob@a.example/laptop", "carol@a.example/tablet", "mallory@a.example/x"].map((c) =>
        MlsClient.connect(a.url, c),
      ),
    )) as [MlsClient, MlsClient, MlsClient, MlsClient];
    tok = { alice: await tokenOf(a, alice.id), bob: await tokenOf(a, bob.id), mallory: await tokenOf(a, mallory.id) };
    await bob.publishKeyPackages(2);
    await carol.publishKeyPackages(2);
    groupId = await alice.createGroup();
    await alice.addUsers(groupId, ["bob@a.example"]);
    expect(await bob.sync()).toEqual([expect.objectContaining({ kind: "joined", groupId })]);
  });
  afterAll(() => stopAll([a]));

  /** Everything a bad request must not touch, read back through the API. */
  async function snapshot() {
    return {
      group: await alice.api.group(groupId),
      aliceLog: await alice.api.messages(groupId),
      bobLog: await bob.api.messages(groupId),
      groupInfo: await alice.api.groupInfo(groupId),
      commitLog: await alice.api.commitLog(groupId),
      keyPackages: await Promise.all([alice, bob, carol, mallory].map((c) => c.api.listKeyPackages())),
      inboxes: await Promise.all([alice, bob, carol, mallory].map((c) => c.api.inbox(0))),
      devices: await Promise.all(["alice", "bob", "carol", "mallory"].map((u) => alice.api.devices(`${u}@a.example`))),
    };
  }
  async function withoutEffect(fn: () => Promise<void>): Promise<void> {
    const before = await snapshot();
    await fn();
    expect(await snapshot()).toEqual(before);
  }
  const post = (path: string, token: string, json: unknown) => http(a, "POST", path, { token, json });
  const commitOf = async (state: ClientState, opts: Parameters<typeof createCommit>[1] = {}) =>
    createCommit({ state, cipherSuite: alice.cs }, { ratchetTreeExtension: true, ...opts });

  describe("KeyPackage uploads", () => {
    it("rejects each malformed, forged, expired, over-long or foreign KeyPackage by index and stores only the valid one", async () => {
      const erin = await MlsClient.connect(a.url, "erin@a.example/phone");
      const erinToken = await tokenOf(a, erin.id);
      const good = await keyPackage(erin);
      const [k2, k3, k4] = await Promise.all([keyPackage(erin), keyPackage(erin), keyPackage(erin)]);
      const { signature: _s, ...tbs } = k4.kp;
      const suite3 = await signKeyPackage(
        { ...tbs, cipherSuite: "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519" },
        k4.priv.signaturePrivateKey,
        erin.cs.signature,
      );
      const items: [string, string | null][] = [
        [good.b64, null],
        [toB64u(randomBytes(300)), "invalid_mls"],
        [toB64u(fromB64u(k2.b64).subarray(0, 200)), "invalid_mls"],
        [toB64u(new Uint8Array([...fromB64u(k3.b64), 0])), "invalid_mls"],
        [flipLast(k4.b64), "invalid_key_package"],
        [(await keyPackage(erin, { lifetime: [-10 * DAY, -1] })).b64, "invalid_key_package"],
        [(await keyPackage(erin, { lifetime: [-60, 365 * DAY] })).b64, "invalid_key_package"],
        [(await keyPackage(erin, { identity: "alice@a.example/phone" })).b64, "credential_mismatch"],
        [kpWire(suite3), "unsupported_cipher_suite"],
        [`${good.b64}=`, "invalid_mls"],
        [
          (await keyPackage(erin, { extensions: [{ extensionType: 0xf0f0, extensionData: new Uint8Array(9000) }] })).b64,
          "payload_too_large",
        ],
      ];
      const lastResortWithoutExtension = (await keyPackage(erin)).b64;
      const up = await post("/v1/key-packages", erinToken, {
        keyPackages: items.map(([kp]) => kp),
        lastResort: lastResortWithoutExtension,
      });
      expect(up.status).toBe(201);
      expect(up.body.accepted).toEqual([{ ref: good.ref, cipherSuite: 1, notAfter: expect.any(Number), lastResort: false }]);
      const expected = items.flatMap(([, code], index) => (code ? [{ index, code, message: expect.any(String) }] : []));
      expect(up.body.rejected).toEqual([
        ...expected,
        { index: items.length, code: "invalid_key_package", message: expect.any(String) },
      ]);
      expect((await erin.api.listKeyPackages()).keyPackages.map((k) => k.ref)).toEqual([good.ref]);
      // Only the valid one can be claimed; the rejected ones were never stored.
      expect((await alice.api.claim("erin@a.example", [1])).bundles.map((b) => b.keyPackage)).toEqual([good.b64]);
      await expect(alice.api.claim("erin@a.example", [1])).rejects.toMatchObject({ status: 404, code: "no_key_package" });
    });

    it("answers an upload of nothing but bad KeyPackages with 201, everything rejected and nothing stored", () =>
      withoutEffect(async () => {
        const up = await post("/v1/key-packages", tok.bob, {
          keyPackages: [toB64u(randomBytes(40)), (await keyPackage(bob, { identity: carol.id })).b64],
        });
        expect(up.status).toBe(201);
        expect(up.body).toEqual({
          accepted: [],
          rejected: [
            expect.objectContaining({ index: 0, code: "invalid_mls" }),
            expect.objectContaining({ index: 1, code: "credential_mismatch" }),
          ],
        });
      }));

    it("rejects KeyPackages beyond the per-client cap with key_package_limit and keeps the ones that fit", async () => {
      const dave = await MlsClient.connect(a.url, "dave@a.example/phone");
      expect((await dave.publishKeyPackages(KP_CAP - 1)).accepted).toHaveLength(KP_CAP - 1);
      const extra = await Promise.all([keyPackage(dave), keyPackage(dave), keyPackage(dave)]);
      const up = await dave.api.uploadKeyPackages(extra.map((k) => k.b64));
      expect(up.accepted.map((k) => k.ref)).toEqual([extra[0]!.ref]);
      expect(up.rejected).toEqual([1, 2].map((index) => ({ index, code: "key_package_limit", message: expect.any(String) })));
      const refs = (await dave.api.listKeyPackages()).keyPackages.map((k) => k.ref);
      expect(refs).toHaveLength(KP_CAP);
      expect(refs).not.toContain(extra[1]!.ref);
      expect(refs).not.toContain(extra[2]!.ref);
    });

    it("refuses JSON of the wrong shape with 400 bad_request", () =>
      withoutEffect(async () => {
        for (const json of [
          {},
          { keyPackages: "abc" },
          { keyPackages: [1] },
          { keyPackages: [] },
          { keyPackages: [], extra: true },
          ["x"],
        ]) {
          expectError(await post("/v1/key-packages", tok.bob, json), 400, "bad_request");
        }
        expectError(await post(`/v1/groups/${groupId}/messages`, tok.alice, { text: "hi" }), 400, "bad_request");
        expectError(await post(`/v1/groups/${groupId}/commits`, tok.alice, { commit: 42 }), 400, "bad_request");
        expectError(
          await post("/v1/key-packages/claim", tok.alice, { user: "bob@a.example", cipherSuites: "1" }),
          400,
          "bad_request",
        );
      }));

    it("refuses a body that is not valid JSON with 400 bad_request", () =>
      withoutEffect(async () => {
        for (const raw of ["{not json", '{"keyPackages": [', "", "null"]) {
          expectError(await http(a, "POST", "/v1/key-packages", { token: tok.bob, raw }), 400, "bad_request");
        }
      }));

    it("refuses a malformed percent-escape in the path and a corrupt gzip body with 400 bad_request", () =>
      withoutEffect(async () => {
        expectError(await http(a, "GET", "/v1/groups/%ZZ", { token: tok.alice }), 400, "bad_request");
        expectError(await http(a, "DELETE", "/v1/key-packages/%E0%A4%A", { token: tok.bob }), 400, "bad_request");
        const res = await fetch(`${a.url}/v1/key-packages`, {
          method: "POST",
          headers: { authorization: `Bearer ${tok.bob}`, "content-type": "application/json", "content-encoding": "gzip" },
          body: "this is not gzip",
        });
        expectError({ status: res.status, headers: res.headers, body: await res.json() }, 400, "bad_request");
      }));

    it("refuses a body larger than limits.bodyBytes with 413 payload_too_large", () =>
      withoutEffect(async () => {
        const raw = JSON.stringify({ keyPackages: ["A".repeat(BODY_BYTES)] });
        expectError(await http(a, "POST", "/v1/key-packages", { token: tok.bob, raw }), 413, "payload_too_large");
        const commit = JSON.stringify({ commit: "A".repeat(BODY_BYTES + 10) });
        expectError(
          await http(a, "POST", `/v1/groups/${groupId}/commits`, { token: tok.alice, raw: commit }),
          413,
          "payload_too_large",
        );
      }));
  });

  describe("authentication", () => {
    it("refuses a missing or malformed bearer token with 401 unauthenticated", () =>
      withoutEffect(async () => {
        for (const auth of [undefined, "Bearer", "Bearer not.a.jwt", `Basic ${tok.alice}`]) {
          expectError(await http(a, "GET", "/v1/key-packages", auth ? { auth } : {}), 401, "unauthenticated");
        }
        const [h, p, s] = tok.bob.split(".") as [string, string, string];
        const claims = JSON.parse(Buffer.from(p, "base64url").toString()) as Record<string, unknown>;
        const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: alice.id })).toString("base64url")}.${s}`;
        expectError(await http(a, "GET", `/v1/groups/${groupId}`, { token: forged }), 401, "unauthenticated");
      }));

    it("refuses a token of another provider's client, even one signed with this provider's key", async () => {
      const b = await startProvider("b.example");
      try {
        const foreign = await tokenOf(b, "eve@b.example/phone");
        expectError(await http(a, "GET", "/v1/key-packages", { token: foreign }), 401, "unauthenticated");
        const devSecret = createHash("sha256").update("mls-fedgate-dev-token:a.example").digest();
        const wrongDomain = await new SignJWT({})
          .setProtectedHeader({ alg: "HS256" })
          .setSubject("eve@b.example/phone")
          .setIssuer("dev:a.example")
          .setAudience("a.example")
          .setIssuedAt()
          .setExpirationTime("1h")
          .sign(devSecret);
        expectError(await http(a, "GET", "/v1/key-packages", { token: wrongDomain }), 401, "unauthenticated");
        expectError(await http(a, "POST", "/v1/dev/token", { json: { client: "eve@b.example/phone" } }), 403, "forbidden");
      } finally {
        await stopAll([b]);
      }
    });
  });

  describe("group submissions", () => {
    it("refuses an application message and a commit from a non-member with 403 not_a_member", async () => {
      // Mallory builds a group of her own under the same id, so her messages carry the right framing.
      const kp = await keyPackage(mallory);
      const fake = await createGroup(fromB64u(groupId), kp.kp, kp.priv, [], mallory.cs);
      const { privateMessage } = await createApplicationMessage(fake, utf8.encode("let me in"), mallory.cs);
      const commit = await commitOf(fake);
      const gi = await createGroupInfoWithExternalPubAndRatchetTree(commit.newState, [], mallory.cs);
      await withoutEffect(async () => {
        const message = mls({ version: "mls10", wireformat: "mls_private_message", privateMessage });
        expectError(await post(`/v1/groups/${groupId}/messages`, tok.mallory, { message }), 403, "not_a_member");
        const bundle = {
          commit: mls(commit.commit),
          groupInfo: mls({ version: "mls10", wireformat: "mls_group_info", groupInfo: gi }),
        };
        expectError(await post(`/v1/groups/${groupId}/commits`, tok.mallory, bundle), 403, "not_a_member");
        expectError(await http(a, "GET", `/v1/groups/${groupId}/messages`, { token: tok.mallory }), 403, "not_a_member");
      });
    });

    it("refuses a commit or message whose framing names another group with 400 bad_request", async () => {
      const other = await alice.createGroup();
      const commit = await commitOf(alice.state(other));
      const { privateMessage } = await createApplicationMessage(alice.state(other), utf8.encode("wrong room"), alice.cs);
      await withoutEffect(async () => {
        expectError(await post(`/v1/groups/${groupId}/commits`, tok.alice, { commit: mls(commit.commit) }), 400, "bad_request");
        const message = mls({ version: "mls10", wireformat: "mls_private_message", privateMessage });
        expectError(await post(`/v1/groups/${groupId}/messages`, tok.alice, { message }), 400, "bad_request");
      });
    });

    it("refuses random bytes, padded base64 and non-message MLS as a commit with 400 invalid_mls", () =>
      withoutEffect(async () => {
        expectError(
          await post(`/v1/groups/${groupId}/commits`, tok.alice, { commit: toB64u(randomBytes(500)) }),
          400,
          "invalid_mls",
        );
        expectError(
          await post(`/v1/groups/${groupId}/messages`, tok.alice, { message: toB64u(randomBytes(500)) }),
          400,
          "invalid_mls",
        );
        const real = mls((await commitOf(alice.state(groupId))).commit);
        expectError(await post(`/v1/groups/${groupId}/commits`, tok.alice, { commit: `${real}=` }), 400, "invalid_mls");
        expectError(
          await post(`/v1/groups/${groupId}/commits`, tok.alice, { commit: toB64u(new Uint8Array([...fromB64u(real), 7])) }),
          400,
          "invalid_mls",
        );
        expectError(
          await post(`/v1/groups/${groupId}/commits`, tok.alice, { commit: (await keyPackage(alice)).b64 }),
          400,
          "invalid_mls",
        );
      }));

    it("answers 404 unknown_group for a well-formed id of no group and 400 for a malformed id", () =>
      withoutEffect(async () => {
        const unknown = toB64u(randomBytes(16));
        const commit = mls((await commitOf(alice.state(groupId))).commit);
        expectError(await post(`/v1/groups/${unknown}/commits`, tok.alice, { commit }), 404, "unknown_group");
        expectError(await post(`/v1/groups/${unknown}/messages`, tok.alice, { message: commit }), 404, "unknown_group");
        expectError(await http(a, "GET", `/v1/groups/${unknown}`, { token: tok.alice }), 404, "unknown_group");
        expectError(await http(a, "GET", `/v1/groups/${unknown}/messages`, { token: tok.alice }), 404, "unknown_group");
        expectError(await http(a, "GET", "/v1/groups/not%2Bbase64%3D", { token: tok.alice }), 400, "bad_request");
      }));

    it("refuses a commit sent to /messages and an application message sent to /commits with 400 bad_request", async () => {
      const commit = mls((await commitOf(alice.state(groupId))).commit);
      const { privateMessage } = await createApplicationMessage(alice.state(groupId), utf8.encode("not a commit"), alice.cs);
      await withoutEffect(async () => {
        expectError(await post(`/v1/groups/${groupId}/messages`, tok.alice, { message: commit }), 400, "bad_request");
        const message = mls({ version: "mls10", wireformat: "mls_private_message", privateMessage });
        expectError(await post(`/v1/groups/${groupId}/commits`, tok.alice, { commit: message }), 400, "bad_request");
      });
    });

    it("refuses a message or commit larger than limits.messageBytes with 413 payload_too_large", async () => {
      const { privateMessage } = await createApplicationMessage(
        alice.state(groupId),
        new Uint8Array(MESSAGE_BYTES + 1),
        alice.cs,
      );
      const big = await commitOf(alice.state(groupId), { authenticatedData: new Uint8Array(MESSAGE_BYTES + 1) });
      await withoutEffect(async () => {
        const message = mls({ version: "mls10", wireformat: "mls_private_message", privateMessage });
        expect(message.length).toBeLessThan(BODY_BYTES);
        expectError(await post(`/v1/groups/${groupId}/messages`, tok.alice, { message }), 413, "payload_too_large");
        expectError(
          await post(`/v1/groups/${groupId}/commits`, tok.alice, { commit: mls(big.commit) }),
          413,
          "payload_too_large",
        );
      });
    });

    describe("a commit adding carol", () => {
      let add: Awaited<ReturnType<typeof commitOf>>;
      let welcome: string;
      let groupInfo: string;

      beforeAll(async () => {
        const [claim] = await alice.claimUsers(["carol@a.example"]);
        const m = decodeMlsMessage(fromB64u(claim!.bundles[0]!.keyPackage), 0)![0];
        if (m.wireformat !== "mls_key_package") throw new Error("claim returned no KeyPackage");
        add = await commitOf(alice.state(groupId), {
          extraProposals: [{ proposalType: "add", add: { keyPackage: m.keyPackage } }],
        });
        welcome = mls({ version: "mls10", wireformat: "mls_welcome", welcome: add.welcome! });
        groupInfo = mls({
          version: "mls10",
          wireformat: "mls_group_info",
          groupInfo: await createGroupInfoWithExternalPubAndRatchetTree(add.newState, [], alice.cs),
        });
      });

      it("refuses a Welcome whose KeyPackageRef belongs to no added client with 400 invalid_welcome", async () => {
        const stranger = await keyPackage(alice, { identity: "zed@a.example/x" });
        const strangerAdd = await commitOf(alice.state(groupId), {
          extraProposals: [{ proposalType: "add", add: { keyPackage: stranger.kp } }],
        });
        const strangerWelcome = mls({ version: "mls10", wireformat: "mls_welcome", welcome: strangerAdd.welcome! });
        await withoutEffect(async () => {
          const commit = mls(add.commit);
          const url = `/v1/groups/${groupId}/commits`;
          expectError(await post(url, tok.alice, { commit, welcome, groupInfo }), 400, "invalid_welcome");
          expectError(
            await post(url, tok.alice, { commit, welcome, groupInfo, added: ["dave@a.example/phone"] }),
            400,
            "invalid_welcome",
          );
          expectError(await post(url, tok.alice, { commit, groupInfo, added: [carol.id] }), 400, "invalid_welcome");
          const stray = { commit: mls(strangerAdd.commit), welcome: strangerWelcome, added: ["zed@a.example/x"] };
          expectError(await post(url, tok.alice, stray), 400, "invalid_welcome");
          expectError(await post(url, tok.alice, { commit, welcome: commit, groupInfo, added: [carol.id] }), 400, "invalid_mls");
        });
      });

      it("refuses the whole bundle with 400 invalid_group_info when its GroupInfo has the wrong epoch, signature or group", async () => {
        const stale = mls({
          version: "mls10",
          wireformat: "mls_group_info",
          groupInfo: await createGroupInfoWithExternalPubAndRatchetTree(alice.state(groupId), [], alice.cs),
        });
        const foreignGroup = await alice.createGroup();
        const foreign = (await alice.api.groupInfo(foreignGroup)).groupInfo;
        await withoutEffect(async () => {
          for (const bad of [stale, flipLast(groupInfo), foreign, welcome]) {
            const a2 = await post(`/v1/groups/${groupId}/commits`, tok.alice, {
              commit: mls(add.commit),
              welcome,
              groupInfo: bad,
              added: [carol.id],
            });
            expectError(a2, 400, "invalid_group_info");
          }
        });
        expect((await alice.api.group(groupId)).epoch).toBe(1);
      });

      it("accepts the same commit once the bundle is right, and the group works after all the refused input", async () => {
        const answer = await post(`/v1/groups/${groupId}/commits`, tok.alice, {
          commit: mls(add.commit),
          welcome,
          groupInfo,
          added: [carol.id],
        });
        expect(answer).toMatchObject({ status: 201, body: { epoch: 2 } });
        expect(await carol.sync()).toEqual([{ kind: "joined", groupId, sender: alice.id }]);
        expect(await bob.sync()).toEqual([expect.objectContaining({ kind: "commit", epoch: 2 })]);
        await bob.send(groupId, "all good");
        expect(await carol.sync()).toEqual([expect.objectContaining({ kind: "message", sender: bob.id, text: "all good" })]);
        expect((await alice.api.group(groupId)).members).toEqual([alice.id, bob.id, carol.id]);
      });
    });
  });
});

describe("rate limits", () => {
  it("answers requests beyond limits.rateLimit.clientRequestsPerSecond with 429 rate_limited and Retry-After", async () => {
    const r = await startProvider("r.example", { limits: { rateLimit: { clientRequestsPerSecond: 3 } } });
    try {
      const [t1, t2] = [await tokenOf(r, "alice@r.example/phone"), await tokenOf(r, "bob@r.example/phone")];
      const answers = await Promise.all(Array.from({ length: 8 }, () => http(r, "GET", "/v1/key-packages", { token: t1 })));
      expect(answers.filter((x) => x.status === 200).length).toBeLessThanOrEqual(3);
      const limited = answers.filter((x) => x.status === 429);
      expect(limited.length).toBeGreaterThanOrEqual(5);
      for (const x of limited) {
        expectError(x, 429, "rate_limited");
        expect(Number(x.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      }
      // The budget is per client, and it refills.
      expect((await http(r, "GET", "/v1/key-packages", { token: t2 })).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      expect((await http(r, "GET", "/v1/key-packages", { token: t1 })).status).toBe(200);
    } finally {
      await stopAll([r]);
    }
  });

  it("protects a user's KeyPackages from exhaustion with limits.rateLimit.claimsPerTargetPerHour", async () => {
    const c = await startProvider("c.example", { limits: { rateLimit: { claimsPerTargetPerHour: 2 } } });
    try {
      const [alice, dave, bob, carol] = await Promise.all(
        ["alice@c.example/phone", "dave@c.example/phone", "bob@c.example/laptop", "carol@c.example/tablet"].map((id) =>
          MlsClient.connect(c.url, id),
        ),
      );
      await bob!.publishKeyPackages(5);
      await carol!.publishKeyPackages(1);
      await alice!.api.claim("bob@c.example", [1]);
      await alice!.api.claim("bob@c.example", [1]);
      const token = await tokenOf(c, alice!.id);
      const third = await http(c, "POST", "/v1/key-packages/claim", {
        token,
        json: { user: "bob@c.example", cipherSuites: [1] },
      });
      expectError(third, 429, "rate_limited");
      expect(Number(third.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect((await bob!.api.listKeyPackages()).keyPackages).toHaveLength(3);
      // Per requester and target: other pairs are unaffected.
      await expect(alice!.api.claim("carol@c.example", [1])).resolves.toMatchObject({
        bundles: [expect.objectContaining({ client: carol!.id })],
      });
      await expect(dave!.api.claim("bob@c.example", [1])).resolves.toMatchObject({
        bundles: [expect.objectContaining({ client: bob!.id })],
      });
      expect((await bob!.api.listKeyPackages()).keyPackages).toHaveLength(2);
    } finally {
      await stopAll([c]);
    }
  });
});
