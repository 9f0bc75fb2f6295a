import { FedgateError, type FedgateApi } from "./api.js";
import { MlsClient, type MlsEvent } from "./mls-client.js";
import { systemClock } from "../clock.js";
import type { Discovery } from "../wire/federation.js";

/**
 * Cross-provider conformance checks, runnable against ANY two deployments (`mls-fedgate
 * conformance --a URL --b URL`). Every run uses fresh client ids, so it can be repeated against
 * long-lived providers. Needs dev-token endpoints, or tokens passed in.
 */
export interface ConformanceOptions {
  a: string;
  b: string;
  /** client id → bearer token; the first is used as alice (A); for B the first two as bob and carol. */
  tokensA?: Record<string, string>;
  tokensB?: Record<string, string>;
  timeoutMs?: number;
  /**
   * Put clients of another MLS implementation on side A (alice), side B (bob and carol) or both.
   * `connect` builds them (e.g. the core-crypto test adapter, which the CLI loads only when asked:
   * src/ never imports an implementation other than ts-mls). Every client then uses Wire-form
   * identities and ts-mls clients commit as PublicMessage, which core-crypto requires.
   */
  other?: { side: "a" | "b" | "both"; name: string; connect: ConnectClient };
  /** Which binding the pair is configured to speak to each other (docs/MIMI.md); default fedgate. */
  protocol?: "fedgate" | "mimi";
  /** MIMI listeners (https) of A and B, for the directory and mTLS checks; with the CA (PEM) that issued their certificates. */
  mimiA?: string;
  mimiB?: string;
  mimiCa?: string;
}

/** What the checks need of a client: MlsClient, or an adapter around another implementation. */
export interface ConformanceClient {
  readonly id: string;
  readonly user: string;
  readonly api: FedgateApi;
  publishKeyPackages(count: number, opts: { lastResort?: boolean }): Promise<{ accepted: unknown[]; rejected: unknown[] }>;
  createGroup(): Promise<string>;
  addUsers(groupId: string, users: string[]): Promise<unknown>;
  send(groupId: string, text: string): Promise<unknown>;
  update(groupId: string): Promise<{ epoch: number; attempts: number }>;
  removeClients(groupId: string, clients: string[]): Promise<{ epoch: number }>;
  catchUp(groupId: string): Promise<unknown>;
  epoch(groupId: string): number | Promise<number>;
  sync(opts: { waitMs?: number }): Promise<MlsEvent[]>;
  syncUntil(want: (events: MlsEvent[]) => boolean, timeoutMs?: number): Promise<MlsEvent[]>;
}

export type ConnectClient = (
  url: string,
  client: string,
  opts: { cipherSuite: number; token?: string },
) => Promise<ConformanceClient>;

export interface CheckResult {
  name: string;
  ok: boolean;
  ms: number;
  detail: string;
}

async function discover(url: string): Promise<Discovery> {
  const res = await fetch(url.replace(/\/$/, "") + "/.well-known/mls-federation");
  if (!res.ok) throw new Error(`discovery answered ${res.status}`);
  return (await res.json()) as Discovery;
}

const texts = (ev: MlsEvent[]) => ev.flatMap((e) => (e.kind === "message" ? [e.text] : []));

