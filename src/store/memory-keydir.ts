import type { Clock } from "../domain/types.js";
import { OWN_REF_GRACE_SECONDS } from "./lua/keys.js";
import {
  userOf,
  type ClaimOutcome,
  type DeviceList,
  type KeyPackageMeta,
  type PutKeyPackagesResult,
  type StoredKeyPackage,
} from "./port.js";

interface ClientKeys {
  pool: StoredKeyPackage[];
  lastResort: Map<number, StoredKeyPackage>;
}

/** Expired revocations are swept once this many are held. */
const REVOKED_PRUNE_AT = 10_000;
/** Expired remembered refs and replay ids are swept when a map has doubled since the last sweep. */
export const SWEEP_MIN = 1024;

/**
 * The memory store's key directory (store/lua/keydir.ts on Redis): KeyPackages per client, the
 * ref → client index that routes Welcomes, device lists per user and device revocations. Apart
 * from MemoryStore because nothing here touches groups or queues.
 */
export class MemoryKeyDirectory {
  private keys = new Map<string, ClientKeys>();
  private refs = new Map<string, { client: string; expiresAt: number }>();
  private devices = new Map<string, { version: number; clients: Set<string> }>();
  /** client → {deleted at, forget at} (ms). */
  private revoked = new Map<string, { atMs: number; expiresAtMs: number }>();
  private sweepRefsAt = SWEEP_MIN;

  constructor(private readonly clock: Clock) {}

  /** Remembered refs, for MemoryStore.sizes(). */
  refCount(): number {
    return this.refs.size;
  }

  private clientKeys(client: string): ClientKeys {
    let k = this.keys.get(client);
    if (!k) {
      k = { pool: [], lastResort: new Map() };
      this.keys.set(client, k);
    }
    return k;
  }

  async putKeyPackages(client: string, items: StoredKeyPackage[], maxPerClient: number): Promise<PutKeyPackagesResult> {
    const result: PutKeyPackagesResult = { stored: [], overLimit: [] };
    if (items.length === 0) return result;
    const k = this.clientKeys(client);
    for (const item of items) {
      if (item.lastResort) {
        const previous = k.lastResort.get(item.cipherSuite);
        if (previous) this.refs.delete(previous.ref);
        k.lastResort.set(item.cipherSuite, item);
      } else if (k.pool.some((p) => p.ref === item.ref)) {
        // Same bytes again: already stored, nothing to add.
      } else if (k.pool.length >= maxPerClient) {
        result.overLimit.push(item.ref);
        continue;
      } else {
        k.pool.push(item);
      }
      // Resolvable a while after the package's notAfter (a late Welcome still routes), as on Redis.
      this.refs.set(item.ref, { client, expiresAt: (item.notAfter + OWN_REF_GRACE_SECONDS) * 1000 });
      result.stored.push(item.ref);
    }
    this.sweepRefs();
    return result;
  }

  async listKeyPackages(client: string): Promise<KeyPackageMeta[]> {
    const k = this.keys.get(client);
    if (!k) return [];
    return [...k.pool, ...k.lastResort.values()].map(({ ref, cipherSuite, notAfter, lastResort }) => ({
      ref,
      cipherSuite,
      notAfter,
      lastResort,
    }));
  }

  async deleteKeyPackage(client: string, ref: string): Promise<boolean> {
    const k = this.keys.get(client);
    if (!k) return false;
    const index = k.pool.findIndex((p) => p.ref === ref);
    if (index >= 0) {
      k.pool.splice(index, 1);
      return true;
    }
    for (const [suite, lr] of k.lastResort) {
      if (lr.ref === ref) {
        k.lastResort.delete(suite);
        return true;
      }
    }
    return false;
  }

