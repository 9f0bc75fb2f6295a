/**
 * A hub replica killed while a client holds the group lease, mid-load (issue 5).
 *
 * Two `mls-fedgate serve` processes of a.example share one Redis. Four members commit in a loop
 * through a round-robin load balancer over both replicas; a fifth ("holder") talks to replica 1
 * only, takes the group lease there, commits under it, and then replica 1 is SIGKILLed. The
 * other replica must refuse commits (423 group_locked) until the lease expires and accept them
 * after; no accepted commit may be lost and no epoch accepted twice: the commit log holds exactly
 * one entry per epoch, and every member converges on the same epoch.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FedgateError, MlsClient } from "../../src/client/index.js";
import { freePort } from "../helpers/global-setup.js";
import { redisUrl } from "../helpers/providers.js";
import { Balancer } from "./balancer.js";
import { serve, sleep, type ServeProcess } from "./processes.js";

const LEASE_MS = 5000;
const AFTER_EXPIRY_MS = 3000;
const HARD_DEADLINE_MS = 120_000;

interface Accepted {
  client: string;
  epoch: number;
  seq: number;
  sha256: string;
  at: number;
}

/** Records every commit a client had accepted (with the bytes' hash) and every group_locked answer. */
function track(c: MlsClient, accepted: Accepted[], locked: { at: number; leaseExpiresAt: unknown }[]): void {
  const original = c.api.request.bind(c.api);
  c.api.request = (async (method: string, path: string, body?: unknown, auth?: boolean) => {
    try {
      const answer = await original(method, path, body, auth);
      if (method === "POST" && path.endsWith("/commits")) {
        const bytes = Buffer.from((body as { commit: string }).commit, "base64url");
        const { seq, epoch } = answer as { seq: number; epoch: number };
        accepted.push({ client: c.id, seq, epoch, sha256: createHash("sha256").update(bytes).digest("hex"), at: Date.now() });
      }
      return answer;
    } catch (e) {
      if (e instanceof FedgateError && e.code === "group_locked")
        locked.push({ at: Date.now(), leaseExpiresAt: e.details.leaseExpiresAt });
      throw e;
    }
  }) as typeof c.api.request;
}

async function joined(c: MlsClient, groupId: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!c.groupIds().includes(groupId)) {
    if (Date.now() > deadline) throw new Error(`${c.id} did not join`);
    await c.sync({ waitMs: 300 });
  }
}

