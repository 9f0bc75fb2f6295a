import { randomBytes } from "node:crypto";
import type { RedisStore } from "../../src/store/redis.js";
import type { CommitResult, RedisResult } from "../load.js";
import { cpuPer, fmt, ms, ratio, withCpu, type Bench } from "../lib/context.js";
import { devToken } from "../lib/mls.js";
import { stop } from "../lib/proc.js";
import { mergeCalls, snapshot } from "../lib/targets.js";

export interface Verification {
  groups: number;
  commitLogEntries: number;
  /** (group, epoch) pairs with more than one commit-log entry, or answered 201 more than once. */
  doubleAccepts: number;
  /** Groups whose commit log is not exactly epochs 0..epoch-1. */
  gaps: number;
  /** Accepted answers that the commit log does not hold, or commit-log entries nobody was told about. */
  mismatches: number;
}

export interface CommitsResult {
  targetAttempts: number;
  committers: number;
  groups: number;
  members: number;
  http: CommitResult;
  httpCpu: Record<string, number>;
  httpVerify: Verification;
  commands: Record<string, number>;
  store: CommitResult;
  storeCpu: Record<string, number>;
  storeVerify: Verification;
  storeCommands: Record<string, number>;
  r: RedisResult;
}

async function makeGroups(store: RedisStore, n: number, members: string[]): Promise<{ groupId: string; groupIdBytes: string }[]> {
  const groups = Array.from({ length: n }, () => Buffer.from(randomBytes(16)).toString("base64url"));
  await Promise.all(
    groups.map((groupId) =>
      store.createGroup({
        groupId,
        hub: "a.example",
        mode: "ordered",
        cipherSuite: 1,
        epoch: 0,
        nextSeq: 1,
        members,
        owner: members[0]!,
        createdAt: Date.now(),
      }),
    ),
  );
  return groups.map((g) => ({ groupId: g, groupIdBytes: g }));
}

/** Reads every group's commit log and checks: one entry per epoch 0..epoch-1, each accepted answer there, nothing else. */
async function verify(
  store: RedisStore,
  groups: { groupId: string }[],
  accepted: Record<string, number[]>,
): Promise<Verification> {
  const v: Verification = { groups: groups.length, commitLogEntries: 0, doubleAccepts: 0, gaps: 0, mismatches: 0 };
  for (const { groupId } of groups) {
    const [log, g] = [await store.commitLog(groupId, -1), await store.getGroup(groupId)];
    v.commitLogEntries += log.length;
    const perEpoch = new Map<number, number>();
    for (const e of log) perEpoch.set(e.epoch, (perEpoch.get(e.epoch) ?? 0) + 1);
    for (const n of perEpoch.values()) if (n > 1) v.doubleAccepts += n - 1;
    const answered = accepted[groupId] ?? [];
    const answeredSet = new Map<number, number>();
    for (const e of answered) answeredSet.set(e, (answeredSet.get(e) ?? 0) + 1);
    for (const n of answeredSet.values()) if (n > 1) v.doubleAccepts += n - 1;
    const epoch = g?.epoch ?? 0;
    if (perEpoch.size !== epoch || [...perEpoch.keys()].some((e) => e < 0 || e >= epoch)) v.gaps++;
    for (const e of answeredSet.keys()) if (!perEpoch.has(e)) v.mismatches++;
    for (const e of perEpoch.keys()) if (!answeredSet.has(e)) v.mismatches++;
  }
  return v;
}

/**
 * Scenario 3: commit ordering under contention. Two DS replicas (separate processes, same
 * domain, one Redis and key prefix); 64 committers (members of all 100 groups, records made with
 * RedisStore.createGroup) race over HTTP, each attempt a PrivateMessage-framed commit with fresh
 * random content at the epoch the committer last heard of. Then the ordering step alone:
 * RedisStore.submit at the same concurrency from one process, against ceiling R.
 */
