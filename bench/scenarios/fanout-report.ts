import { availableParallelism } from "node:os";
import { cpuPer, fmt, ms, ratio } from "../lib/context.js";
import type { Commands, FanoutResult, FanoutRow } from "./fanout.js";

/** Redis commands per accepted message must not grow with the group (issue #10). */
const COMMANDS_TARGET = 10;

const top = (c: Commands, per: number) =>
  c.top
    .slice(0, 6)
    .map(([k, v]) => `${k} ${(v / per).toFixed(per >= 100 ? 3 : 1)}`)
    .join(", ");

function spread(rows: FanoutRow[]): string {
  if (rows[0]!.load.commands.perMaster.length < 2) return "";
  const lines = rows.map((x) => {
    const all = x.load.commands.perMaster.reduce((a, m) => a + m.total, 0);
    const cells = x.load.commands.perMaster.map(
      (m) => `${fmt(m.total)} (${all > 0 ? ((100 * m.total) / all).toFixed(0) : "–"} %, EVALSHA ${fmt(m.evalsha)})`,
    );
    return `| ${x.name} | ${cells.join(" | ")} |`;
  });
  const ports = rows[0]!.load.commands.perMaster.map((m) => `master :${m.port}`);
  return `
Commands per master during the load phase (INFO commandstats of each master; a group's log and record live in one slot,
each member's inbox and feed cursors in its client's slot):

| members | ${ports.join(" | ")} |
| --- | ${ports.map(() => "---:").join(" | ")} |
${lines.join("\n")}
`;
}

export function fanoutReport(r: FanoutResult): { md: string; targetMet: boolean } {
  const base = r.rows.find((x) => x.name === "2")!;
  const big = r.rows.find((x) => x.name === "1000")!;
  const split = r.rows.find((x) => x.name.startsWith("1000 over"));
  const accept = r.rows
    .map((x) => {
      const per = x.accept.commands.total / x.accept.messages;
      return `| ${x.name} | ${ms(x.accept.submit.p50)} | ${ms(x.accept.submit.p99)} | ${ratio(x.accept.submit.p50, base.accept.submit.p50)} | **${per.toFixed(1)}** | ${top(x.accept.commands, x.accept.messages)} |`;
    })
    .join("\n");
  const read = r.rows
    .map((x) => {
      const d = x.read.result;
      const delivered = x.read.messages * x.read.readers;
      const requests = d.reads + d.acks;
      return `| ${x.name} | ${fmt(x.read.readers)} | ${fmt(d.reads)} + ${fmt(d.acks)} | **${(x.read.commands.total / delivered).toFixed(2)}** | ${(x.read.commands.total / Math.max(1, requests)).toFixed(1)} | ${top(x.read.commands, delivered)} |`;
    })
    .join("\n");
  const load = r.rows
    .map((x) => {
      const d = x.load.result;
      const bad = d.duplicates + d.outOfOrder;
      return `| ${x.name} | ${fmt(d.accepted)} | **${fmt(d.acceptedPerSecond)}** | ${ms(d.submit.p50)} / ${ms(d.submit.p99)} | **${fmt(d.deliveredPerSecond)}** (${fmt(d.deliveredAll)}) | ${ms(d.lag.p50)} / ${ms(d.lag.p99)} | ${fmt(d.reads / d.seconds)} (${ms(d.readLatency.p50)} / ${ms(d.readLatency.p99)}) | ${bad === 0 && d.unfinishedReaders === 0 ? "ok" : `${d.duplicates} dup, ${d.outOfOrder} out of order, ${d.unfinishedReaders} readers short`} | ${x.remoteProviders === 0 ? "–" : x.load.deliverRequests.toFixed(3)} | ${cpuPer(x.load.cpu, Math.max(1, d.accepted))} |`;
    })
    .join("\n");
  const accRatio = big.load.result.acceptedPerSecond / base.load.result.acceptedPerSecond;
  const delRatio = big.load.result.deliveredPerSecond / base.load.result.deliveredPerSecond;
  const perAccept = r.rows.map((x) => ({ name: x.name, n: x.accept.commands.total / x.accept.messages }));
  const commandsOk = perAccept.every((x) => x.n <= COMMANDS_TARGET);
  const subRel = big.accept.submit.p50 / base.accept.submit.p50;
  const complete = r.rows.every(
    (x) => x.load.result.unfinishedReaders === 0 && x.load.result.duplicates + x.load.result.outOfOrder === 0,
  );
  const s2sLine = split
    ? `**S2S requests per message ≤ number of remote providers (1) under load, split group: ${split.load.deliverRequests <= 1 ? "met" : "not met"} (${split.load.deliverRequests.toFixed(3)}).**`
    : "";
  const md = `
Store: ${r.store}. Every group is real MLS made through the DS's commit path: each other member uploads one KeyPackage
(its own identity key) to its provider, the creator (alice@a.example) claims them through her DS (remote users through
federation) and adds them all in one commit, Welcome and ratchet tree through the DS. Members then only read their inbox
over HTTP (GET /v1/inbox + POST /v1/inbox/ack; they never decrypt), which measures delivery whatever its design.
Every submission is a distinct real PrivateMessage from alice's state. The size limits are raised for this scenario only
(\`limits.messageBytes\`, \`groupInfoBytes\`, \`bodyBytes\`): a 1000-leaf tree does not fit the defaults.

**Accept path** — ${base.accept.messages} messages one at a time, nobody reading; Redis commands from INFO commandstats (those
Lua scripts issue included, summed over ${base.accept.commands.perMaster.length > 1 ? "the masters" : "the node"}) from the first submit until Redis is idle again
(background fan-out included), divided by the messages:

| members | submit p50 | submit p99 | p50 / group of 2 | Redis commands per accepted message | top commands per message |
| --- | ---: | ---: | ---: | ---: | --- |
${accept}

**Read path** — then every member reads those ${base.read.messages} messages (reader loops, each polling its share of the
members with GET /v1/inbox?after=&limit=500 and acking what it read); commands divided by messages × readers:

| members | readers | GET + ack requests | Redis commands per delivered message per member | commands per request | top commands per delivered message |
| --- | ---: | ---: | ---: | ---: | --- |
${read}

**Under load** — ${base.load.connections} senders post for at most the stated time while the reader loops (up to
${big.load.loops}; a loop with one member long-polls, the others poll with \`waitMs=0\`, one pass over their members at most
every ${r.minPassMs} ms, so a member reads at most that often, as a client batching its reads would; \`--s2-pass-ms\` changes it)
read every member's inbox.
accepted/s = 202s / time to the last 202; delivered-to-all/s = messages read by every member / time to the last such read;
lag = the sender's 202 → the read by the last member (p50 / p99); checks: every member read every message once and in order.

| members | accepted | accepted/s | submit p50 / p99 | delivered-to-all/s (messages) | lag p50 / p99 | inbox reads/s (GET p50 / p99, polled) | delivery check | S2S deliver requests per message | CPU per accepted message |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |
${load}
${spread(r.rows)}
**Target accepted/s(1000) ≥ 0.5 × accepted/s(2) under load: ${accRatio >= 0.5 ? "met" : "not met"} (${accRatio.toFixed(2)}×).**
**Target delivered-to-all/s(1000) ≥ 0.5 × delivered-to-all/s(2), every member reading every message: ${delRatio >= 0.5 && complete ? "met" : "not met"} (${delRatio.toFixed(2)}×${complete ? "" : "; some member did not read everything in time"}).**
**Target Redis commands per accepted message ≤ ${COMMANDS_TARGET} at every size: ${commandsOk ? "met" : "not met"} (${perAccept.map((x) => `${x.name}: ${x.n.toFixed(1)}`).join("; ")}).**
**Target p50 submit(1000) ≤ 3 × p50 submit(2), sequential: ${subRel <= 3 ? "met" : "not met"} (${subRel.toFixed(2)}×).**
${s2sLine}

${whyNotMet(base, big)}
`;
  return { md, targetMet: accRatio >= 0.5 && delRatio >= 0.5 && complete && commandsOk };
}