describe("a hub replica killed while a client holds the lease, mid-load", () => {
  const keys = mkdtempSync(join(tmpdir(), "mlsfg-faults-keys-"));
  let r1: ServeProcess;
  let r2: ServeProcess;
  let lb: Balancer;

  beforeAll(async () => {
    const env = {
      MLSFEDGATE_DOMAIN: "a.example",
      MLSFEDGATE_STORE: "redis",
      MLSFEDGATE_REDIS_URL: redisUrl(),
      MLSFEDGATE_REDIS_PREFIX: `faults-${randomBytes(4).toString("hex")}`,
      MLSFEDGATE_AUTH: "dev",
      MLSFEDGATE_SIGNING_KEY_FILE: join(keys, "a.example.jwk.json"),
    };
    r1 = await serve(env, await freePort());
    r2 = await serve(env, await freePort());
    lb = await Balancer.start([r1.url, r2.url]);
  }, 120_000);

  afterAll(async () => {
    await lb?.close();
    for (const r of [r1, r2]) if (r && r.child.exitCode === null && r.child.signalCode === null) await r.kill("SIGTERM");
    rmSync(keys, { recursive: true, force: true });
  });

  it("lets the other replica continue after the lease expires, losing no commit and accepting no epoch twice", async () => {
    const started = Date.now();
    const accepted: Accepted[] = [];
    const locked: { at: number; leaseExpiresAt: unknown }[] = [];
    const owner = await MlsClient.connect(lb.url, "owner@a.example/1");
    const others = await Promise.all(["c1", "c2", "c3"].map((n) => MlsClient.connect(lb.url, `${n}@a.example/1`)));
    const holder = await MlsClient.connect(r1.url, "holder@a.example/1");
    const loaders = [owner, ...others];
    for (const c of [...others, holder]) await c.publishKeyPackages(1);
    const groupId = await owner.createGroup();
    await owner.addUsers(
      groupId,
      [...others, holder].map((c) => c.user),
    );
    for (const c of [...others, holder]) await joined(c, groupId);
    for (const c of [...loaders, holder]) track(c, accepted, locked);

    // The load: every member commits in a loop through the balancer (both replicas).
    let stopAt = Infinity;
    const failures: string[] = [];
    const load = async (c: MlsClient) => {
      while (Date.now() < stopAt && Date.now() - started < HARD_DEADLINE_MS) {
        try {
          await c.update(groupId);
        } catch (e) {
          if (e instanceof FedgateError && (e.code === "group_locked" || e.code === "stale_epoch")) {
            await sleep(50);
            await c.sync().catch(() => undefined);
            continue;
          }
          failures.push(`${c.id}: ${(e as Error).message}`);
          await sleep(100);
        }
        await sleep(Math.floor(Math.random() * 30));
      }
    };
    const loops = loaders.map(load);

    // Mid-load, the holder takes the lease on replica 1 and commits under it twice.
    await sleep(2500);
    await holder.sync();
    const lease = await holder.api.lease(groupId, LEASE_MS);
    const holderEpochs: number[] = [];
    for (let i = 0; i < 2; i++) holderEpochs.push((await holder.update(groupId, { leaseToken: lease.leaseToken })).epoch);
    await sleep(300);
    // Replica 1 dies while the lease is held (and while the others' requests are in flight through it).
    const killedAt = Date.now();
    await r1.kill("SIGKILL");
    expect(r1.child.signalCode).toBe("SIGKILL");
    expect(lease.expiresAt).toBeGreaterThan(killedAt);
    stopAt = lease.expiresAt + AFTER_EXPIRY_MS;
    await Promise.all(loops);

    const lastHolderEpoch = Math.max(...holderEpochs);
    const mine = accepted.filter((a) => a.client !== holder.id);
    const report = `hub-replica-kill: ${accepted.length} commits accepted (${mine.filter((a) => a.at >= lease.expiresAt).length} after the lease expired), ${locked.length} group_locked answers, ${lb.failovers} requests failed over to replica 2`;
    process.stdout.write(report + "\n");
    expect(failures).toEqual([]);

    // Replica 2 refused while the dead client's lease lasted, and accepted afterwards.
    expect(locked.filter((l) => l.at > killedAt && l.leaseExpiresAt === lease.expiresAt).length).toBeGreaterThan(0);
    expect(mine.filter((a) => a.at >= lease.expiresAt).length).toBeGreaterThanOrEqual(3);
    // Nobody else committed on top of the holder's commits before the lease expired.
    expect(mine.filter((a) => a.epoch > Math.min(...holderEpochs) && a.at < lease.expiresAt - 50)).toEqual([]);
    expect(lastHolderEpoch).toBeGreaterThan(1);

    // The commit log: exactly one entry per epoch, and every accepted commit in it.
    const view = await owner.api.group(groupId);
    const { entries } = await owner.api.commitLog(groupId);
    expect(entries.map((e) => e.epoch)).toEqual(Array.from({ length: view.epoch }, (_, i) => i));
    const byEpoch = new Map(entries.map((e) => [e.epoch, e]));
    for (const a of accepted) expect(byEpoch.get(a.epoch - 1)).toMatchObject({ seq: a.seq, sha256: a.sha256 });
    expect(new Set(accepted.map((a) => a.epoch)).size).toBe(accepted.length);

    // Every member that is still reachable converges on that epoch.
    for (const c of loaders) {
      const deadline = Date.now() + 20_000;
      while (c.epoch(groupId) < view.epoch && Date.now() < deadline) {
        const events = await c.sync({ waitMs: 300 });
        expect(events.filter((e) => e.kind === "error")).toEqual([]);
      }
      expect([c.id, c.epoch(groupId)]).toEqual([c.id, view.epoch]);
    }
  }, 180_000);
});