export async function commits(b: Bench): Promise<CommitsResult> {
  const committers = 64;
  const nGroups = 100;
  const prefix = "s3";
  const r1 = await b.ds({ domain: "a.example", prefix });
  const r2 = await b.ds({ domain: "a.example", prefix });
  const clients = Array.from({ length: committers }, (_, i) => `c${i}@a.example/d`);
  const tokens = await Promise.all(clients.map((c) => devToken(r1.url, c)));
  const store = await b.store(prefix);
  const groups = await makeGroups(store, nGroups, clients);
  // Summed over the masters: on a cluster, every node's share of the same work.
  const commandsSince = async (snap: Awaited<ReturnType<typeof snapshot>>) =>
    Object.fromEntries(mergeCalls((await snap.since()).map((n) => n.calls)));
  const attempts = b.n(100_000, 4000);
  b.log(`s3: ${committers} committers, ${nGroups} groups, ${attempts} attempts over HTTP on 2 replicas`);
  const before = await snapshot(b.redis);
  const { result: http, cpu: httpCpu } = await withCpu(
    { "replica 1": r1.child.pid, "replica 2": r2.child.pid, Redis: b.redis.pids },
    () =>
      b.load<CommitResult>({
        mode: "commits",
        urls: [r1.url, r2.url],
        committers: clients.map((client, i) => ({ client, token: tokens[i] })),
        groups,
        attempts,
        maxSeconds: b.n(300, 60),
      }),
  );
  const commands = await commandsSince(before);
  b.log("s3: verifying commit logs");
  const httpVerify = await verify(store, groups, http.acceptedEpochs);
  await stop(r1.child);
  await stop(r2.child);

  b.log("s3: ordering step alone (RedisStore.submit)");
  const prefix2 = "s3s";
  const store2 = await b.store(prefix2);
  const groups2 = await makeGroups(store2, nGroups, clients);
  const before2 = await snapshot(b.redis);
  const { result: direct, cpu: directCpu } = await withCpu({ Redis: b.redis.pids }, () =>
    b.load<CommitResult>({
      mode: "store-commits",
      urls: [b.redis.url],
      topology: b.redis.topology,
      redisPrefix: prefix2,
      committers: clients.map((client) => ({ client })),
      groups: groups2,
      attempts: b.n(100_000, 10_000),
      maxSeconds: b.n(60, 15),
    }),
  );
  const storeCommands = await commandsSince(before2);
  const storeVerify = await verify(store2, groups2, direct.acceptedEpochs);
  b.log("s3: ceiling R");
  const r = await b.ceilingR(committers, b.n(5, 2));
  await store.close();
  await store2.close();
  // The raw accepted-epoch lists are large and checked above; keep counts only.
  return {
    targetAttempts: attempts,
    committers,
    groups: nGroups,
    members: clients.length,
    http: { ...http, acceptedEpochs: {} },
    httpCpu: { ...httpCpu, "load generator": http.loadCpuSeconds ?? NaN },
    httpVerify,
    commands,
    store: { ...direct, acceptedEpochs: {} },
    storeCpu: { ...directCpu, "load generator (client side of submit)": direct.loadCpuSeconds ?? NaN },
    storeVerify,
    storeCommands,
    r,
  };
}

function total(stats: Record<string, number>): number {
  return Object.values(stats).reduce((a, n) => a + n, 0);
}

function topCommands(stats: Record<string, number>, per: number): string {
  return Object.entries(stats)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([k, v]) => `${k} ${(v / per).toFixed(1)}`)
    .join(", ");
}