  async claim(user: string, suites: number[], nowSeconds: number): Promise<ClaimOutcome> {
    const entry = this.devices.get(user);
    if (!entry || entry.clients.size === 0) return { kind: "unknown_user" };
    // Single-client mode: a registered virtual client (user/*) stands for all the user's devices.
    const virtual = `${user}/*`;
    const clients = entry.clients.has(virtual) ? [virtual] : [...entry.clients].sort();
    const usable = (kp: StoredKeyPackage) => kp.notAfter >= nowSeconds;
    for (const c of clients) {
      const k = this.keys.get(c);
      if (k) k.pool = k.pool.filter(usable);
    }
    const serves = (c: string, suite: number) => {
      const k = this.keys.get(c);
      if (!k) return false;
      const lr = k.lastResort.get(suite);
      return k.pool.some((p) => p.cipherSuite === suite) || (lr !== undefined && usable(lr));
    };
    const chosen = suites.find((s) => clients.some((c) => serves(c, s)));
    if (chosen === undefined) {
      const available = new Set<number>();
      for (const c of clients) {
        const k = this.keys.get(c);
        k?.pool.forEach((p) => available.add(p.cipherSuite));
        k?.lastResort.forEach((lr, s) => usable(lr) && available.add(s));
      }
      if (available.size === 0) return { kind: "no_key_package" };
      return { kind: "no_common_suite", available: [...available].sort((a, b) => a - b) };
    }
    const bundles: StoredKeyPackage[] = [];
    const missing: { client: string; reason: "exhausted" | "no_compatible_suite" }[] = [];
    for (const c of clients) {
      const k = this.keys.get(c);
      const index = k ? k.pool.findIndex((p) => p.cipherSuite === chosen) : -1;
      if (k && index >= 0) {
        bundles.push(k.pool.splice(index, 1)[0]!);
        continue;
      }
      const lr = k?.lastResort.get(chosen);
      if (lr && usable(lr)) {
        bundles.push(lr);
        continue;
      }
      const hasAny = k !== undefined && (k.pool.length > 0 || k.lastResort.size > 0);
      missing.push({ client: c, reason: hasAny ? "no_compatible_suite" : "exhausted" });
    }
    return { kind: "ok", cipherSuite: chosen, bundles, missing };
  }

  async resolveRef(ref: string): Promise<string | undefined> {
    const r = this.refs.get(ref);
    if (!r || r.expiresAt < this.clock.nowMs()) return undefined;
    return r.client;
  }

  async rememberRefs(entries: { ref: string; client: string }[], ttlSeconds: number): Promise<void> {
    const expiresAt = this.clock.nowMs() + ttlSeconds * 1000;
    for (const e of entries) if (!this.refs.has(e.ref)) this.refs.set(e.ref, { client: e.client, expiresAt });
    this.sweepRefs();
  }

  private sweepRefs(): void {
    if (this.refs.size < this.sweepRefsAt) return;
    const now = this.clock.nowMs();
    for (const [ref, r] of this.refs) if (r.expiresAt < now) this.refs.delete(ref);
    this.sweepRefsAt = Math.max(SWEEP_MIN, 2 * this.refs.size);
  }

  async registerDevice(client: string): Promise<{ version: number; added: boolean }> {
    const user = userOf(client);
    let entry = this.devices.get(user);
    if (!entry) {
      entry = { version: 0, clients: new Set() };
      this.devices.set(user, entry);
    }
    if (entry.clients.has(client)) return { version: entry.version, added: false };
    entry.clients.add(client);
    entry.version += 1;
    return { version: entry.version, added: true };
  }

  async removeDevice(client: string): Promise<{ version: number; removed: boolean }> {
    const entry = this.devices.get(userOf(client));
    if (!entry || !entry.clients.has(client)) return { version: entry?.version ?? 0, removed: false };
    entry.clients.delete(client);
    entry.version += 1;
    this.keys.delete(client);
    return { version: entry.version, removed: true };
  }

  async listDevices(user: string): Promise<DeviceList> {
    const entry = this.devices.get(user);
    const devices = [...(entry?.clients ?? [])].sort().map((client) => {
      const k = this.keys.get(client);
      const suites = new Set<number>([...(k?.pool.map((p) => p.cipherSuite) ?? []), ...(k?.lastResort.keys() ?? [])]);
      return { client, cipherSuites: [...suites].sort((a, b) => a - b) };
    });
    return { user, version: entry?.version ?? 0, devices };
  }

  // ---- device revocations ----
  async revokeDevice(client: string, atMs: number, ttlMs: number): Promise<void> {
    const now = this.clock.nowMs();
    if (this.revoked.size >= REVOKED_PRUNE_AT)
      for (const [c, r] of this.revoked) if (r.expiresAtMs <= now) this.revoked.delete(c);
    this.revoked.delete(client);
    this.revoked.set(client, { atMs, expiresAtMs: now + ttlMs });
  }

  async deviceRevokedAt(client: string): Promise<number | undefined> {
    const r = this.revoked.get(client);
    if (!r) return undefined;
    if (r.expiresAtMs <= this.clock.nowMs()) {
      this.revoked.delete(client);
      return undefined;
    }
    return r.atMs;
  }
}