export async function runConformance(opts: ConformanceOptions): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const mimi = opts.protocol === "mimi";
  const timeoutMs = opts.timeoutMs ?? 15_000;
  let failedHard = false;
  const check = async (name: string, fn: () => Promise<string>): Promise<void> => {
    const started = systemClock.nowMs();
    if (failedHard) {
      results.push({ name, ok: false, ms: 0, detail: "skipped: an earlier check it depends on failed" });
      return;
    }
    try {
      const detail = await fn();
      results.push({ name, ok: true, ms: systemClock.nowMs() - started, detail });
    } catch (e) {
      results.push({ name, ok: false, ms: systemClock.nowMs() - started, detail: e instanceof Error ? e.message : String(e) });
    }
  };
  const essential = () => {
    if (results.length && !results[results.length - 1]!.ok) failedHard = true;
  };

  let da!: Discovery, db!: Discovery;
  await check("discovery documents are served and well-formed", async () => {
    [da, db] = await Promise.all([discover(opts.a), discover(opts.b)]);
    for (const d of [da, db]) {
      if (d.federationApi !== "1" || !d.protocolVersions.includes("mls10") || d.jwks.keys.length === 0)
        throw new Error(`${d.domain}: incomplete document`);
    }
    if (da.domain === db.domain) throw new Error("both URLs are the same provider");
    return `${da.domain} and ${db.domain}`;
  });
  essential();

  const run = Math.random().toString(36).slice(2, 8);
  const other = opts.other;
  // Another implementation (core-crypto) needs Wire-form identities from every member: client ids `<uuid>@<domain>/<hex>`.
  const name = (who: string, domain: string | undefined) =>
    other
      ? `${crypto.randomUUID()}@${domain}/${Math.floor(1 + Math.random() * 0xfffe).toString(16)}`
      : `${who}-${run}@${domain}/c1`;
  const idsA = opts.tokensA ? Object.keys(opts.tokensA) : [name("alice", da?.domain)];
  const idsB = opts.tokensB ? Object.keys(opts.tokensB) : [name("bob", db?.domain), name("carol", db?.domain)];
  const suite = da && db ? (da.cipherSuites.find((s) => db.cipherSuites.includes(s)) ?? 1) : 1;
  let alice!: ConformanceClient, bob!: ConformanceClient, carol!: ConformanceClient;
  await check(
    other
      ? `clients (${other.name} on ${other.side === "both" ? "A and B" : other.side.toUpperCase()}) authenticate and upload validated KeyPackages on their own DS`
      : "clients authenticate and upload validated KeyPackages on their own DS",
    async () => {
      if (other) {
        for (const d of [da, db]) {
          if (!d.identitySchemes?.includes("wire"))
            throw new Error(`${d.domain} does not accept wire identities (identity.schemes), which ${other.name} requires`);
        }
      }
      const connect = (side: "a" | "b", url: string, id: string, tokens?: Record<string, string>) => {
        const common = { cipherSuite: suite, ...(tokens?.[id] ? { token: tokens[id] } : {}) };
        if (other && (other.side === side || other.side === "both")) return other.connect(url, id, common);
        // A MIMI hub reads handshakes: commits travel as PublicMessages (draft -06 §Update), as core-crypto needs too.
        if (other) return MlsClient.connect(url, id, { ...common, identityScheme: "wire", commitFormat: "public" });
        return MlsClient.connect(url, id, mimi ? { ...common, commitFormat: "public" } : common);
      };
      alice = await connect("a", opts.a, idsA[0]!, opts.tokensA);
      bob = await connect("b", opts.b, idsB[0]!, opts.tokensB);
      carol = await connect("b", opts.b, idsB[1]!, opts.tokensB);
      for (const c of [alice, bob, carol]) {
        const up = await c.publishKeyPackages(4, { lastResort: true });
        if (up.rejected.length || up.accepted.length !== 5) throw new Error(`${c.id}: ${JSON.stringify(up.rejected)}`);
      }
      return `suite ${suite}`;
    },
  );
  essential();

  await check("a claim for a remote user is proxied by the client's DS (A → B and B → A)", async () => {
    const ab = await alice.api.claim(bob.user, [suite]);
    const ba = await bob.api.claim(alice.user, [suite]);
    if (ab.bundles[0]?.client !== bob.id || ba.bundles[0]?.client !== alice.id) throw new Error("wrong bundles");
    return `suite ${ab.cipherSuite}, identity keys ${ab.bundles[0].identityKey.slice(0, 8)}…`;
  });

  await check("no common cipher suite is a 409 naming both sides", async () => {
    const unsupported = [0xfafa];
    const err = await alice.api.claim(bob.user, unsupported).then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!(err instanceof FedgateError) || err.code !== "no_common_cipher_suite" || err.status !== 409)
      throw new Error(`got ${String(err)}`);
    return "no_common_cipher_suite";
  });

  await check("a remote user's device list is served through the client's DS", async () => {
    if (mimi) {
      const err = await alice.api.devices(carol.user).catch((e: unknown) => e);
      if (!(err instanceof FedgateError) || err.code !== "not_found") throw new Error(`got ${String(err)}`);
      return "MIMI has no device list: 404 not_found, as documented";
    }
    const list = await alice.api.devices(carol.user);
    if (!list.devices.some((d) => d.client === carol.id)) throw new Error(JSON.stringify(list));
    return `version ${list.version}`;
  });

  let groupId = "";
  await check("a group hubbed on A adds users of B, who join from Welcomes delivered by B", async () => {
    groupId = await alice.createGroup();
    await alice.addUsers(groupId, [bob.user, carol.user]);
    await Promise.all([bob, carol].map((c) => c.syncUntil((ev) => ev.some((e) => e.kind === "joined"), timeoutMs)));
    return `group ${groupId}`;
  });
  essential();

  await check("application messages cross providers both ways and decrypt", async () => {
    const t0 = systemClock.nowMs();
    await alice.send(groupId, "ping from A");
    await bob.syncUntil((ev) => texts(ev).includes("ping from A"), timeoutMs);
    const ab = systemClock.nowMs() - t0;
    await bob.send(groupId, "pong from B");
    await alice.syncUntil((ev) => texts(ev).includes("pong from B"), timeoutMs);
    await carol.syncUntil((ev) => texts(ev).includes("pong from B") || texts(ev).includes("ping from A"), timeoutMs);
    return `A→B ${ab} ms`;
  });

  await check("a follower's commit is ordered by the hub and reaches everyone", async () => {
    const { epoch } = await bob.update(groupId);
    await alice.syncUntil((ev) => ev.some((e) => e.kind === "commit" && e.epoch === epoch), timeoutMs);
    await carol.syncUntil((ev) => ev.some((e) => e.kind === "commit" && e.epoch === epoch), timeoutMs);
    return `epoch ${epoch}`;
  });

  await check("two commits for one epoch from A and B: exactly one accepted, the other stale_epoch and recovers", async () => {
    // Both build on the same epoch before either is sent; the loser's library catches up and retries.
    const [ra, rb] = await Promise.all([alice.update(groupId), bob.update(groupId)]);
    const firstTry = [ra, rb].filter((r) => r.attempts === 1).length;
    if (firstTry !== 1) throw new Error(`expected exactly one first-attempt winner, got ${firstTry}`);
    for (const c of [alice, bob, carol]) await c.catchUp(groupId);
    const epochs = await Promise.all([alice, bob, carol].map((c) => c.epoch(groupId)));
    if (new Set(epochs).size !== 1) throw new Error(`epochs diverged: ${epochs}`);
    return `one winner per epoch; all at epoch ${epochs[0]}`;
  });

  await check("a hub client removes a follower's client, who then receives nothing more", async () => {
    const { epoch } = await alice.removeClients(groupId, [carol.id]);
    await carol.syncUntil((ev) => ev.some((e) => e.kind === "removed" && e.groupId === groupId), timeoutMs);
    await bob.syncUntil((ev) => ev.some((e) => e.kind === "commit" && e.epoch === epoch), timeoutMs);
    await alice.send(groupId, "after carol left");
    await bob.syncUntil((ev) => texts(ev).includes("after carol left"), timeoutMs);
    const late = await carol.sync({ waitMs: 300 });
    if (late.some((e) => e.kind === "message" && e.groupId === groupId))
      throw new Error("a removed member still receives messages");
    return `epoch ${epoch}`;
  });

  await check("commit-log hashes are identical on hub and follower", async () => {
    if (mimi) return "not applicable: MIMI has no commit-log gossip (docs/MIMI.md)";
    const [la, lb] = await Promise.all([alice.api.commitLog(groupId), bob.api.commitLog(groupId)]);
    if (JSON.stringify(la.entries) !== JSON.stringify(lb.entries)) throw new Error("commit logs differ");
    return `${la.entries.length} entries`;
  });

  await check("a group hubbed on B works for a client of A (reverse direction)", async () => {
    const g2 = await carol.createGroup();
    await carol.addUsers(g2, [alice.user]);
    await alice.syncUntil((ev) => ev.some((e) => e.kind === "joined" && e.groupId === g2), timeoutMs);
    await alice.send(g2, "reverse hello");
    await carol.syncUntil((ev) => texts(ev).includes("reverse hello"), timeoutMs);
    return `group ${g2}`;
  });

  if (mimi) {
    await mimiChecks(opts, check);
    return results;
  }

  await check("unsigned federation requests are refused", async () => {
    const res = await fetch(opts.b.replace(/\/$/, "") + "/federation/v1/deliver", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ groups: {}, messages: [] }),
    });
    const body = (await res.json()) as { error?: { code?: string } };
    if (res.status !== 401 || body.error?.code !== "unauthenticated") throw new Error(`got ${res.status} ${body.error?.code}`);
    return "401 unauthenticated";
  });

  return results;
}

