import type { HttpResult, ValidateResult } from "../load.js";
import { cpuPer, fmt, ms, ratio, withCpu, type Bench } from "../lib/context.js";
import { devToken, keyPackagePool } from "../lib/mls.js";
import { median } from "../lib/stats.js";
import { stop } from "../lib/proc.js";

interface HttpRun {
  run: HttpResult;
  cpu: Record<string, number>;
  /** Items (KeyPackages validated, or claims answered) per second of DS CPU. */
  perDsCpuSecond: number;
  items: number;
}

export interface KeyPackagesResult {
  perUpload: number;
  validate: ValidateResult;
  upload: Record<"node" | "default", HttpRun>;
  claim: HttpRun;
  stored: { expected: number; found: number; afterClaims: number };
}

/**
 * Scenario 4: KeyPackage validation and claims. (a) The DS's validation function alone on one
 * thread, node:crypto provider vs ts-mls's default, alternating. (b) POST /v1/key-packages of
 * real KeyPackages (10 per request) to a DS with mlsCrypto=node and to one with =default;
 * per core = KeyPackages per second of the DS process's own CPU time (from /proc). (c) claims
 * of those KeyPackages, one per request, per core likewise.
 */
export async function keyPackages(b: Bench): Promise<KeyPackagesResult> {
  const perUpload = 10;
  const clientsN = 40;
  const uploadsNode = b.n(800, 80);
  const uploadsDefault = b.n(300, 40);
  const perClient = Math.ceil((uploadsNode + uploadsDefault) / clientsN + 1) * perUpload;
  const clients = Array.from({ length: clientsN }, (_, i) => `k${i}@a.example/d`);
  b.log(`s4: generating ${perClient * clientsN} real KeyPackages (${clientsN} clients)`);
  const kps = await Promise.all(clients.map((c) => keyPackagePool(c, perClient)));
  const flat = kps.flatMap((list, i) => list.map((keyPackage) => ({ client: clients[i]!, keyPackage })));

  b.log("s4: validation alone, both providers");
  const validate = await b.load<ValidateResult>({
    mode: "kp-validate",
    pool: b.pool("s4-validate", flat.slice(0, 2000) as never),
    providers: ["default", "node"],
    seconds: b.n(3, 1),
    rounds: b.n(3, 1),
  });

  const upload = {} as Record<"node" | "default", HttpRun>;
  const offsets = clients.map(() => 0);
  let expected = 0;
  const prefix = "s4";
  let claim: HttpRun | undefined;
  let afterClaims = NaN;
  let found = NaN;
  for (const provider of ["default", "node"] as const) {
    // Each provider's DS gets its own key prefix and its own share of the KeyPackages.
    const ds = await b.ds({ domain: "a.example", prefix: `${prefix}-${provider}`, env: { MLSFEDGATE_MLS_CRYPTO: provider } });
    const tokens = new Map(await Promise.all(clients.map(async (c) => [c, await devToken(ds.url, c)] as const)));
    const count = provider === "node" ? uploadsNode : uploadsDefault;
    const requests: { path: string; auth: string; body: string }[] = [];
    for (let i = 0; i < count; i++) {
      // The next `perUpload` unused KeyPackages of one client per request (clients in turn).
      const k = i % clientsN;
      const start = offsets[k]!;
      offsets[k] = start + perUpload;
      requests.push({
        path: "/v1/key-packages",
        auth: tokens.get(clients[k]!)!,
        body: JSON.stringify({ keyPackages: kps[k]!.slice(start, start + perUpload) }),
      });
    }
    const warm = 20;
    await b.http({
      url: ds.url,
      method: "POST",
      pool: b.pool(`s4-up-${provider}-warm`, requests.slice(0, warm)),
      connections: 4,
      amount: warm,
      maxSeconds: 30,
    });
    b.log(`s4: upload, mlsCrypto=${provider}`);
    const { result: run, cpu } = await withCpu({ DS: ds.child.pid, Redis: b.redis.pids }, () =>
      b.http({
        url: ds.url,
        method: "POST",
        pool: b.pool(`s4-up-${provider}`, requests.slice(warm)),
        connections: 16,
        amount: count - warm,
        maxSeconds: b.n(60, 20),
      }),
    );
    const ok = Object.entries(run.byStatus).reduce((a, [s, n]) => (s === "201" ? a + n : a), 0);
    upload[provider] = { run, cpu, perDsCpuSecond: (ok * perUpload) / cpu.DS!, items: ok * perUpload };

    if (provider === "node") {
      expected = count * perUpload;
      const store = await b.store(`${prefix}-${provider}`);
      found = (await Promise.all(clients.map((c) => store.listKeyPackages(c)))).reduce((a, l) => a + l.length, 0);
      // Claims: requesters r<i> claim the uploaders' users, one KeyPackage per request, never more than stocked.
      const requesters = Array.from({ length: 16 }, (_, i) => `r${i}@a.example/d`);
      const rTokens = await Promise.all(requesters.map((r) => devToken(ds.url, r)));
      const claims = Math.min(b.n(6000, 500), found - 100);
      const pool = Array.from({ length: claims }, (_, i) => ({
        path: "/v1/key-packages/claim",
        auth: rTokens[i % requesters.length]!,
        body: JSON.stringify({ user: clients[i % clientsN]!.replace("/d", ""), cipherSuites: [1] }),
      }));
      b.log("s4: claims");
      const { result: crun, cpu: ccpu } = await withCpu({ DS: ds.child.pid, Redis: b.redis.pids }, () =>
        b.http({
          url: ds.url,
          method: "POST",
          pool: b.pool("s4-claim", pool),
          connections: 16,
          amount: claims,
          maxSeconds: b.n(60, 20),
        }),
      );
      const cok = crun.byStatus["200"] ?? 0;
      claim = { run: crun, cpu: ccpu, perDsCpuSecond: cok / ccpu.DS!, items: cok };
      afterClaims = (await Promise.all(clients.map((c) => store.listKeyPackages(c)))).reduce((a, l) => a + l.length, 0);
      await store.close();
    }
    await stop(ds.child);
  }
  return { perUpload, validate, upload, claim: claim!, stored: { expected, found, afterClaims } };
}

