/**
 * npm run bench [-- --quick] [-- --only s1,s3] [-- --out docs/BENCHMARKS.md] [-- --no-write]
 *
 * One recorded run of every scenario of issue #5 on this machine: a private redis-server, DS
 * processes (`mls-fedgate serve`) on 127.0.0.1, the load generator in its own process, and the
 * ceilings H (bare express) and R (EVALSHA of a trivial script) measured in the same run.
 * Writes docs/BENCHMARKS.md (unless --no-write or --only) and the raw figures next to it as JSON.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { Bench } from "./lib/context.js";
import { ROOT, startRedis, stopAll, stopRedis, tempDir } from "./lib/proc.js";
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
    title: "5. Redis memory per queued inbox entry and per stored group message",
    run: memory,
    report: memoryReport as Scenario["report"],
  },
];

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
      .join(" / "),
  };
}

async function main(): Promise<void> {
  const quick = process.argv.includes("--quick");
  const only = arg("--only")?.split(",");
  const write = !process.argv.includes("--no-write");
  const out = arg("--out") ?? join(ROOT, "docs", "BENCHMARKS.md");
  const started = new Date();
  const t0 = performance.now();
  const info = machine();
  const log = (line: string) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1)} s] ${line}\n`);
  log(`machine: ${JSON.stringify(info)}`);
  const redis = await startRedis();
  const tmp = tempDir("mlsfg-bench-");
  const bench = new Bench(quick, redis, tmp, log);
  const results: Record<string, unknown> = {};
  const sections: string[] = [];
  try {
    for (const s of SCENARIOS) {
      if (only && !only.includes(s.id)) continue;
      log(`== ${s.title}`);
      const st = performance.now();
      const r = await s.run(bench);
      results[s.id] = r;
      const { md } = s.report(r as never);
      sections.push(`## ${s.title}\n\n_Scenario time: ${((performance.now() - st) / 1000).toFixed(0)} s._\n${md}`);
      process.stderr.write(md + "\n");
    }
  } finally {
    await stopRedis(redis).catch(() => {});
    await stopAll();
    rmSync(tmp, { recursive: true, force: true });
  }
  const seconds = (performance.now() - t0) / 1000;
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

function render(info: Record<string, string>, started: Date, seconds: number, quick: boolean, sections: string[]): string {
  return `# Benchmarks

Every figure below comes from ONE run of \`npm run bench${quick ? " -- --quick" : ""}\` (started ${started.toISOString()},
${seconds.toFixed(0)} s), reproduced by running the same command on a checkout of this commit.

## Machine

| | |
| --- | --- |
| CPU | ${info.cpu} (\`nproc\` = ${info.nproc}) |
| memory | ${info.memory} |
| kernel | ${info.kernel} |
| Node.js | ${info.node} |
| Redis | ${info.redis} (private \`redis-server\` on 127.0.0.1, no persistence) |
| load average at start (1/5/15 min) | ${info.loadBefore} |

${sections.join("\n")}
`;
}

main().catch(async (e: unknown) => {
  process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  await stopAll();
  process.exit(1);
});
