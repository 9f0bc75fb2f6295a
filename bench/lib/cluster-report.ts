import { fmt } from "./context.js";
import { nodeErrorStats, totalCalls, type RedisTarget } from "./targets.js";

export interface ClusterScenarioLoad {
  title: string;
  masters: { port: number; calls: Map<string, number> }[];
}

export interface ClusterResult {
  masters: number;
  nodes: number;
  perScenario: { title: string; perMaster: { port: number; commands: number; evalsha: number }[] }[];
  /** Every error prefix seen on any node (INFO errorstats), e.g. CROSSSLOT, MOVED. */
  errors: Record<string, number>;
  crossSlot: number;
}

/**
 * The cluster part of a run: how each scenario's Redis commands spread over the masters (INFO
 * commandstats per node), and whether any node ever answered CROSSSLOT (INFO errorstats on every
 * node, replicas included, over the whole cluster run: nodes start fresh with the run).
 */
export async function clusterReport(
  t: RedisTarget,
  scenarios: ClusterScenarioLoad[],
): Promise<{ md: string; result: ClusterResult }> {
  const errors: Record<string, number> = {};
  for (const node of t.all()) {
    for (const [k, v] of await nodeErrorStats(node.port)) errors[k] = (errors[k] ?? 0) + v;
  }
  const crossSlot = errors.CROSSSLOT ?? 0;
  const masters = scenarios[0]?.masters.length ?? (await t.masters()).length;
  const perScenario = scenarios.map((s) => ({
    title: s.title,
    perMaster: s.masters.map((m) => ({ port: m.port, commands: totalCalls(m.calls), evalsha: m.calls.get("evalsha") ?? 0 })),
  }));
  const ports = perScenario[0]?.perMaster.map((m) => `master :${m.port}`) ?? [];
  const rows = perScenario.map((s) => {
    const all = s.perMaster.reduce((a, m) => a + m.commands, 0);
    const cells = s.perMaster.map((m) => `${fmt(m.commands)} (${all > 0 ? ((100 * m.commands) / all).toFixed(0) : "–"} %)`);
    const max = all > 0 ? Math.max(...s.perMaster.map((m) => m.commands)) / all : NaN;
    // What the busiest master ran most, against the others' average: where an uneven split comes from.
    const source = scenarios.find((x) => x.title === s.title)!.masters;
    const busiest = source.reduce((a, m) => (totalCalls(m.calls) > totalCalls(a.calls) ? m : a));
    const others = source.filter((m) => m !== busiest);
    const excess = [...busiest.calls]
      .map(([k, v]) => [k, v - others.reduce((a, m) => a + (m.calls.get(k) ?? 0), 0) / Math.max(1, others.length)] as const)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map(([k, v]) => `${k} +${fmt(v)}`)
      .join(", ");
    return {
      line: `| ${s.title} | ${cells.join(" | ")} | ${(max * 100).toFixed(0)} % (${excess}) |`,
      max,
      title: s.title,
    };
  });
  // Scenario 3 spreads 100 groups: its busiest master is the spread check (even = 1 / masters).
  const s3 = rows.find((r) => r.title.startsWith("3."));
  const spreadOk = s3 !== undefined && s3.max <= 1.5 / masters;
  const md = `## Redis Cluster: commands per master and cross-slot check

${t.label}, every node a private \`redis-server --cluster-enabled yes\` on 127.0.0.1, joined by \`redis-cli --cluster create\`;
the DS processes connect with \`MLSFEDGATE_REDIS_CLUSTER\` (node-redis \`createCluster\`). All nodes share the same two vCPUs as
everything else, so this part shows no throughput scaling; it shows where the work goes. Commands per master over each
scenario (INFO commandstats, Lua-issued commands included; a group's keys live in its group's slot, a client's in its
client's slot — one group concentrates its log on one master, many groups spread):

| scenario | ${ports.join(" | ")} | busiest master (its excess over the others' mean, top commands) |
| --- | ${ports.map(() => "---:").join(" | ")} | ---: |
${rows.map((r) => r.line).join("\n")}

Errors answered by any of the ${t.all().length} nodes during the cluster run (INFO errorstats): ${
    Object.keys(errors).length === 0
      ? "none"
      : Object.entries(errors)
          .map(([k, v]) => `${k} ${fmt(v)}`)
          .join(", ")
  } (MOVED/ASK would be redirections the client follows; CROSSSLOT a script or command touching two slots).

**Target no CROSSSLOT error on any node: ${crossSlot === 0 ? "met" : "not met"} (${fmt(crossSlot)}).**
${
  s3
    ? `**Target per-node load divides by the masters (scenario 3, 100 groups: busiest master ≤ 1.5 / ${masters}): ${spreadOk ? "met" : "not met"} (${(s3.max * 100).toFixed(0)} %).**`
    : "Scenario 3 (100 groups, the spread check) was not part of this run."
}
`;
  return { md, result: { masters, nodes: t.all().length, perScenario, errors, crossSlot } };
}
