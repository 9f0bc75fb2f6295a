import type { Clock } from "./types.js";
import type { RevocationStore } from "../store/port.js";

/** Cached answers at most; the oldest goes first when full (a cache miss only costs one store read). */
const CACHE_MAX = 50_000;

/**
 * Deleted devices. Deleting a device records its deletion time in the shared store, so on every
 * replica a token issued before that moment is refused, and the device cannot come back by itself:
 * only a token issued after the deletion (which its user's identity provider must grant) works.
 * The record lives as long as a token may (`ttlMs` = the longest token lifetime): older tokens
 * have expired by then anyway.
 *
 * Each replica caches the store's answer per client for `cacheMs` (bounded), so a busy client
 * costs one store read per `cacheMs`; another replica refuses a deleted device within `cacheMs`,
 * the replica that deleted it at once.
 */
export class DeviceRevocations {
  private readonly cache = new Map<string, { revokedAtMs: number | undefined; checkedAtMs: number }>();

  constructor(
    private readonly store: RevocationStore,
    private readonly clock: Clock,
    private readonly ttlMs: number,
    private readonly cacheMs: number,
  ) {}

  /** Records the deletion of `client` now; returns the moment recorded (ms). */
  async revoke(client: string): Promise<number> {
    const at = this.clock.nowMs();
    await this.store.revokeDevice(client, at, this.ttlMs);
    this.remember(client, at);
    return at;
  }

  /** When `client` was last deleted (ms), if within the token lifetime. */
  async revokedAt(client: string): Promise<number | undefined> {
    const now = this.clock.nowMs();
    const hit = this.cache.get(client);
    if (hit && now - hit.checkedAtMs < this.cacheMs) return hit.revokedAtMs;
    const at = await this.store.deviceRevokedAt(client);
    this.remember(client, at);
    return at;
  }

  private remember(client: string, revokedAtMs: number | undefined): void {
    this.cache.delete(client);
    if (this.cache.size >= CACHE_MAX) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(client, { revokedAtMs, checkedAtMs: this.clock.nowMs() });
  }
}

/** JWT times are whole seconds: a token issued in the very second of the deletion counts as before it. */
export function issuedBefore(issuedAtSeconds: number, revokedAtMs: number | undefined): boolean {
  return revokedAtMs !== undefined && issuedAtSeconds <= Math.floor(revokedAtMs / 1000);
}
