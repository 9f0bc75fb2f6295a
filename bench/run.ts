/**
 * npm run bench [-- --quick] [-- --only s1,s3] [-- --store single|cluster|both | --cluster] [-- --s2-pass-ms 250] [-- --s2-sizes 2,1000,split]
 *   [-- --out docs/BENCHMARKS.md] [-- --no-write]
 *
 * One recorded run of every scenario of issues #5 and #10 on this machine: a private redis-server, DS
 * processes (`mls-fedgate serve`) on 127.0.0.1, the load generators in their own processes, and the
 * ceilings H (bare express) and R (EVALSHA of a trivial script) measured in the same run; then
 * scenarios 1–3 again on a private local Redis Cluster (3 masters + 3 replicas) with commands per
 * master and a CROSSSLOT check. A full run writes docs/BENCHMARKS.md and the raw figures next to it
 * as JSON; --no-write, --only, --store/--cluster, or --quick without --out print instead. --quick
 * uses the single node unless --store/--cluster says otherwise. `npm run bench:redis` is
 * `--quick --only s2 --store both` (Redis commands per accepted and per delivered message).
 */
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { Bench } from "./lib/context.js";
import { ROOT, stopAll, tempDir } from "./lib/proc.js";
import { clusterReport, type ClusterScenarioLoad } from "./lib/cluster-report.js";
import { snapshot, startTarget } from "./lib/targets.js";
import { commits, commitsReport } from "./scenarios/commits.js";
import { fanout, fanoutReport } from "./scenarios/fanout.js";
import { keyPackages, keyPackagesReport } from "./scenarios/keypackages.js";
import { memory, memoryReport } from "./scenarios/memory.js";
import { messages, messagesReport } from "./scenarios/messages.js";

interface Scenario {
  id: string;
  title: string;
  run: (b: Bench) => Promise<unknown>;
  report: (r: never) => { md: string; targetMet?: boolean };
}

const SCENARIOS: Scenario[] = [
  {
    id: "s1",
    title: "1. Application messages to a local group of 10",
    run: messages,
    report: messagesReport as Scenario["report"],
  },
  { id: "s2", title: "2. Fan-out cost by group size", run: fanout, report: fanoutReport as Scenario["report"] },
  { id: "s3", title: "3. Commit ordering under contention", run: commits, report: commitsReport as Scenario["report"] },
  {
    id: "s4",
    title: "4. KeyPackage upload (validation) and claims",
    run: keyPackages,
    report: keyPackagesReport as Scenario["report"],
  },
  {
    id: "s5",
    title: "5. Redis memory per client-group feed cursor and per stored group message",
    run: memory,
    report: memoryReport as Scenario["report"],
  },
];

/** What also runs on the local Redis Cluster (issue #10): messages, fan-out, commit ordering. */
const CLUSTER_SCENARIOS = ["s1", "s2", "s3"];

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function machine(): Record<string, string> {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? "unknown";
  const nproc = execFileSync("nproc").toString().trim();
  const redis = execFileSync("redis-server", ["--version"]).toString().trim();
  const kernel = (() => {
    try {
      return execFileSync("uname", ["-sr"]).toString().trim();
    } catch {
      return process.platform;
    }
  })();
  return {
    nproc,
    cpu: model,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    node: process.version,
    redis: /v=(\S+)/.exec(redis)?.[1] ?? redis,
    kernel,
    loadBefore: loadavg()
      .map((l) => l.toFixed(2))
      .join(", "),
  };
}

type StoreKind = "single" | "cluster";

/** Which deployments this run uses: a full run does single node then the cluster (scenarios 1–3). */
function stores(quick: boolean): { kinds: StoreKind[]; chosen: boolean } {
  const given = process.argv.includes("--cluster") ? "cluster" : arg("--store");
  if (given === undefined) return { kinds: quick ? ["single"] : ["single", "cluster"], chosen: false };
  if (given === "both") return { kinds: ["single", "cluster"], chosen: true };
  if (given !== "single" && given !== "cluster") throw new Error(`--store ${given}: use single, cluster or both`);
  return { kinds: [given], chosen: true };
}

interface Section {
  md: string;
  store: StoreKind;
}

