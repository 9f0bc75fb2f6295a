import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { ConfigError, loadConfig } from "../../src/config/load.js";
import { defaultConfig } from "../../src/config/defaults.js";
import { redisTopology } from "../../src/config/redis-topology.js";
import { webEnabled } from "../../src/config/schema.js";

describe("configuration", () => {
  it("ships config/default.json equal to the built-in defaults", () => {
    expect(JSON.parse(readFileSync("config/default.json", "utf8"))).toEqual(defaultConfig);
  });

  it("lets the environment override any key, with short aliases for the common ones", () => {
    const config = loadConfig({
      env: {
        MLSFEDGATE_PORT: "7200",
        MLSFEDGATE_HOST: "::1",
        MLSFEDGATE_DOMAIN: "z.example",
        MLSFEDGATE_STORE: "redis",
        MLSFEDGATE_REDIS_URL: "redis://127.0.0.1:6390",
        MLSFEDGATE_AUTH: "dev",
        MLSFEDGATE_LIMITS__BODY_BYTES: "4096",
        MLSFEDGATE_LIMITS__RATE_LIMIT__CLIENT_REQUESTS_PER_SECOND: "7",
        MLSFEDGATE_PEERS: '{"y.example":{"url":"http://127.0.0.1:7201"}}',
      },
    });
    expect(config).toMatchObject({
      port: 7200,
      host: "::1",
      domain: "z.example",
      store: { kind: "redis", redisUrl: "redis://127.0.0.1:6390" },
      limits: { bodyBytes: 4096, rateLimit: { clientRequestsPerSecond: 7 } },
      federation: { peers: { "y.example": { url: "http://127.0.0.1:7201" } } },
    });
    expect(Object.isFrozen(config.limits)).toBe(true);
  });

  it("ships a valid production example that refuses a store without persistence", () => {
    const config = loadConfig({ file: "config/production.example.json" });
    expect(config.store).toMatchObject({ kind: "redis", requirePersistence: true });
    expect(config.auth.mode).toBe("jwt");
    expect(loadConfig({ env: { MLSFEDGATE_STORE__REQUIRE_PERSISTENCE: "true" } }).store.requirePersistence).toBe(true);
    expect(loadConfig().store.requirePersistence).toBe(false);
    expect(loadConfig().store.trimHubLogs).toBe(true);
    expect(loadConfig({ env: { MLSFEDGATE_STORE__TRIM_HUB_LOGS: "false" } }).store.trimHubLogs).toBe(false);
  });

  it("reads a config file named by MLSFEDGATE_CONFIG and merges it over the defaults", () => {
    const config = loadConfig({ env: { MLSFEDGATE_CONFIG: "config/demo-a.json" } });
    expect(config.domain).toBe("a.example");
    expect(config.port).toBe(7101);
    expect(config.limits.bodyBytes).toBe(defaultConfig.limits.bodyBytes);
    // The demo providers accept core-crypto clients (docs/INTEROP.md).
    expect(config.identity.schemes).toEqual(["fedgate", "wire"]);
    expect(config.keyPackages.lastResortBySlot).toBe(true);
  });

  it("reads identity schemes and last resort by slot from the environment", () => {
    const config = loadConfig({
      env: { MLSFEDGATE_IDENTITY__SCHEMES: '["wire"]', MLSFEDGATE_KEY_PACKAGES__LAST_RESORT_BY_SLOT: "true" },
    });
    expect(config.identity.schemes).toEqual(["wire"]);
    expect(config.keyPackages.lastResortBySlot).toBe(true);
    expect(defaultConfig.identity.schemes).toEqual(["fedgate"]);
  });

  it("reads cors.origins and web.enabled from the environment; the messenger is on by default only with dev auth", () => {
    const config = loadConfig({
      env: { MLSFEDGATE_CORS__ORIGINS: '["https://app.example","http://127.0.0.1:8080"]', MLSFEDGATE_WEB__ENABLED: "false" },
    });
    expect(config.cors.origins).toEqual(["https://app.example", "http://127.0.0.1:8080"]);
    expect(webEnabled(config)).toBe(false);
    expect(loadConfig({ env: { MLSFEDGATE_CORS__ORIGINS: "*" } }).cors.origins).toBe("*");
    expect(webEnabled(loadConfig({}))).toBe(true);
    const jwt = { MLSFEDGATE_AUTH: "jwt", MLSFEDGATE_AUTH__ISSUER: "i", MLSFEDGATE_AUTH__AUDIENCE: "a" };
    const jwtEnv = { ...jwt, MLSFEDGATE_AUTH__PUBLIC_KEY: "k" };
    expect(webEnabled(loadConfig({ env: jwtEnv }))).toBe(false);
    expect(webEnabled(loadConfig({ env: { ...jwtEnv, MLSFEDGATE_WEB__ENABLED: "true" } }))).toBe(true);
    expect(loadConfig({ env: { MLSFEDGATE_CONFIG: "config/demo-b.json" } }).web.enabled).toBe(true);
  });

  it.each([
    [{ MLSFEDGATE_CORS__ORIGINS: '["https://app.example/"]' }, "cors.origins"],
    [{ MLSFEDGATE_CORS__ORIGINS: '["HTTPS://APP.EXAMPLE"]' }, "cors.origins"],
    [{ MLSFEDGATE_CORS__ORIGINS: "https://app.example" }, "cors.origins"],
    [{ MLSFEDGATE_WEB__ENABLED: "yes" }, "web.enabled"],
  ])("refuses %j naming the key %s", (env, key) => {
    expect(() => loadConfig({ env })).toThrow(ConfigError);
    try {
      loadConfig({ env });
    } catch (e) {
      expect((e as ConfigError).key.startsWith(key)).toBe(true);
    }
  });

  it.each([
    [{ MLSFEDGATE_STORE: "postgres" }, "store.kind"],
    [{ MLSFEDGATE_PORT: "http" }, "port"],
    [{ MLSFEDGATE_DOMAIN: "Not A Domain" }, "domain"],
    [{ MLSFEDGATE_LIMTS__BODY_BYTES: "1" }, "MLSFEDGATE_LIMTS__BODY_BYTES"],
    [{ MLSFEDGATE_AUTH: "jwt" }, "auth"],
    [{ MLSFEDGATE_FEDERATION__TOKEN_TTL_SECONDS: "300" }, "federation.tokenTtlSeconds"],
    [{ MLSFEDGATE_IDENTITY__SCHEMES: '["x509"]' }, "identity.schemes.0"],
    [{ MLSFEDGATE_IDENTITY__SCHEMES: "[]" }, "identity.schemes"],
    [{ MLSFEDGATE_IDENTITY__SCHEMES: '["wire","wire"]' }, "identity.schemes"],
  ])("refuses %j naming the key %s", (env, key) => {
    let error: unknown;
    try {
      loadConfig({ env });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).key).toBe(key);
  });

  it("selects a Redis Cluster or a Sentinel set from MLSFEDGATE_REDIS_CLUSTER / MLSFEDGATE_REDIS_SENTINEL", () => {
    const cluster = loadConfig({
      env: { MLSFEDGATE_STORE: "redis", MLSFEDGATE_REDIS_CLUSTER: "redis://127.0.0.1:7001, redis://:pw@127.0.0.1:7002" },
    });
    expect(redisTopology(cluster.store)).toEqual({
      kind: "cluster",
      rootNodes: ["redis://127.0.0.1:7001", "redis://:pw@127.0.0.1:7002"],
    });
    const sentinel = loadConfig({
      env: {
        MLSFEDGATE_STORE: "redis",
        MLSFEDGATE_REDIS_URL: "redis://:pw@ignored:1",
        MLSFEDGATE_REDIS_SENTINEL: "mymaster@127.0.0.1:26379,[::1]:26380",
        MLSFEDGATE_STORE__WAIT_REPLICAS: "1",
      },
    });
    expect(redisTopology(sentinel.store)).toEqual({
      kind: "sentinel",
      name: "mymaster",
      sentinels: [
        { host: "127.0.0.1", port: 26379 },
        { host: "::1", port: 26380 },
      ],
      nodeUrl: "redis://:pw@ignored:1",
    });
    expect(sentinel.store.waitReplicas).toBe(1);
    expect(redisTopology(loadConfig({ env: {} }).store)).toEqual({ kind: "single", url: "redis://127.0.0.1:6379" });
  });

  it.each([
    [{ MLSFEDGATE_REDIS_CLUSTER: "redis://a:1", MLSFEDGATE_REDIS_SENTINEL: "m@a:1" }, "store"],
    [{ MLSFEDGATE_REDIS_CLUSTER: "http://127.0.0.1:7001" }, "store.redisCluster"],
    [{ MLSFEDGATE_REDIS_CLUSTER: "redis://127.0.0.1" }, "store.redisCluster"],
    [{ MLSFEDGATE_REDIS_SENTINEL: "127.0.0.1:26379" }, "store.redisSentinel"],
    [{ MLSFEDGATE_REDIS_SENTINEL: "m@127.0.0.1:99999" }, "store.redisSentinel"],
    [{ MLSFEDGATE_STORE__WAIT_REPLICAS: "-1" }, "store.waitReplicas"],
  ])("refuses the Redis topology %j naming %s", (env, key) => {
    expect(() => loadConfig({ env })).toThrow(expect.objectContaining({ name: "ConfigError", key }));
  });

  it("stops the process with one clear line on a bad config", () => {
    const run = spawnSync(process.execPath, ["--import", "tsx", "src/cli.ts", "serve"], {
      env: { ...process.env, MLSFEDGATE_STORE: "postgres" },
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(run.status).toBe(1);
    const lines = run.stderr
      .split("\n")
      .filter((l) => l.trim() && !l.includes("ExperimentalWarning") && !l.includes("--trace-warnings"));
    expect(lines).toEqual([expect.stringMatching(/^config error: store\.kind: /)]);
  });
});
