/**
 * There is no Docker engine in CI, so no image is built here. This checks what can be checked
 * without one: docker/compose.yaml parses and has the documented shape (Redis with AOF, provider A
 * as two replicas and provider B on one Redis under different prefixes, configs and keys mounted
 * from config/), the mounted configs are valid DS configs that point at the compose services, and
 * docker/Dockerfile is the documented multi-stage, non-root build of the CLI the package ships.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parse } from "yaml";
import { loadConfig } from "../../src/config/load.js";

const root = resolve(import.meta.dirname ?? ".", "../..");
const dockerDir = join(root, "docker");

interface Service {
  build?: { context: string; dockerfile: string };
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  deploy?: { replicas?: number };
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}

const compose = parse(readFileSync(join(dockerDir, "compose.yaml"), "utf8"), { merge: true }) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};
const dockerfile = readFileSync(join(dockerDir, "Dockerfile"), "utf8");
const providers = ["provider-a", "provider-b"] as const;

/** host path → container path of a service's bind mounts (relative host paths are relative to docker/). */
function mounts(service: Service): Map<string, string> {
  return new Map(
    (service.volumes ?? [])
      .map((v) => v.split(":"))
      .filter(([host]) => host!.startsWith("."))
      .map(([host, container]) => [resolve(dockerDir, host!), container!]),
  );
}

function mountedConfig(service: Service) {
  const target = service.environment?.MLSFEDGATE_CONFIG;
  const host = [...mounts(service)].find(([, container]) => container === target)?.[0];
  if (!target || !host) throw new Error(`MLSFEDGATE_CONFIG ${target} is not a mounted file`);
  return { host, config: loadConfig({ file: host }) };
}

describe("docker/compose.yaml", () => {
  it("runs Redis with AOF (appendonly yes, appendfsync everysec) on a volume, with a health check", () => {
    const redis = compose.services.redis!;
    const args = redis.command!.join(" ");
    expect(args).toContain("--appendonly yes");
    expect(args).toContain("--appendfsync everysec");
    expect(redis.volumes).toContain("redis-data:/data");
    expect(Object.keys(compose.volumes)).toContain("redis-data");
    expect(redis.healthcheck?.test.join(" ")).toContain("redis-cli ping");
  });

  it("runs provider A as two replicas and provider B, built from docker/Dockerfile, after Redis is healthy", () => {
    expect(compose.services["provider-a"]!.deploy?.replicas).toBe(2);
    for (const name of providers) {
      const s = compose.services[name]!;
      expect(s.build).toEqual({ context: "..", dockerfile: "docker/Dockerfile" });
      expect(existsSync(join(resolve(dockerDir, s.build!.context), s.build!.dockerfile))).toBe(true);
      expect(s.depends_on?.redis?.condition).toBe("service_healthy");
      expect(s.healthcheck?.test.join(" ")).toContain("/readyz");
      expect(s.ports?.length).toBeGreaterThan(0);
    }
  });

  it("mounts a valid config and the keys directory from config/ into each provider", () => {
    for (const name of providers) {
      const s = compose.services[name]!;
      const { host, config } = mountedConfig(s);
      expect(dirname(host)).toBe(join(root, "config"));
      const keysDir = [...mounts(s)].find(([h]) => h === join(root, "config", "keys"));
      expect(keysDir?.[1]).toBe(dirname(config.federation.signingKeyFile));
      expect(config.federation.generateKeyIfMissing).toBe(false);
      expect(config.host).toBe("0.0.0.0");
    }
  });

  it("puts both providers on the one Redis service under different prefixes, and points each at the other's service", () => {
    const [a, b] = providers.map((name) => mountedConfig(compose.services[name]!).config);
    for (const c of [a!, b!]) {
      expect(c.store.kind).toBe("redis");
      expect(new URL(c.store.redisUrl).hostname).toBe("redis");
    }
    expect(a!.store.prefix).not.toBe(b!.store.prefix);
    expect(a!.domain).toBe("a.example");
    expect(b!.domain).toBe("b.example");
    const peerHost = (c: typeof a, domain: string) => new URL(c!.federation.peers[domain]!.url);
    expect(peerHost(a, "b.example").hostname).toBe("provider-b");
    expect(peerHost(b, "a.example").hostname).toBe("provider-a");
    expect(Number(peerHost(a, "b.example").port)).toBe(b!.port);
    expect(Number(peerHost(b, "a.example").port)).toBe(a!.port);
  });
});

describe("docker/Dockerfile", () => {
  const stages = dockerfile.split("\n").filter((l) => l.startsWith("FROM "));

  it("builds in one stage and runs production dependencies only in another", () => {
    expect(stages).toHaveLength(2);
    const [build, runtime] = dockerfile.split(/^FROM /m).slice(1);
    expect(build).toMatch(/RUN npm ci\b/);
    expect(build).toContain("RUN npm run build");
    expect(runtime).toMatch(/RUN npm ci --omit=dev/);
    expect(runtime).toContain("COPY --from=build /app/dist ./dist");
  });

  it("runs the CLI the package ships as a non-root user, with EXPOSE and a /healthz health check", () => {
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { bin: Record<string, string> };
    expect(dockerfile).toContain('CMD ["node", "dist/src/cli.js", "serve"]');
    expect(pkg.bin["mls-fedgate"]).toBe("dist/src/cli.js");
    expect(existsSync(join(root, "src", "cli.ts"))).toBe(true);
    const user = /^USER (\S+)/m.exec(dockerfile)?.[1];
    expect(user).toBeDefined();
    expect(["root", "0"]).not.toContain(user);
    expect(dockerfile).toMatch(/^EXPOSE 7100$/m);
    expect(dockerfile).toMatch(/^HEALTHCHECK [\s\S]*\/healthz/m);
    const port = Number(/MLSFEDGATE_PORT=(\d+)/.exec(dockerfile)?.[1]);
    for (const name of providers) expect(compose.services[name]!.ports!.every((p) => p.endsWith(`:${port}`))).toBe(true);
  });
});