async function main(): Promise<void> {
  const quick = process.argv.includes("--quick");
  const only = arg("--only")?.split(",");
  const { kinds, chosen } = stores(quick);
  // A --quick smoke run never replaces the recorded full run unless an --out file is named; nor does a partial run.
  const write =
    !process.argv.includes("--no-write") &&
    !process.argv.includes("--s2-sizes") &&
    (!quick || arg("--out") !== undefined) &&
    !chosen;
  const out = arg("--out") ?? join(ROOT, "docs", "BENCHMARKS.md");
  const started = new Date();
  const t0 = performance.now();
  const info = machine();
  const log = (line: string) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1)} s] ${line}\n`);
  log(`machine: ${JSON.stringify(info)}`);
  const tmp = tempDir("mlsfg-bench-");
  const results: Record<string, unknown> = {};
  const sections: Section[] = [];
  try {
    for (const kind of kinds) {
      const redis = await startTarget(kind);
      const bench = new Bench(quick, redis, tmp, log);
      const perScenario: ClusterScenarioLoad[] = [];
      try {
        for (const s of SCENARIOS) {
          if (only && !only.includes(s.id)) continue;
          if (kind === "cluster" && !CLUSTER_SCENARIOS.includes(s.id)) continue;
          const title = kind === "cluster" ? `${s.title} — on ${redis.label}` : s.title;
          log(`== ${title}`);
          const st = performance.now();
          const snap = await snapshot(redis);
          const r = await s.run(bench);
          if (kind === "cluster") perScenario.push({ title: s.title, masters: await snap.since() });
          results[kind === "cluster" ? `cluster:${s.id}` : s.id] = r;
          const { md } = s.report(r as never);
          sections.push({
            store: kind,
            md: `## ${title}\n\n_Scenario time: ${((performance.now() - st) / 1000).toFixed(0)} s._\n${md}`,
          });
          process.stderr.write(md + "\n");
        }
        if (kind === "cluster") {
          const c = await clusterReport(redis, perScenario);
          results.cluster = c.result;
          sections.push({ store: kind, md: c.md });
          process.stderr.write(c.md + "\n");
        }
      } finally {
        await redis.stop().catch(() => {});
      }
    }
  } finally {
    await stopAll();
    rmSync(tmp, { recursive: true, force: true });
  }
  const seconds = (performance.now() - t0) / 1000;
  info.loadAfter = loadavg()
    .map((l) => l.toFixed(2))
    .join(", ");
  const doc = render(info, started, seconds, quick, sections);
  if (write && !only) {
    writeFileSync(out, doc);
    writeFileSync(
      out.replace(/\.md$/, ".json"),
      JSON.stringify({ machine: info, started, seconds, quick, results }, null, 1) + "\n",
    );
    log(`wrote ${out}`);
  } else {
    process.stdout.write(doc);
  }
  log(`done in ${seconds.toFixed(0)} s`);
}