/**
 * Where the CPU of one accepted message went under load, and what 0.5 × accepted/s(2) would leave
 * for it on this machine's cores: the reader loops (the load generator) parse every member's copy.
 */
export function whyNotMet(base: FanoutRow, big: FanoutRow, cores = availableParallelism()): string {
  const split = (x: FanoutRow) => {
    const per = (k: string) => ((x.load.cpu[k] ?? 0) * 1000) / Math.max(1, x.load.result.accepted);
    const total = Object.keys(x.load.cpu).reduce((n, k) => n + per(k), 0);
    return { total, ds: per("DS a") + per("DS b"), redis: per("Redis"), readers: per("load generator") };
  };
  const [b, g] = [split(base), split(big)];
  const readers = Math.max(1, big.read.readers);
  const budget = (cores * 1000) / (0.5 * base.load.result.acceptedPerSecond);
  const f = (n: number) => `${n.toFixed(2)} ms`;
  return `Why, from the CPU columns: at ${big.name} members one accepted message cost the machine ${f(g.total)} of CPU — the DS ${f(g.ds)} (${((1000 * g.ds) / readers).toFixed(1)} µs per member that read it), Redis ${f(g.redis)} (${((1000 * g.redis) / readers).toFixed(1)} µs per member), and the load generator ${f(g.readers)} (its 16 senders, and its reader loops, which make and parse ${fmt(readers)} HTTP reads of it) — against ${f(b.total)} at ${base.name} members. Accepting 0.5 × accepted/s(${base.name}) = ${fmt(0.5 * base.load.result.acceptedPerSecond)} messages/s on ${cores} shared cores leaves ${f(budget)} of CPU per message for all of it: ${g.readers >= budget ? "less than the reader loops alone need, so on this machine the target cannot be reached while every member reads over HTTP beside the DS, whatever the DS costs" : "more than the reader loops alone need"}.`;
}
