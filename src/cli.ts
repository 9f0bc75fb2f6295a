#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { ConfigError, DeliveryService, loadConfig } from "./index.js";
import { writeSigningKey } from "./federation/keys.js";

const program = new Command("mls-fedgate").description("Federated MLS Delivery Service");

program
  .command("serve")
  .description("run a Delivery Service")
  .option("-c, --config <file>", "JSON config file (or MLSFEDGATE_CONFIG)")
  .action(async (opts: { config?: string }) => {
    const config = loadConfig({ env: process.env, ...(opts.config ? { file: opts.config } : {}) });
    const ds = await DeliveryService.create(config, { processMetrics: true });
    await ds.start();
    ds.ctx.log.info({ url: ds.url, store: config.store.kind, auth: config.auth.mode }, "mls-fedgate listening");
    process.stdout.write(
      `mls-fedgate ${config.domain} listening on ${ds.url} (store: ${config.store.kind}, auth: ${config.auth.mode})\n`,
    );
    onSignals(() => ds.close());
  });

program
  .command("keygen")
  .description("write a new federation signing key (private JWK) to a file")
  .requiredOption("-o, --out <file>", "where to write the key (refuses to overwrite)")
  .option("--alg <alg>", "EdDSA (Ed25519) or ES256", "EdDSA")
  .action(async (opts: { out: string; alg: string }) => {
    if (opts.alg !== "EdDSA" && opts.alg !== "ES256") throw new ConfigError("--alg", "must be EdDSA or ES256");
    const jwk = await writeSigningKey(opts.out, opts.alg);
    process.stdout.write(`wrote ${opts.alg} key ${jwk.kid} to ${opts.out}\n`);
  });

const storeCommand = program.command("store").description("inspect the store, acknowledge a detected store reset");

storeCommand
  .command("status")
  .description("print whether the store persists, its marker, and any detected reset")
  .option("-c, --config <file>", "JSON config file (or MLSFEDGATE_CONFIG)")
  .action(async (opts: { config?: string }) => {
    const { openStore } = await import("./store/open.js");
    await using store = await openStore(loadConfig({ env: process.env, ...(opts.config ? { file: opts.config } : {}) }));
    const [persistence, integrity] = [await store.persistence(), await store.readIntegrity()];
    process.stdout.write(JSON.stringify({ kind: store.kind, persistence, ...integrity }, null, 2) + "\n");
  });

storeCommand
  .command("ack-reset")
  .description("acknowledge that the store lost its data: write a new marker so the DS accepts writes again")
  .option("-c, --config <file>", "JSON config file (or MLSFEDGATE_CONFIG)")
  .action(async (opts: { config?: string }) => {
    const { openStore } = await import("./store/open.js");
    const { acknowledgeStoreReset } = await import("./store/integrity.js");
    const { systemClock } = await import("./domain/types.js");
    await using store = await openStore(loadConfig({ env: process.env, ...(opts.config ? { file: opts.config } : {}) }));
    const { previous, marker } = await acknowledgeStoreReset(store, systemClock);
    const what = previous
      ? `reset detected at ${new Date(previous.detectedAt).toISOString()} (${previous.reason})`
      : "no reset was flagged";
    process.stdout.write(`acknowledged: ${what}; new store marker ${marker.id}; running replicas resume within seconds\n`);
  });

program
  .command("demo")
  .description("start providers a.example and b.example on loopback and run a scripted conversation")
  .option("--keep", "keep both providers running after the script")
  .option("--web", "only start both providers and print their web messenger URLs (/app/); runs until Ctrl-C")
  .action(async (opts: { keep?: boolean; web?: boolean }) => {
    const { runDemo } = await import("./demo.js");
    const stop = await runDemo({ print: (line) => process.stdout.write(line + "\n"), web: opts.web ?? false });
    if (opts.keep || opts.web) onSignals(stop);
    else await stop();
  });

program
  .command("conformance")
  .description("run the cross-provider checks against two running deployments")
  .requiredOption("--a <url>", "base URL of provider A's DS")
  .requiredOption("--b <url>", "base URL of provider B's DS")
  .option("--token-a <json>", 'tokens for A\'s clients as JSON {"client": "token"} (when dev tokens are off)')
  .option("--token-b <json>", "tokens for B's clients, likewise")
  .option(
    "--core-crypto <side>",
    "put Wire core-crypto clients on side a, b or both (needs dev dependencies; see docs/INTEROP.md)",
  )
  .option("--core-crypto-adapter <module>", "the core-crypto test adapter to load", "test/helpers/core-crypto.ts")
  .option("--protocol <binding>", 'the binding A and B speak to each other: "fedgate" or "mimi"', "fedgate")
  .option("--mimi-a <url>", "with --protocol mimi: A's MIMI listener (https), for the directory and mTLS checks")
  .option("--mimi-b <url>", "with --protocol mimi: B's MIMI listener (https)")
  .option("--mimi-ca <file>", "PEM of the CA that issued the MIMI listeners' certificates")
  .action(
    async (opts: {
      a: string;
      b: string;
      tokenA?: string;
      tokenB?: string;
      coreCrypto?: string;
      coreCryptoAdapter: string;
      protocol: string;
      mimiA?: string;
      mimiB?: string;
      mimiCa?: string;
    }) => {
      if (opts.protocol !== "fedgate" && opts.protocol !== "mimi") throw new Error("--protocol must be fedgate or mimi");
      const { runConformance, printTable } = await import("./client/conformance.js");
      const { loadCoreCryptoAdapter } = await import("./client/conformance-adapter.js");
      const other = opts.coreCrypto ? await loadCoreCryptoAdapter(opts.coreCrypto, opts.coreCryptoAdapter) : undefined;
      const results = await runConformance({
        a: opts.a,
        b: opts.b,
        ...(opts.tokenA ? { tokensA: JSON.parse(opts.tokenA) as Record<string, string> } : {}),
        ...(opts.tokenB ? { tokensB: JSON.parse(opts.tokenB) as Record<string, string> } : {}),
        ...(other ? { other } : {}),
        protocol: opts.protocol,
        ...(opts.mimiA ? { mimiA: opts.mimiA } : {}),
        ...(opts.mimiB ? { mimiB: opts.mimiB } : {}),
        ...(opts.mimiCa ? { mimiCa: readFileSync(opts.mimiCa, "utf8") } : {}),
      });
      process.stdout.write(printTable(results) + "\n");
      process.exitCode = results.every((r) => r.ok) ? 0 : 1;
    },
  );

function onSignals(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`${signal}: shutting down\n`);
    stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
}

program.parseAsync(process.argv).catch((e: unknown) => {
  // One clear line for configuration problems, a stack for anything unexpected.
  if (e instanceof ConfigError) process.stderr.write(`${e.message}\n`);
  else process.stderr.write(`mls-fedgate: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