function render(info: Record<string, string>, started: Date, seconds: number, quick: boolean, sections: Section[]): string {
  const verdicts = sections.flatMap((sec) =>
    sec.md
      .split("\n")
      .filter((l) => /^\*\*(Target|S2S requests|double-accepts)/.test(l))
      .map((l) => (sec.store === "cluster" ? `(Redis Cluster) ${l}` : l)),
  );
  // The memory figures have no target; quote them in the summary too.
  const memory = sections.flatMap((sec) =>
    sec.md.split("\n").filter((l) => /^\| (client-group feed cursor|group-side feed span|stored group message)/.test(l)),
  );
  return `# Benchmarks

Every figure below comes from ONE run of \`npm run bench${quick ? " -- --quick" : ""}\` (started ${started.toISOString()},
${seconds.toFixed(0)} s); run the same command on a checkout of this commit to reproduce it (\`-- --quick\` is a short smoke
run with smaller counts that prints instead of writing this file; \`-- --only s1,s3\` runs some scenarios and prints too). The raw figures of
the run are in [BENCHMARKS.json](BENCHMARKS.json). \`npm run bench\` is not part of \`npm test\`.

## Summary

${verdicts.map((v) => `- ${v}`).join("\n")}
${memory
  .map(
    (m) =>
      `- Memory: ${m
        .split("|")[1]!
        .trim()
        .replace(/ \(.*$/, "")}: ${m.split("|")[3]!.trim()} bytes of Redis per entry at ${m.split("|")[2]!.trim()} entries.`,
  )
  .join("\n")}

## Machine

| | |
| --- | --- |
| CPU | ${info.cpu} (\`nproc\` = ${info.nproc}) |
| memory | ${info.memory} |
| kernel | ${info.kernel} |
| Node.js | ${info.node} |
| Redis | ${info.redis} (a private \`redis-server\` on 127.0.0.1, \`--save "" --appendonly no\`; for the cluster sections 6 of them with \`--cluster-enabled yes\`) |
| load average (1, 5, 15 min) | at start ${info.loadBefore}; at the end ${info.loadAfter ?? "n/a"} |

## How to read these figures

- Everything shares two vCPUs: the DS process(es), Redis, the load generator and — on this machine — whatever else runs at
  the time (the load averages above). Absolute rates therefore move between runs; the ceilings are measured in the same run
  for that reason, and every DS figure is also given as a ratio to them: **H** = a bare express route answering 202 to the
  same requests (same pool, headers, body sizes), **R** = node-redis EVALSHA of \`return 1\` at the same concurrency.
  Where it matters, the CPU time each process used per operation is given too (from /proc, independent of waiting).
- The DS runs as \`node dist/src/cli.js serve\` with the Redis store, dev tokens and rate limits on (raised so the load is
  never refused; each request still pays the limiter's Redis call). The load generator (bench/load.ts: autocannon, or
  undici/node-redis loops) is always its own process. Latencies are per request, measured by the generator.
- Counts and the set-up of each scenario are stated with it; bench/scenarios/*.ts is the exact procedure.

${sections.map((sec) => sec.md).join("\n")}

## Slow paths found by these benchmarks and fixed

Measured with this bench on the same machine during the work (\`--quick\` runs, so indicative), before → after:

1. **Fan-out was serialized per group with four Redis round trips per message** (group read, then per recipient an append
   script and a separate PUBLISH, then the dispatch mark), so every message paid all of them in commands, promises and
   socket writes, one group's messages strictly one after another. Now a group's dispatches that arrive while one runs are
   coalesced into one batch, and a batch's inbox appends go out as one pipeline (\`Store.appendInboxMany\`, with a store
   contract case; the append script PUBLISHes the wake-up itself). Scenario 1: 131–218 → 420–870 messages/s.
2. **node-redis arms a timer (AbortSignal.timeout, 5 s default) for every command**: for a fan-out that cost more node CPU
   than the appends. The appends of one fan-out now share one timeout (1,000 appends: 37 → 12 ms of node CPU).
3. **A submitter waited for the whole fan-out**: p50 submit latency of a 1,000-member group was 8–12× that of a 2-member
   group. Fan-outs to more than 100 local recipients now answer once the message is ordered (durable in the log, marked
   undispatched) and complete in the background in seq order — crash recovery redoes an interrupted one, and a group's
   backlog of 1,000 entries makes submitters wait again (backpressure). Smaller groups keep read-your-writes for their
   members. (src/domain/fanout.ts, test/unit/fanout.test.ts.)
4. **Bearer token verification was a fifth of the DS's CPU per message** (WebCrypto HMAC/EdDSA for the same token on every
   request): a verified token is now accepted again until its exp, at most 60 s (test/unit/client-auth-cache.test.ts).
5. **Every accepted commit re-added every member to the membership index** (one SADD per member: 64 per commit in
   scenario 3); now only commits that change the roster rewrite it.
6. **Group feeds (issue 10): the fan-out wrote to every member's inbox on every accept** (~10 Redis commands per
   recipient: 26 / 1,006 / ~10,000 per message for groups of 2 / 100 / 1,000). Now an accept writes the entry once and
   publishes one wake-up for the group; each member reads the log through its feed (spans kept with the group, a read mark
   with the client) and takes a page of references into its inbox in one step; an accept with nothing to fan out settles in
   the ordering script; hub log entries keep their recipient list beside the body, so an inbox read does not carry it.
   Scenario 2 (this run) has the figures.
7. **KeyPackage validation on ts-mls's WebCrypto provider**: src/mls/node-crypto.ts is a CryptoProvider on node:crypto
   (SHA-2, HMAC, HKDF, Ed25519/Ed448/ECDSA, AES-GCM/ChaCha20-Poly1305; HPKE stays ts-mls's), now the DS's default
   (\`mlsCrypto: "node"\`, \`"default"\` switches back); parsed private keys are cached per key array (client-side signing
   was dominated by PKCS#8 parsing).
8. **A follower wrote every replica entry into each local member's inbox** (a 1000-member group split 500/500 over two
   providers: 3,360.8 Redis commands per accepted message, DS b 21.0 ms of CPU per message, 999 readers short under
   load). Followers now read their replicas through feeds as hubs do, and replica entries keep their recipients beside the
   body: 40.8 commands per message, DS b 5.6 ms, every member of both providers read every message
   (\`--only s2 --store single\`, one run of scenario 2 alone).
9. **Every member's inbox read serialized every entry again** (JSON.stringify of the page, then its UTF-8 copy: about a
   third of the DS's CPU in scenario 2 at 1,000 members, from a CPU profile; each member also read each body from Redis).
   Now the Redis store keeps entry bodies in process (\`store.entryCacheBytes\`, emptied on reconnect) and GET /v1/inbox is
   built from one encoding per entry shared by every member, byte for byte the same answer (src/http/inbox-json.ts,
   test/unit/inbox-json.test.ts). DS CPU per accepted message at 1,000 members (\`--only s2 --s2-sizes 2,1000\`):
   24.4 → 11.3 ms.
10. **The ordering script still did per-member work for every message**: it built and stored the recipient list (999
   JSON-encoded names at 1,000 members) and tested every member's domain twice. A member-wide entry now stores the roster
   as it is (read back minus the sender) and the test runs once: 1.19 → 0.43 ms of Redis CPU per accepted message at
   1,000 members (INFO commandstats, EVALSHA usec_per_call over 2,000 submits; 40 µs at 2 members).
11. **node-redis's timer and AbortSignal per command** (item 2 fixed it for fan-outs only) cost about 5 % of the DS's CPU in
    scenario 1; one timer now watches every command in flight (src/store/command-deadlines.ts). Plain inbox reads no
    longer make an AbortController (aborting it on every close was about 4 % in scenario 2).
12. **A message read its group record first** (HGETALL, the roster included: 30 KB at 1,000 members). Messages to a group
    ordered here now go straight to the ordering script, which resolves the device to the member it acts as; the
    roster is read only for a fan-out or a retry. Scenario 1, DS CPU per request: 0.38–0.41 → 0.33–0.37 ms.
13. Tried and dropped: acknowledging with the next read (\`GET /v1/inbox?ack=\`, kept as an API option) made the reader
    loops of scenario 2 spend more CPU per message (6.6 → 9.3–11.6 ms) and lowered accepted/s; the readers keep POST ack.

## Known limits, left as they are

- A KeyPackage validation is about half two Ed25519 verifications and a quarter ts-mls 1.6.4 decoding, of which most is an
  enum lookup in ts-mls that rebuilds a reverse map for every decoded value (quadratic in the capability lists); that is
  library code. The upload path adds JSON, the store script and one ref key per KeyPackage.
- Delivery work is per reader: each member's read is a few commands in its own slot (inboxes and read marks live in
  per-client hash slots in Redis Cluster) plus one feed read per group in the group's slot; "delivered-to-all/s" and the
  read-path commands in scenario 2 show what that costs. A hub log entry still stores the roster of its accept beside the
  body (federation and log reads need the recipients; it is copied, not built, per message), so stored bytes per message
  grow with the group; one roster per epoch, referenced by the entries, would not.
- Scenario 2's 1,000-member targets: the "Why" paragraph under its load table computes, from the run's CPU columns, what
  0.5 × accepted/s(2) leaves per message on this machine and what the reader loops alone spend.
- Scenario 3 drives the ordering step with PrivateMessage-framed commits whose content is random (see there); real
  commits were used for the application messages (scenarios 1, 2) and KeyPackages (scenario 4).
`;
}

main().catch(async (e: unknown) => {
  process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  await stopAll();
  process.exit(1);
});
