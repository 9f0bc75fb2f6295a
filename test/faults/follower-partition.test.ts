/**
 * A follower partitioned for a while, and the hub restarted meanwhile (issue 5).
 *
 * Hub a.example (a `serve` process on Redis, so its durable outbox outlives the process) and
 * follower b.example (a `serve` process) share a group: alice on the hub, bob and carol on the
 * follower. The follower is frozen (SIGSTOP: connections hang, like a partition) while alice
 * sends messages and a commit; the hub is SIGKILLed and started again, alice sends more; then the
 * follower is resumed (SIGCONT). Bob and carol must then receive everything, once, in order, and
 * decrypt it; the hub's outbox to b.example drains to zero (read from /metrics).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MlsClient, type MlsEvent } from "../../src/client/index.js";
import { freePort } from "../helpers/global-setup.js";
import { redisUrl } from "../helpers/providers.js";
import { serve, sleep, type ServeProcess } from "./processes.js";

const texts = (events: MlsEvent[]) => events.flatMap((e) => (e.kind === "message" ? [e.text] : []));

async function outboxDepth(hubUrl: string, peer: string): Promise<number> {
  const metrics = await (await fetch(`${hubUrl}/metrics`)).text();
  const line = metrics.split("\n").find((l) => l.startsWith(`mlsfg_outbox_depth{peer="${peer}"}`));
  if (!line) throw new Error(`no outbox depth for ${peer} in /metrics`);
  return Number(line.split(" ").at(-1));
}

describe("a partitioned follower and a restarted hub", () => {
  const keys = mkdtempSync(join(tmpdir(), "mlsfg-faults-keys-"));
  const children: ServeProcess[] = [];
  let hubEnv: Record<string, string>;
  let hubPort: number;
  let hub: ServeProcess;
  let follower: ServeProcess;

  beforeAll(async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    hubPort = pa;
    const outbox = {
      MLSFEDGATE_FEDERATION__OUTBOX__RETRY_BASE_MS: "100",
      MLSFEDGATE_FEDERATION__OUTBOX__RETRY_MAX_MS: "1000",
      MLSFEDGATE_FEDERATION__OUTBOX__POLL_MS: "200",
      MLSFEDGATE_FEDERATION__REQUEST_TIMEOUT_MS: "1000",
      MLSFEDGATE_AUTH: "dev",
    };
    hubEnv = {
      ...outbox,
      MLSFEDGATE_DOMAIN: "a.example",
      MLSFEDGATE_STORE: "redis",
      MLSFEDGATE_REDIS_URL: redisUrl(),
      MLSFEDGATE_REDIS_PREFIX: `faults-${randomBytes(4).toString("hex")}`,
      MLSFEDGATE_SIGNING_KEY_FILE: join(keys, "a.example.jwk.json"),
      MLSFEDGATE_PEERS: JSON.stringify({ "b.example": { url: `http://127.0.0.1:${pb}` } }),
    };
    hub = await serve(hubEnv, pa);
    follower = await serve(
      {
        ...outbox,
        MLSFEDGATE_DOMAIN: "b.example",
        MLSFEDGATE_STORE: "memory",
        MLSFEDGATE_SIGNING_KEY_FILE: join(keys, "b.example.jwk.json"),
        MLSFEDGATE_PEERS: JSON.stringify({ "a.example": { url: `http://127.0.0.1:${pa}` } }),
      },
      pb,
    );
    children.push(hub, follower);
  }, 120_000);

  afterAll(async () => {
    for (const c of children) {
      if (c.child.exitCode !== null || c.child.signalCode !== null) continue;
      c.child.kill("SIGCONT");
      await c.kill("SIGTERM");
    }
    rmSync(keys, { recursive: true, force: true });
  });

  it("delivers everything the hub accepted meanwhile, once and in order, after both are back", async () => {
    const alice = await MlsClient.connect(hub.url, "alice@a.example/phone");
    const bob = await MlsClient.connect(follower.url, "bob@b.example/laptop");
    const carol = await MlsClient.connect(follower.url, "carol@b.example/tablet");
    await Promise.all([bob.publishKeyPackages(1), carol.publishKeyPackages(1)]);
    const groupId = await alice.createGroup();
    await alice.addUsers(groupId, ["bob@b.example", "carol@b.example"]);
    const sent: string[] = [];
    const send = async (n: number, tag: string) => {
      for (let i = 0; i < n; i++) {
        const text = `${tag} ${i}`;
        await alice.send(groupId, text);
        sent.push(text);
      }
    };
    await send(10, "before");
    const received = new Map<MlsClient, string[]>([
      [bob, []],
      [carol, []],
    ]);
    const collect = async (until: number, timeoutMs: number) => {
      const deadline = Date.now() + timeoutMs;
      for (const [c, got] of received) {
        while (got.length < until && Date.now() < deadline) {
          const events = await c.sync({ waitMs: 500 });
          expect(events.filter((e) => e.kind === "error")).toEqual([]);
          got.push(...texts(events));
        }
      }
    };
    await collect(10, 15_000);
    expect(received.get(bob)).toEqual(sent);

    // Partition: the follower freezes; the hub goes on accepting and queues for it.
    follower.child.kill("SIGSTOP");
    await send(30, "partitioned");
    const { epoch } = await alice.update(groupId);
    await send(20, "after the commit");
    const queued = await outboxDepth(hub.url, "b.example");
    expect(queued).toBeGreaterThanOrEqual(40);

    // The hub crashes and comes back on the same Redis (same port, same key).
    await hub.kill("SIGKILL");
    hub = await serve(hubEnv, hubPort);
    children.push(hub);
    expect(await outboxDepth(hub.url, "b.example")).toBeGreaterThanOrEqual(queued);
    await send(10, "after the restart");
    await sleep(1500); // the restarted hub keeps trying the frozen follower (timeouts, backoff)

    follower.child.kill("SIGCONT");
    await collect(sent.length, 60_000);
    for (const [c, got] of received) expect([c.id, got]).toEqual([c.id, sent]);
    for (const c of [bob, carol]) expect(c.epoch(groupId)).toBe(epoch);
    // The hub's outbox is empty, so whatever it sent is in the inboxes already: nothing more (no duplicates).
    const deadline = Date.now() + 10_000;
    while ((await outboxDepth(hub.url, "b.example")) > 0 && Date.now() < deadline) await sleep(100);
    expect(await outboxDepth(hub.url, "b.example")).toBe(0);
    for (const c of [bob, carol]) expect(await c.sync()).toEqual([]);
    process.stdout.write(
      `follower-partition: ${sent.length} messages and 1 commit delivered in order to 2 clients after a ${queued}-entry backlog and a hub restart\n`,
    );
  }, 180_000);
});