export function keyPackagesReport(r: KeyPackagesResult): { md: string; targetMet: boolean } {
  const v = r.validate;
  const node = median(v.perCpuSecond.node ?? []);
  const def = median(v.perCpuSecond.default ?? []);
  const row = (name: string, x: HttpRun, unit: string) =>
    `| ${name} | ${fmt(x.items / x.run.seconds)} ${unit}/s | ${ms(x.run.latency.p50)} | ${ms(x.run.latency.p99)} | **${fmt(x.perDsCpuSecond)}** | ${cpuPer(x.cpu, x.items)} | ${Object.entries(
      x.run.byStatus,
    )
      .map(([s, n]) => `${s}×${fmt(n)}`)
      .join(" ")} |`;
  const up = r.upload.node;
  const met = node >= 2000;
  const md = `
**Validation alone** (src/mls/key-package.ts \`validateKeyPackage\`: strict decode, canonical re-encode, policy, both
signatures, KeyPackageRef), one thread, the same 2,000 real KeyPackages, providers alternating (${(v.perSecond.node ?? []).length} rounds each; the CPU-second figures divide by the thread's own CPU time,
so other processes on the machine do not lower them):

| provider | validations per CPU-second (one core) | wall-clock validations/s | median per validation (wall) | per CPU-second, each round |
| --- | ---: | ---: | ---: | --- |
| ts-mls default (WebCrypto) | ${fmt(def)} | ${fmt(median(v.perSecond.default ?? []))} | ${(v.medianMicros.default ?? NaN).toFixed(0)} µs | ${(v.perCpuSecond.default ?? []).map((x) => fmt(x)).join(", ")} |
| node:crypto (src/mls/node-crypto.ts) | **${fmt(node)}** | ${fmt(median(v.perSecond.node ?? []))} | ${(v.medianMicros.node ?? NaN).toFixed(0)} µs | ${(v.perCpuSecond.node ?? []).map((x) => fmt(x)).join(", ")} |

node:crypto / default: **${ratio(node, def)}**. The interoperability of the two is tested in test/unit/node-crypto.test.ts (the DS
validates KeyPackages made by either provider with either provider; a default-provider client and a node-provider client
share a group both ways); config \`mlsCrypto\` selects the DS's provider and defaults to \`node\`.

**Over HTTP** (16 connections; ${r.perUpload} KeyPackages per upload; "per DS core" = items / CPU seconds the DS process used, from /proc):

| | rate (wall clock) | p50 | p99 | per DS core-second | CPU per item | answers |
| --- | ---: | ---: | ---: | ---: | --- | --- |
${row("upload, mlsCrypto=node", r.upload.node, "KeyPackages")}
${row("upload, mlsCrypto=default", r.upload.default, "KeyPackages")}
${row("claim (one device per user)", r.claim, "claims")}

Check: the node DS holds ${fmt(r.stored.found)} KeyPackages after the upload (${fmt(r.stored.expected)} sent), ${fmt(r.stored.afterClaims)} after the claims.

**Target ≥ 2,000 validations/s per core: ${met ? "met" : "not met"} by the validation** (${fmt(node)} per CPU-second, median of the rounds; node:crypto ${ratio(node, def)} the default provider). **The whole upload request reaches ${fmt(up.perDsCpuSecond)} KeyPackages per DS CPU-second${up.perDsCpuSecond >= 2000 ? "" : ", below 2,000"}**: HTTP and JSON, the store script, one ref key per KeyPackage and the answer come on top of the validation.
`;
  return { md, targetMet: met };
}