/** MIMI listener checks: directories, and a request without a client certificate refused. */
async function mimiChecks(opts: ConformanceOptions, check: (name: string, fn: () => Promise<string>) => Promise<void>) {
  if (!opts.mimiA || !opts.mimiB) {
    await check("MIMI listeners", async () => "not checked: pass --mimi-a and --mimi-b to check directories and mTLS");
    return;
  }
  const { Agent, request } = await import("undici");
  const agent = new Agent({ connect: { ...(opts.mimiCa ? { ca: opts.mimiCa } : {}), rejectUnauthorized: false } });
  try {
    await check("MIMI directories list the five -06 endpoints this DS serves", async () => {
      for (const url of [opts.mimiA!, opts.mimiB!]) {
        const res = await request(url.replace(/\/$/, "") + "/.well-known/mimi-protocol-directory", { dispatcher: agent });
        const doc = (await res.body.json()) as Record<string, string>;
        for (const e of ["keyMaterial", "update", "notify", "submitMessage", "groupInfo"])
          if (typeof doc[e] !== "string") throw new Error(`${url}: no ${e}`);
      }
      return "keyMaterial, update, notify, submitMessage, groupInfo";
    });
    await check("a MIMI request without a client certificate is refused", async () => {
      const res = await request(opts.mimiB!.replace(/\/$/, "") + "/mimi/v1/notify/x", {
        method: "POST",
        body: Buffer.from([0]),
        headers: { from: "mimi@conformance.invalid" },
        dispatcher: agent,
      }).catch((e: unknown) => e);
      if (res instanceof Error) return `refused at TLS: ${res.message}`;
      const status = (res as { statusCode: number }).statusCode;
      if (status !== 401) throw new Error(`got ${status}`);
      return "401 unauthenticated";
    });
  } finally {
    await agent.close();
  }
}

export function printTable(results: CheckResult[]): string {
  const width = Math.max(...results.map((r) => r.name.length));
  const lines = results.map(
    (r) => `${r.ok ? "PASS" : "FAIL"}  ${r.name.padEnd(width)}  ${String(r.ms).padStart(5)} ms  ${r.detail}`,
  );
  const passed = results.filter((r) => r.ok).length;
  return [...lines, "", `${passed} passed, ${results.length - passed} failed`].join("\n");
}
