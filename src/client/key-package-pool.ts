import { defaultCapabilities, encodeMlsMessage, generateKeyPackage } from "ts-mls";
import type { CiphersuiteImpl } from "ts-mls/crypto/ciphersuite.js";
import {
  decodeKeyPackage,
  encodeKeyPackage,
  makeKeyPackageRef,
  type KeyPackage,
  type PrivateKeyPackage,
} from "ts-mls/keyPackage.js";
import type { FedgateApi } from "./api.js";
import { toB64u } from "./b64.js";
import type { ClientStorage, StoredKeyPackage } from "./storage.js";
import { identityBytes, type IdentityScheme } from "../mls/identity.js";
import { systemClock, type Clock } from "../clock.js";

const utf8 = new TextEncoder();
const LAST_RESORT = 0x000a;

export interface HeldKeyPackage {
  publicPackage: KeyPackage;
  privatePackage: PrivateKeyPackage;
  lastResort: boolean;
}

export interface PublishOptions {
  lastResort?: boolean;
  lifetimeSeconds?: number;
  /** Single-client mode: KeyPackages of the user's virtual client `user@domain/*`. */
  virtual?: boolean;
}

/**
 * The KeyPackages of one device: their private keys (kept in storage, written before the public
 * halves are uploaded), and the device's pool on its DS (published, topped up, pruned).
 */
export class KeyPackagePool {
  private readonly held = new Map<string, HeldKeyPackage>();

  constructor(
    private readonly api: FedgateApi,
    private readonly cs: CiphersuiteImpl,
    private readonly storage: ClientStorage,
    private readonly identityScheme: IdentityScheme,
    private readonly clock: Clock = systemClock,
  ) {}

  private get user(): string {
    return this.api.client.slice(0, this.api.client.indexOf("/"));
  }

  async restore(): Promise<void> {
    for (const kp of await this.storage.loadKeyPackages()) {
      const publicPackage = decodeKeyPackage(kp.publicPackage, 0)?.[0];
      if (!publicPackage) throw new Error(`stored KeyPackage ${kp.ref} does not decode`);
      const { initPrivateKey, hpkePrivateKey, signaturePrivateKey } = kp;
      this.held.set(kp.ref, {
        publicPackage,
        privatePackage: { initPrivateKey, hpkePrivateKey, signaturePrivateKey },
        lastResort: kp.lastResort,
      });
    }
  }

  get(ref: string): HeldKeyPackage | undefined {
    return this.held.get(ref);
  }

  entries(): [string, HeldKeyPackage][] {
    return [...this.held];
  }

  /** A Welcome used this package: forget it (a last-resort one stays usable). */
  async consumed(ref: string): Promise<void> {
    if (this.held.get(ref)?.lastResort !== false) return;
    this.held.delete(ref);
    await this.storage.deleteKeyPackage(ref);
  }

  async remember(entries: [string, HeldKeyPackage][]): Promise<void> {
    for (const [ref, kp] of entries) this.held.set(ref, kp);
    const stored: StoredKeyPackage[] = entries.map(([ref, kp]) => ({
      ref,
      publicPackage: encodeKeyPackage(kp.publicPackage),
      ...kp.privatePackage,
      lastResort: kp.lastResort,
    }));
    await this.storage.saveKeyPackages(stored);
  }

  /** Generates and uploads `count` KeyPackages (and a last-resort one if asked); private keys are stored first. */
  async publish(count: number, opts: PublishOptions = {}) {
    const generated = await Promise.all(Array.from({ length: count }, () => this.generate(false, opts)));
    const lastResort = opts.lastResort ? await this.generate(true, opts) : undefined;
    await this.remember([...generated, ...(lastResort ? [lastResort] : [])]);
    const encode = ([, kp]: [string, HeldKeyPackage]) =>
      toB64u(encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: kp.publicPackage }));
    return this.api.uploadKeyPackages(generated.map(encode), lastResort ? encode(lastResort) : undefined, opts.virtual);
  }

  /**
   * Makes sure the DS holds `target` of this device's KeyPackages and a last-resort one, all with
   * private keys held here: packages whose keys were lost (storage cleared) are withdrawn.
   * Publishes only what is missing; returns how many were uploaded.
   */
  async ensure(target: number): Promise<number> {
    const { keyPackages } = await this.api.listKeyPackages();
    const held = keyPackages.filter((k) => this.held.has(k.ref));
    await Promise.all(keyPackages.filter((k) => !this.held.has(k.ref)).map((k) => this.api.deleteKeyPackage(k.ref)));
    const count = Math.max(0, target - held.filter((k) => !k.lastResort).length);
    const hasLastResort = held.some((k) => k.lastResort);
    if (count === 0 && hasLastResort) return 0;
    await this.publish(count, { lastResort: !hasLastResort });
    return count + (hasLastResort ? 0 : 1);
  }

  private async generate(lastResort: boolean, opts: PublishOptions): Promise<[string, HeldKeyPackage]> {
    // Single-client mode: KeyPackages of the user's virtual client, shared by all its devices.
    const identity = opts.virtual ? utf8.encode(`${this.user}/*`) : identityBytes(this.api.client, this.identityScheme);
    const now = BigInt(this.clock.nowSeconds());
    const lifetime = { notBefore: now - 60n, notAfter: now + BigInt(opts.lifetimeSeconds ?? 30 * 24 * 3600) };
    const credential = { credentialType: "basic" as const, identity };
    const extensions = lastResort ? [{ extensionType: LAST_RESORT, extensionData: new Uint8Array() }] : [];
    const kp = await generateKeyPackage(credential, defaultCapabilities(), lifetime, extensions, this.cs);
    const ref = toB64u(await makeKeyPackageRef(kp.publicPackage, this.cs.hash));
    return [ref, { ...kp, lastResort }];
  }
}
