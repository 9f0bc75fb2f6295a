import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { Clock } from "../domain/types.js";
import { DsError } from "../errors.js";
import type { PersistenceReport, Store, StoreMarker, StoreResetFlag } from "./port.js";

/**
 * Does the store still hold what it acknowledged? A marker is written at first start; a replica
 * that has seen the marker and later finds it gone (Redis restarted without its AOF/RDB, flushed,
 * replaced) records a reset flag in the store, and from then on every replica refuses the API
 * with 503 `store_reset` and fails /readyz, until an operator acknowledges the loss
 * (`mls-fedgate store ack-reset`, which writes a new marker). Without this, the DS would silently
 * start over: groups `unknown_group`, acknowledged messages gone, and /readyz still ready.
 *
 * What it cannot see: when every replica restarts together with an empty Redis, no process
 * remembers the old marker, and the empty store looks like a first start (docs/OPERATIONS.md).
 */
export type IntegrityState =
  | { kind: "ok"; marker: StoreMarker }
  | { kind: "reset"; reset: StoreResetFlag }
  /** Not checked yet, or the last check could not reach the store. */
  | { kind: "unknown" };

export interface StoreReadiness {
  kind: Store["kind"];
  persistent: boolean | null;
  aof?: boolean;
  rdb?: boolean;
  detail: string;
  marker?: string;
}

/** How often a running replica re-reads the marker (also on every reconnect and every /readyz). */
export const INTEGRITY_CHECK_INTERVAL_MS = 5000;

export class StoreIntegrity {
  private known?: StoreMarker;
  private current: IntegrityState = { kind: "unknown" };
  private timer?: NodeJS.Timeout;
  private checking?: Promise<IntegrityState>;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  get state(): IntegrityState {
    return this.current;
  }

  /** True while writes must be refused (a detected reset not yet acknowledged). */
  get isReset(): boolean {
    return this.current.kind === "reset";
  }

  persistence(): Promise<PersistenceReport> {
    return this.store.persistence();
  }

  /** The refusal every API call gets while a reset is not acknowledged. */
  resetError(): DsError | undefined {
    if (this.current.kind !== "reset") return undefined;
    const { detectedAt, reason } = this.current.reset;
    return new DsError(
      "store_reset",
      `the store lost its data (${reason}); an operator must acknowledge it (mls-fedgate store ack-reset)`,
      { detectedAt, retryAfter: 30 },
    );
  }

  /**
   * /readyz: the store answers, its marker is intact and (when required) it persists. Returns what
   * /readyz reports about the store; throws the DsError /readyz answers with.
   */
  async readiness(requirePersistence: boolean): Promise<StoreReadiness> {
    await this.store.ping();
    const state = await this.check();
    const refused = this.resetError();
    if (refused) throw refused;
    const p = await this.store.persistence();
    if (requirePersistence && p.persistent !== true) {
      throw new DsError("unavailable", `the store does not persist (${p.detail}) and store.requirePersistence is on`);
    }
    return {
      kind: this.store.kind,
      persistent: p.persistent ?? null,
      ...(p.aof !== undefined ? { aof: p.aof } : {}),
      ...(p.rdb !== undefined ? { rdb: p.rdb } : {}),
      detail: p.detail,
      ...(state.kind === "ok" ? { marker: state.marker.id } : {}),
    };
  }

  /** Re-reads marker and reset flag (concurrent callers share one read). */
  check(): Promise<IntegrityState> {
    this.checking ??= this.readState().finally(() => (this.checking = undefined));
    return this.checking;
  }

  /** Periodic checks and one after every reconnect; the first check is the caller's (start). */
  watch(): void {
    this.store.onReconnect(() => void this.check().catch(() => {}));
    this.timer = setInterval(() => void this.check().catch(() => {}), INTEGRITY_CHECK_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private async readState(): Promise<IntegrityState> {
    try {
      this.current = await this.decide();
    } catch (err) {
      this.current = this.current.kind === "reset" ? this.current : { kind: "unknown" };
      throw err;
    }
    return this.current;
  }

  private async decide(): Promise<IntegrityState> {
    const { marker, reset } = await this.store.readIntegrity();
    if (reset) return { kind: "reset", reset };
    if (!marker) {
      if (this.known) return this.flag(`the store marker ${this.known.id} is gone: the store came back empty`);
      const fresh: StoreMarker = { id: randomUUID(), createdAt: this.clock.nowMs() };
      if (await this.store.initMarker(fresh)) {
        this.log.info({ marker: fresh.id }, "store marker created (first start on this store)");
        this.known = fresh;
        return { kind: "ok", marker: fresh };
      }
      return this.decide(); // another replica wrote it first
    }
    if (this.known && marker.id !== this.known.id && !marker.acknowledgedReset) {
      return this.flag(`the store marker changed from ${this.known.id} to ${marker.id} without an acknowledgement`);
    }
    if (this.known && marker.id !== this.known.id)
      this.log.warn({ marker: marker.id }, "store reset acknowledged; writes resume");
    this.known = marker;
    return { kind: "ok", marker };
  }

  private async flag(reason: string): Promise<IntegrityState> {
    const reset: StoreResetFlag = { detectedAt: this.clock.nowMs(), reason };
    await this.store.flagReset(reset);
    this.log.error({ reason }, "store reset detected: refusing writes until `mls-fedgate store ack-reset`");
    const stored = (await this.store.readIntegrity()).reset;
    return { kind: "reset", reset: stored ?? reset };
  }
}

/** The operator's acknowledgement (`mls-fedgate store ack-reset`): the data is gone, start over from here. */
export async function acknowledgeStoreReset(
  store: Store,
  clock: Clock,
): Promise<{ previous?: StoreResetFlag; marker: StoreMarker }> {
  const { reset } = await store.readIntegrity();
  const marker: StoreMarker = { id: randomUUID(), createdAt: clock.nowMs(), acknowledgedReset: true };
  await store.acknowledgeReset(marker);
  return { ...(reset ? { previous: reset } : {}), marker };
}
