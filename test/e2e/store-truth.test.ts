/**
 * The store tells the truth (issue 8), against real redis-server processes started here (own
 * port and directory, see test/faults/processes.ts):
 * - Redis still loading its data set answers LOADING (a node-redis SimpleError): the DS answers
 *   503 `unavailable` with Retry-After, and serves again once Redis has loaded;
 * - the DS reports whether Redis persists, and with store.requirePersistence refuses to start
 *   on a Redis that does not;
 * - Redis killed and restarted empty: /readyz fails and the API answers 503 `store_reset` on every
 *   replica, until `mls-fedgate store ack-reset`.
 */
import { spawn } from "node:child_process";
import { createClient, type RedisClientType } from "redis";
import { ConfigError, DeliveryService, loadConfig } from "../../src/index.js";
import { MlsClient } from "../../src/client/index.js";
import { freePort } from "../helpers/global-setup.js";
import { redisUrl, startProvider, stopAll, testKey, uniquePrefix, type Provider } from "../helpers/providers.js";
import { RedisProcess, rawBulk, rawCommand, sleep } from "../faults/processes.js";

interface Answer {
  status: number;
  retryAfter: string | null;
  body: { status?: string; store?: Record<string, unknown>; error?: { code: string; message: string } };
}

async function get(url: string, token?: string): Promise<Answer> {
  const res = await fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body: (await res.json()) as Answer["body"] };
}

/** Polls until `check` holds (a positive condition, bounded): the DS notices a store change on its own schedule. */
async function until<T>(what: string, probe: () => Promise<T>, check: (v: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (check(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(v)}`);
    await sleep(50);
  }
}

/** `mls-fedgate <args>` as its own process (through tsx); resolves with exit code and output. */
function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MLSFEDGATE_")));
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], {
    env: { ...inherited, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, output })));
}

async function devToken(url: string, client: string): Promise<string> {
  const res = await fetch(`${url}/v1/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ client }),
  });
  return ((await res.json()) as { token: string }).token;
}

async function withAdmin<T>(url: string, use: (admin: RedisClientType) => Promise<T>): Promise<T> {
  const admin: RedisClientType = createClient({ url });
  await admin.connect();
  try {
    return await use(admin);
  } finally {
    admin.destroy();
  }
}

const redisConfig = (url: string, prefix: string) => ({ store: { kind: "redis", redisUrl: url, prefix } });

describe("Redis loading its data set", () => {
  let redis: RedisProcess;
  let a: Provider | undefined;

  beforeAll(async () => {
    // DEBUG POPULATE fills the data set; key-load-delay (a Redis test setting) then holds the
    // server in LOADING until this test lifts it with CONFIG SET.
    redis = await RedisProcess.start("everysec", ["--enable-debug-command", "local"]);
  });
  afterAll(async () => {
    if (a) await stopAll([a]);
    await redis?.stop();
  });

  it("answers 503 unavailable with Retry-After while Redis answers LOADING, and serves again once it has loaded", async () => {
    a = await startProvider("a.example", redisConfig(redis.url, uniquePrefix()));
    const alice = await MlsClient.connect(a.url, "alice@a.example/phone");
    const groupId = await alice.createGroup();
    const token = await devToken(a.url, alice.id);
    expect((await get(`${a.url}/v1/groups/${groupId}`, token)).status).toBe(200);

    // A data set worth loading, rewritten into the AOF's RDB base (where key-load-delay applies).
    await withAdmin(redis.url, async (admin) => {
      await admin.sendCommand(["DEBUG", "POPULATE", "4000", "filler", "64"]);
      await admin.sendCommand(["BGREWRITEAOF"]);
      await until(
        "the AOF rewrite",
        () => admin.info("persistence"),
        (info) => /aof_rewrite_in_progress:0/.test(info) && /aof_rewrite_scheduled:0/.test(info),
      );
    });

    await redis.kill9();
    await redis.restart({
      args: ["--key-load-delay", "5000", "--loading-process-events-interval-bytes", "1024"],
      until: "answering",
    });
    expect(await rawCommand(redis.port, "PING")).toMatch(/^-LOADING/);

    const during = await until(
      "a request during LOADING",
      () => get(`${a!.url}/v1/groups/${groupId}`, token),
      (r) => r.status !== 200,
    );
    expect(during).toMatchObject({ status: 503, retryAfter: "1", body: { error: { code: "unavailable" } } });
    expect((await get(`${a.url}/readyz`)).status).toBe(503);
    expect(await rawCommand(redis.port, "PING")).toMatch(/^-LOADING/); // still loading: the 503s were LOADING

    expect(await rawCommand(redis.port, "CONFIG SET key-load-delay 0")).toBe("+OK");
    await redis.loaded();
    const after = await until(
      "a request after loading",
      () => get(`${a!.url}/v1/groups/${groupId}`, token),
      (r) => r.status === 200,
    );
    expect(after.body).toMatchObject({ groupId, epoch: 0 });
    // The data set came back whole (marker included): no store reset.
    expect(await get(`${a.url}/readyz`)).toMatchObject({ status: 200, body: { status: "ready" } });
  });
});

