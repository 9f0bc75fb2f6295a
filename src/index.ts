import type { Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { loadConfig, type LoadOptions } from "./config/load.js";
import type { Config } from "./config/schema.js";
import { AppContext, type ContextOverrides } from "./context.js";
import { buildApp } from "./http/app.js";
import { createHttpServer } from "./http/server.js";
import { mimiApp } from "./federation/mimi/routes.js";
import { serverTlsOptions } from "./federation/mimi/tls.js";
import { ConfigError } from "./config/load.js";
import type { Clock } from "./domain/types.js";
import { transientRedisReply } from "./store/errors.js";

/** Entries one 30-s sweep trims per group at most (a backlog goes over several sweeps). */
const LOG_TRIM_PER_GROUP = 10_000;

/** How long start() waits for a store that is still loading its data set (LOADING). */
const STORE_STARTUP_WAIT_MS = 120_000;

async function untilLoaded<T>(clock: Clock, step: () => Promise<T>): Promise<T> {
  const deadline = clock.nowMs() + STORE_STARTUP_WAIT_MS;
  for (;;) {
    try {
      return await step();
    } catch (err) {
      if (transientRedisReply(err) !== "LOADING" || clock.nowMs() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export { loadConfig, ConfigError } from "./config/load.js";
export type { Config } from "./config/schema.js";
export { DsError, type ErrorCode } from "./errors.js";
export type { ContextOverrides } from "./context.js";

/** The library: a DeliveryService is created from a config, started (listens), and closed gracefully. */
export class DeliveryService {
  private server?: Server;
  private mimiServer?: Server;
  private recovery?: NodeJS.Timeout;

  private constructor(readonly ctx: AppContext) {}

  static async create(config: Readonly<Config> | LoadOptions = {}, overrides: ContextOverrides = {}): Promise<DeliveryService> {
    const cfg = "domain" in config ? (config as Readonly<Config>) : loadConfig(config as LoadOptions);
    return new DeliveryService(await AppContext.fromConfig(cfg, { overrides }));
  }

  get config(): Readonly<Config> {
    return this.ctx.config;
  }

  /** The base URL this DS listens on (after start). */
  get url(): string {
    const addr = this.server?.address() as AddressInfo | null | undefined;
    if (!addr) throw new Error("DeliveryService is not listening");
    return `http://${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}`;
  }

  /** The base URL of the MIMI listener (mutually authenticated TLS), when `federation.mimi.enabled`. */
  get mimiUrl(): string | undefined {
    const addr = this.mimiServer?.address() as AddressInfo | null | undefined;
    return addr ? `https://${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}` : undefined;
  }

  async start(): Promise<this> {
    await this.checkStore();
    const requirePersistence = this.ctx.config.store.requirePersistence;
    const app = buildApp(this.ctx, { ready: () => this.ctx.integrity.readiness(requirePersistence) });
    await new Promise<void>((resolve, reject) => {
      const server = createHttpServer(this.ctx, app);
      server.once("error", reject);
      server.listen(this.ctx.config.port, this.ctx.config.host, () => resolve());
      this.server = server;
    });
    const mimi = this.ctx.mimi;
    if (mimi) {
      const { host, port } = this.ctx.config.federation.mimi;
      await new Promise<void>((resolve, reject) => {
        const { limits } = this.ctx.config;
        // The same edge limits as the main listener (docs/SECURITY.md): header and request timeouts, a connection cap.
        const server = createHttpsServer(
          { ...serverTlsOptions(mimi.tls), headersTimeout: limits.headersTimeoutMs, requestTimeout: limits.requestTimeoutMs },
          mimiApp(this.ctx, mimi.tls),
        );
        server.keepAliveTimeout = 65_000;
        server.maxConnections = limits.maxConnections;
        server.listen(port, host, () => resolve());
        server.once("error", reject);
        this.mimiServer = server;
      });
    }
    this.ctx.outbox.start();
    await this.ctx.dispatcher.recover().catch((err: unknown) => this.ctx.log.error({ err }, "fan-out recovery failed"));
    this.recovery = setInterval(() => {
      void this.ctx.dispatcher.recover().catch((err: unknown) => this.ctx.log.error({ err }, "fan-out recovery failed"));
      const { trimHubLogs, logRetentionMs } = this.ctx.config.store;
      if (trimHubLogs)
        void this.ctx.store
          .trimExpiredLogs(this.ctx.clock.nowMs() - logRetentionMs, LOG_TRIM_PER_GROUP)
          .catch((err: unknown) => this.ctx.log.error({ err }, "log retention trim failed"));
    }, 30_000);
    this.recovery.unref();
    return this;
  }

  /**
   * Before listening: report whether the store persists (and refuse to start without it when
   * store.requirePersistence is on), and check its marker (store/integrity.ts). A Redis still
   * loading its data set answers LOADING: wait for it, within STORE_STARTUP_WAIT_MS.
   */
  private async checkStore(): Promise<void> {
    const { store, integrity, log, config, clock } = this.ctx;
    const report = await untilLoaded(clock, () => integrity.persistence());
    log.info({ store: store.kind, persistent: report.persistent, detail: report.detail }, "store persistence");
    if (config.store.requirePersistence && report.persistent !== true) {
      const what = report.persistent === false ? "persists nothing" : "does not say whether it persists";
      throw new ConfigError(
        "store.requirePersistence",
        `the ${store.kind} store ${what} (${report.detail}); turn on AOF or RDB snapshots, or set store.requirePersistence to false`,
      );
    }
    await untilLoaded(clock, () => integrity.check());
    integrity.watch();
  }

  /** Graceful: stop accepting, let in-flight requests finish, stop the outbox, close the store. */
  async close(): Promise<void> {
    if (this.recovery) clearInterval(this.recovery);
    if (this.mimiServer) {
      const server = this.mimiServer;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 2000).unref();
      });
      this.mimiServer = undefined;
    }
    if (this.server) {
      const server = this.server;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // Long-polls and SSE streams would hold the close open; end them after a grace period.
        setTimeout(() => server.closeAllConnections(), 2000).unref();
      });
      this.server = undefined;
    }
    await this.ctx.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
