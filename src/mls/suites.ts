import { ciphersuites, getCiphersuiteFromName, getCiphersuiteImpl } from "ts-mls";
import type { CiphersuiteImpl, CiphersuiteName } from "ts-mls/crypto/ciphersuite.js";
import { nodeCryptoProvider } from "./node-crypto.js";

/** Cipher suites as RFC 9420 numbers on the wire; ts-mls speaks names. */
export type SuiteId = number;

const idByName = ciphersuites as Record<string, number>;
const nameById = new Map<number, CiphersuiteName>(
  Object.entries(ciphersuites).map(([name, id]) => [id as number, name as CiphersuiteName]),
);

export function suiteName(id: SuiteId): CiphersuiteName | undefined {
  return nameById.get(id);
}

export function suiteId(name: string): SuiteId | undefined {
  return Object.hasOwn(idByName, name) ? idByName[name] : undefined;
}

export function isKnownSuite(id: SuiteId): boolean {
  return nameById.has(id);
}

/** Which CryptoProvider the DS's own MLS work (KeyPackage and GroupInfo checks) runs on: config `mlsCrypto`. */
export type MlsCryptoKind = "node" | "default";

let cryptoKind: MlsCryptoKind = "node";
const implCache = new Map<SuiteId, Promise<CiphersuiteImpl>>();

/**
 * Selects the provider for the whole process (several DSs in one process share it: both
 * providers compute the same results, only the speed differs). `node` is node:crypto
 * (src/mls/node-crypto.ts), `default` is ts-mls's WebCrypto provider.
 */
export function useMlsCrypto(kind: MlsCryptoKind): void {
  if (kind === cryptoKind) return;
  cryptoKind = kind;
  implCache.clear();
}

export function mlsCryptoKind(): MlsCryptoKind {
  return cryptoKind;
}

/** One CiphersuiteImpl per suite for the whole process: building one costs WebCrypto imports. */
export function suiteImpl(id: SuiteId): Promise<CiphersuiteImpl> {
  let impl = implCache.get(id);
  if (!impl) {
    const name = nameById.get(id);
    if (!name) return Promise.reject(new Error(`unknown cipher suite ${id}`));
    impl = getCiphersuiteImpl(getCiphersuiteFromName(name), cryptoKind === "node" ? nodeCryptoProvider : undefined);
    // A failed build (e.g. a suite whose optional dependency is missing) is not cached.
    impl.catch(() => {
      if (implCache.get(id) === impl) implCache.delete(id);
    });
    implCache.set(id, impl);
  }
  return impl;
}

/** Suites the DS offers by default: X25519/Ed25519 with AES-GCM or ChaCha20, and P-256. */
export const DEFAULT_SUITES: readonly SuiteId[] = [1, 2, 3];