/** How many LOADING refusals Redis has answered so far (INFO errorstats; INFO itself is allowed while loading). */
async function loadingRefusals(port: number): Promise<number> {
  return Number(/errorstat_LOADING:count=(\d+)/.exec(await rawBulk(port, "INFO errorstats"))?.[1] ?? 0);
}

describe("a DS starting while Redis loads its data set", () => {
  let redis: RedisProcess;
  let ds: DeliveryService | undefined;

  beforeAll(async () => {
    redis = await RedisProcess.start("everysec", ["--enable-debug-command", "local"]);
  });
  afterAll(async () => {
    await ds?.close(); // also after a failed start: its Redis client must not keep reconnecting
    await redis?.stop();
  });

  it("waits for LOADING to end instead of failing, then starts", async () => {
    await withAdmin(redis.url, async (admin) => {
      await admin.sendCommand(["DEBUG", "POPULATE", "4000", "filler", "64"]);
      await admin.sendCommand(["BGREWRITEAOF"]);
      await until(
        "the AOF rewrite",
        () => admin.info("persistence"),
        (info) => /aof_rewrite_in_progress:0/.test(info) && /aof_rewrite_scheduled:0/.test(info),
      );
    });
    await redis.kill9();
    await redis.restart({
      args: ["--key-load-delay", "5000", "--loading-process-events-interval-bytes", "1024"],
      until: "answering",
    });
    const before = await loadingRefusals(redis.port);

    let settled = false;
    const config = loadConfig({
      overrides: { domain: "a.example", port: 0, logLevel: "silent", ...redisConfig(redis.url, uniquePrefix()) },
    });
    ds = await DeliveryService.create(config, { signingKey: await testKey() });
    const starting = ds.start().finally(() => (settled = true));
    starting.catch(() => {}); // awaited below; a failure must not go unhandled meanwhile
    // The DS was refused with LOADING more than once (it retried) and is still starting.
    await until(
      "the DS's attempts",
      () => loadingRefusals(redis.port),
      (n) => n >= before + 2,
    );
    expect(settled).toBe(false);

    expect(await rawCommand(redis.port, "CONFIG SET key-load-delay 0")).toBe("+OK");
    await starting;
    expect(await get(`${ds.url}/readyz`)).toMatchObject({ status: 200, body: { status: "ready" } });
  });
});

