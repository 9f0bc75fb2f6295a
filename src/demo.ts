import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { MlsClient } from "./client/index.js";
import { loadConfig } from "./config/load.js";
import { DeliveryService } from "./index.js";
import { systemClock } from "./clock.js";

/** Finds config/ whether we run from src/ (tsx) or dist/src/ (built). */
function configDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, "config", "demo-a.json"))) return join(dir, "config");
    dir = resolve(dir, "..");
  }
  return resolve("config");
}

/**
 * Two providers (a.example, b.example) in one process on loopback, memory stores, and a scripted
 * conversation between alice@a and bob@b and carol@b. Resolves to a function that stops both.
 */
export async function runDemo(opts: {
  print: (line: string) => void;
  ports?: [number, number];
  /** Only start the two providers and print their web messenger URLs (no scripted conversation). */
  web?: boolean;
}): Promise<() => Promise<void>> {
  const { print } = opts;
  const dir = configDir();
  const quiet = pino({ level: "warn" });
  const [portA, portB] = opts.ports ?? [7101, 7102];
  const cfgA = loadConfig({
    file: join(dir, "demo-a.json"),
    overrides: {
      port: portA,
      federation: {
        signingKeyFile: join(dir, "keys", "a.example.jwk.json"),
        peers: { "b.example": { url: `http://127.0.0.1:${portB}` } },
      },
    },
  });
  const cfgB = loadConfig({
    file: join(dir, "demo-b.json"),
    overrides: {
      port: portB,
      federation: {
        signingKeyFile: join(dir, "keys", "b.example.jwk.json"),
        peers: { "a.example": { url: `http://127.0.0.1:${portA}` } },
      },
    },
  });
  const a = await (await DeliveryService.create(cfgA, { logger: quiet })).start();
  const b = await (await DeliveryService.create(cfgB, { logger: quiet })).start();
  const stop = async () => {
    await Promise.all([a.close(), b.close()]);
  };
  if (opts.web) {
    print(`a.example messenger: ${a.url}/app/   (sign in as e.g. alice@a.example/web)`);
    print(`b.example messenger: ${b.url}/app/   (sign in as e.g. bob@b.example/web)`);
    print("Open each in its own browser window; add bob@b.example from alice's group. Ctrl-C stops both.");
    print("Calls: in the group press Start call on one side and Join call on the other (camera and microphone asked).");
    return stop;
  }
  try {
    print(`provider a.example  ${a.url}   provider b.example  ${b.url}`);
    const alice = await MlsClient.connect(a.url, "alice@a.example/phone");
    const bob = await MlsClient.connect(b.url, "bob@b.example/laptop");
    const carol = await MlsClient.connect(b.url, "carol@b.example/phone");
    for (const c of [alice, bob, carol]) {
      const up = await c.publishKeyPackages(5, { lastResort: true });
      print(`1. ${c.id} uploads ${up.accepted.filter((k) => !k.lastResort).length} KeyPackages + 1 last-resort to its own DS`);
    }
    const peer = await alice.api.peer("b.example");
    print(
      `2. alice asks a.example about b.example: suites ${peer.cipherSuites.join(",")}, common ${peer.commonCipherSuites.join(",")}`,
    );
    const claim = await alice.api.claim("bob@b.example", [1]);
    print(
      `3. alice claims bob@b.example through a.example (server fan-out): suite ${claim.cipherSuite}, ${claim.bundles.length} bundle(s)`,
    );
    const groupId = await alice.createGroup();
    print(`4. alice creates group ${groupId} on a.example (the hub)`);
    const added = await alice.addUsers(groupId, ["bob@b.example", "carol@b.example"]);
    print(`5. alice adds ${added.added.join(" and ")} in one commit (epoch 1)`);
    for (const c of [bob, carol]) {
      await c.syncUntil((ev) => ev.some((e) => e.kind === "joined"));
      print(`6. ${c.id} finds the Welcome in its inbox on b.example and joins`);
    }
    const sentAt = systemClock.nowMs();
    await alice.send(groupId, "Hello from a.example!");
    const got = await bob.syncUntil((ev) => ev.some((e) => e.kind === "message"));
    const latency = systemClock.nowMs() - sentAt;
    const msg = got.find((e) => e.kind === "message");
    print(
      `7. bob decrypts on b.example: "${msg?.kind === "message" ? msg.text : "?"}" (${latency} ms from alice's send to bob's plaintext)`,
    );
    await bob.send(groupId, "Hi alice, bob here on b.example");
    const back = await alice.syncUntil((ev) => ev.some((e) => e.kind === "message"));
    const reply = back.find((e) => e.kind === "message");
    print(`8. alice decrypts on a.example: "${reply?.kind === "message" ? reply.text : "?"}"`);
    await carol.syncUntil((ev) => ev.some((e) => e.kind === "message" && e.sender === bob.id));
    print(`9. carol (same provider as bob) got both messages`);
    print(`10. alice and bob commit at the same epoch at the same moment…`);
    const race = await Promise.all([alice.update(groupId), bob.update(groupId)]);
    const loser = race[0].attempts > 1 ? "alice" : "bob";
    print(
      `    one commit won epoch ${Math.min(race[0].epoch, race[1].epoch)}; ${loser} got stale_epoch, caught up and committed epoch ${Math.max(race[0].epoch, race[1].epoch)}`,
    );
    for (const c of [alice, bob, carol]) await c.sync({ waitMs: 300 });
    await carol.syncUntil((ev) => ev.some((e) => e.kind === "commit" && e.epoch === 3)).catch(() => []);
    const [logA, logB] = await Promise.all([alice.api.commitLog(groupId), bob.api.commitLog(groupId)]);
    const same = JSON.stringify(logA.entries) === JSON.stringify(logB.entries);
    print(`11. commit logs on a.example and b.example: ${logA.entries.length} entries, ${same ? "identical" : "DIFFERENT"}`);
    await carol.send(groupId, "all in sync after the race");
    await alice.syncUntil((ev) => ev.some((e) => e.kind === "message" && e.sender === carol.id));
    print(`12. carol's message after the race decrypts at alice: everyone is on epoch ${alice.epoch(groupId)}`);
    print("demo complete");
  } catch (e) {
    await stop();
    throw e;
  }
  return stop;
}