export function commitsReport(r: CommitsResult): { md: string; targetMet: boolean } {
  const h = r.http;
  const s = r.store;
  const dbl = r.httpVerify.doubleAccepts + r.storeVerify.doubleAccepts;
  const clean = dbl === 0 && r.httpVerify.gaps + r.storeVerify.gaps + r.httpVerify.mismatches + r.storeVerify.mismatches === 0;
  const other = Object.entries(h.otherErrors).map(([k, v]) => `${k}×${v}`);
  const md = `
${r.committers} committers race over ${r.groups} groups (every committer a member of every group; records made with RedisStore.createGroup).
Every attempt is a PrivateMessage-framed commit (RFC 9420 wire format, encoded by ts-mls: group id, epoch, content type
\`commit\`, then random bytes where a real commit's encrypted sender data and content are — the DS cannot open those either)
at the epoch the committer last heard of for that group (201 → the new epoch, 409 → \`expectedEpoch\`), so no attempt is a
retry of another. Real MLS commits for 100,000 attempts would cost more client CPU than the DS spends; what the DS does
with one — decode, framing, membership, ordering, commit log, fan-out to the ${r.members - 1} other members — is the same.

**Through HTTP, 2 DS replicas (separate processes) on one Redis:**

| | |
| --- | ---: |
| attempts | ${fmt(h.attempts)} in ${h.seconds.toFixed(1)} s (${fmt(h.attempts / h.seconds)}/s) |
| accepted commits | ${fmt(h.accepted)} (${fmt(h.accepted / h.seconds)}/s), p50 ${ms(h.latency.accepted.p50)}, p99 ${ms(h.latency.accepted.p99)} |
| rejected \`stale_epoch\` | ${fmt(h.rejected)} (${fmt(h.rejected / h.seconds)}/s), p50 ${ms(h.latency.rejected.p50)}, p99 ${ms(h.latency.rejected.p99)} |
| other answers | ${other.length ? other.join(", ") : "none"}${h.locked ? `, group_locked×${h.locked}` : ""} |
| commit-log entries (all groups) | ${fmt(r.httpVerify.commitLogEntries)} = accepted answers: ${r.httpVerify.mismatches === 0 ? "yes" : `no (${r.httpVerify.mismatches} mismatches)`} |
| groups whose log is not exactly one entry per epoch 0..epoch−1 | ${r.httpVerify.gaps} |
| **double-accepts** | **${r.httpVerify.doubleAccepts}** |
| CPU per attempt (from /proc) | ${cpuPer(r.httpCpu, h.attempts)} |
| Redis commands per accepted commit (INFO commandstats, incl. commands run inside scripts) | ${(total(r.commands) / h.accepted).toFixed(1)} (${(total(r.commands) / h.attempts).toFixed(1)} per attempt) |
| of which, per accepted commit | ${topCommands(r.commands, h.accepted)} |

**The ordering step alone** (RedisStore.submit from one process at ${r.committers} concurrent committers, same race, fresh groups):

| | ops/s | p50 | p99 | ratio to R |
| --- | ---: | ---: | ---: | ---: |
| ordering step (accepted + rejected) | ${fmt(s.attempts / s.seconds)} | ${ms(Math.min(s.latency.accepted.p50, s.latency.rejected.p50))}–${ms(Math.max(s.latency.accepted.p50, s.latency.rejected.p50))} | ${ms(Math.max(s.latency.accepted.p99, s.latency.rejected.p99))} | **${ratio(s.attempts / s.seconds, r.r.opsPerSecond)}** |
| ceiling R (EVALSHA \`return 1\`), ${r.committers} concurrent | ${fmt(r.r.opsPerSecond)} | ${ms(r.r.latency.p50)} | ${ms(r.r.latency.p99)} | 1.00× |

${fmt(s.attempts)} attempts in ${s.seconds.toFixed(1)} s: ${fmt(s.accepted)} accepted, ${fmt(s.rejected)} rejected; double-accepts ${r.storeVerify.doubleAccepts},
log gaps ${r.storeVerify.gaps}, mismatches ${r.storeVerify.mismatches}; CPU per attempt: ${cpuPer(r.storeCpu, s.attempts)}; Redis commands per attempt ${(total(r.storeCommands) / s.attempts).toFixed(1)} (${topCommands(r.storeCommands, s.attempts)}).

**double-accepts: ${dbl}** over ${fmt(h.attempts + s.attempts)} attempts (${fmt(h.attempts)} through HTTP on two replicas${h.attempts < r.targetAttempts ? ` — fewer than the ${fmt(r.targetAttempts)} planned: the run's time cap was reached` : ""}${r.targetAttempts < 100_000 ? "; a --quick run, the full run makes 100,000" : ""}), verified from the commit logs.
${clean ? "" : "**Verification found problems (see above).**"}
`;
  return { md, targetMet: clean && h.attempts >= 100_000 };
}