describe("whether Redis persists", () => {
  let aof: RedisProcess;
  const started: Provider[] = [];

  beforeAll(async () => {
    aof = await RedisProcess.start("everysec");
  });
  afterAll(async () => {
    await stopAll(started);
    await aof?.stop();
  });

  it('is reported by /readyz: AOF on, and nothing on (the test setup\'s Redis runs with appendonly no, save "")', async () => {
    const durable = await startProvider("a.example", redisConfig(aof.url, uniquePrefix()));
    const volatile = await startProvider("a.example", redisConfig(redisUrl(), uniquePrefix()));
    started.push(durable, volatile);
    expect(await get(`${durable.url}/readyz`)).toMatchObject({
      status: 200,
      body: { status: "ready", store: { kind: "redis", persistent: true, aof: true, rdb: false } },
    });
    expect(await get(`${volatile.url}/readyz`)).toMatchObject({
      status: 200,
      body: {
        status: "ready",
        store: { kind: "redis", persistent: false, aof: false, rdb: false, detail: 'appendonly no, save ""' },
      },
    });
  });

  it("with store.requirePersistence, starts on a persisting Redis and refuses one that persists nothing, in one line", async () => {
    const durable = await startProvider("a.example", {
      store: { kind: "redis", redisUrl: aof.url, prefix: uniquePrefix(), requirePersistence: true },
    });
    started.push(durable);
    expect((await get(`${durable.url}/readyz`)).status).toBe(200);

    const refused = await cli(["serve"], {
      MLSFEDGATE_STORE: "redis",
      MLSFEDGATE_REDIS_URL: redisUrl(),
      MLSFEDGATE_REDIS_PREFIX: uniquePrefix(),
      MLSFEDGATE_STORE__REQUIRE_PERSISTENCE: "true",
      MLSFEDGATE_PORT: String(await freePort()),
      MLSFEDGATE_LOG_LEVEL: "silent",
    });
    expect(refused.code).toBe(1);
    expect(refused.output.trim().split("\n")).toEqual([
      `config error: store.requirePersistence: the redis store persists nothing (appendonly no, save ""); turn on AOF or RDB snapshots, or set store.requirePersistence to false`,
    ]);
  });

  it("with store.requirePersistence, refuses the memory store", async () => {
    const config = loadConfig({ overrides: { port: 0, logLevel: "silent", store: { requirePersistence: true } } });
    const ds = await DeliveryService.create(config, { signingKey: await testKey() });
    try {
      await expect(ds.start()).rejects.toThrow(ConfigError);
      await expect(ds.start()).rejects.toThrow(/memory store persists nothing/);
    } finally {
      await ds.close();
    }
  });
});

describe("Redis killed and restarted empty", () => {
  let redis: RedisProcess;
  const started: Provider[] = [];

  beforeAll(async () => {
    redis = await RedisProcess.start("always");
  });
  afterAll(async () => {
    await stopAll(started);
    await redis?.stop();
  });

  it("fails /readyz and answers 503 store_reset on every replica until an operator runs `mls-fedgate store ack-reset`", async () => {
    const prefix = uniquePrefix();
    const [a1, a2] = [
      await startProvider("a.example", redisConfig(redis.url, prefix)),
      await startProvider("a.example", redisConfig(redis.url, prefix)),
    ];
    started.push(a1!, a2!);
    const alice = await MlsClient.connect(a1!.url, "alice@a.example/phone");
    const groupId = await alice.createGroup();
    await alice.send(groupId, "before the loss");
    const token = await devToken(a1!.url, alice.id);
    const marker = (await get(`${a1!.url}/readyz`)).body.store?.marker;
    expect(marker).toEqual(expect.any(String));
    expect((await get(`${a2!.url}/readyz`)).body.store?.marker).toBe(marker);

    await redis.kill9();
    redis.wipe();
    await redis.restart();

    for (const a of [a1!, a2!]) {
      const ready = await until(
        "/readyz after the loss",
        () => get(`${a.url}/readyz`),
        (r) => r.status !== 200,
      );
      expect(ready).toMatchObject({ status: 503, body: { error: { code: "store_reset" } } });
      expect(ready.body.error?.message).toMatch(/store ack-reset/);
      // Reads and writes alike: nothing the API would answer is true any more.
      expect(await get(`${a.url}/v1/groups/${groupId}`, token)).toMatchObject({
        status: 503,
        retryAfter: "30",
        body: { error: { code: "store_reset" } },
      });
    }
    await expect(alice.send(groupId, "after the loss")).rejects.toMatchObject({ status: 503, code: "store_reset" });

    const ack = await cli(["store", "ack-reset"], {
      MLSFEDGATE_STORE: "redis",
      MLSFEDGATE_REDIS_URL: redis.url,
      MLSFEDGATE_REDIS_PREFIX: prefix,
    });
    expect(ack).toMatchObject({
      code: 0,
      output: expect.stringMatching(/^acknowledged: reset detected at .* new store marker /),
    });

    for (const a of [a1!, a2!]) {
      const ready = await until(
        "/readyz after the acknowledgement",
        () => get(`${a.url}/readyz`),
        (r) => r.status === 200,
      );
      expect(ready.body.store?.marker).not.toBe(marker);
    }
    // The truth now: the group is gone; the DS works again from an empty store.
    expect(await get(`${a1!.url}/v1/groups/${groupId}`, token)).toMatchObject({
      status: 404,
      body: { error: { code: "unknown_group" } },
    });
    const again = await MlsClient.connect(a2!.url, "alice@a.example/tablet");
    await expect(again.createGroup()).resolves.toEqual(expect.any(String));
  });
});
