import { makeKeyPackageRef, verifyKeyPackage } from "ts-mls/keyPackage.js";
import { verifyLeafNodeSignatureKeyPackage, type LeafNodeKeyPackage } from "ts-mls/leafNode.js";
import { extensionTypeToNumber } from "ts-mls/extension.js";
import type { KeyPackage } from "ts-mls/keyPackage.js";
import { DsError } from "../errors.js";
import { bytesEqual, fromB64u, toB64u } from "../encoding.js";
import { decodeMlsStrict } from "./codec.js";
import { suiteId, suiteImpl, type SuiteId } from "./suites.js";
import { IDENTITY_SCHEMES, clientOfIdentity, type IdentityScheme } from "./identity.js";

/** RFC 9420 §17.3 / draft last_resort extension code point. */
export const LAST_RESORT_EXTENSION = 0x000a;

export interface KeyPackagePolicy {
  allowedSuites: readonly SuiteId[];
  /** Longest accepted notAfter − notBefore, seconds. */
  maxLifetimeSeconds: number;
  maxBytes: number;
  /**
   * Seconds of clock skew tolerated on notBefore: a KeyPackage whose notBefore is up to this far
   * in the future is accepted. A notBefore in the past is always fine (core-crypto backdates it
   * by one hour), but the whole span notAfter − notBefore counts against maxLifetimeSeconds.
   */
  clockSkewSeconds: number;
  /** Credential identity forms accepted (config `identity.schemes`). */
  identitySchemes: readonly IdentityScheme[];
}

export interface ValidKeyPackage {
  ref: string;
  client: string;
  cipherSuite: SuiteId;
  notAfter: number;
  lastResort: boolean;
  identityKey: string;
  keyPackage: string;
}

/**
 * Full DS-side KeyPackage validation (ts-mls only validates KeyPackages inside createCommit).
 * Throws DsError with the specific code; returns what the store needs.
 */
export async function validateKeyPackage(
  bytes: Uint8Array,
  expectedClient: string,
  policy: KeyPackagePolicy,
  nowSeconds: number,
): Promise<ValidKeyPackage> {
  const message = decodeMlsStrict(bytes, policy.maxBytes);
  if (message.wireformat !== "mls_key_package") {
    throw new DsError("invalid_key_package", `expected a KeyPackage, got ${message.wireformat}`);
  }
  const kp: KeyPackage = message.keyPackage;
  if (kp.version !== "mls10") throw new DsError("invalid_key_package", "KeyPackage version must be mls10");
  const suite = suiteId(String(kp.cipherSuite));
  if (suite === undefined || !policy.allowedSuites.includes(suite)) {
    throw new DsError("unsupported_cipher_suite", `cipher suite ${String(kp.cipherSuite)} is not allowed here`, {
      allowed: policy.allowedSuites,
    });
  }
  const leaf = kp.leafNode;
  if (leaf.leafNodeSource !== "key_package") {
    throw new DsError("invalid_key_package", "leaf node source must be key_package");
  }
  if (leaf.credential.credentialType !== "basic") {
    throw new DsError("credential_mismatch", "only basic credentials are accepted");
  }
  const named = clientOfIdentity(leaf.credential.identity, policy.identitySchemes);
  if (named?.client !== expectedClient) {
    const shown = JSON.stringify(Buffer.from(leaf.credential.identity).toString("utf8"));
    throw new DsError(
      "credential_mismatch",
      named
        ? `credential names ${shown}${named.scheme === "fedgate" ? "" : ` (${named.client})`}, not the uploading client`
        : `credential identity ${shown} is of no accepted form (${policy.identitySchemes.join(", ")})`,
    );
  }
  const { notBefore, notAfter } = leaf.lifetime;
  const now = BigInt(nowSeconds);
  if (notAfter < now) throw new DsError("invalid_key_package", "KeyPackage has expired");
  if (notBefore > now + BigInt(policy.clockSkewSeconds)) {
    throw new DsError("invalid_key_package", "KeyPackage is not valid yet");
  }
  if (notAfter < notBefore || notAfter - notBefore > BigInt(policy.maxLifetimeSeconds)) {
    throw new DsError("invalid_key_package", `KeyPackage lifetime exceeds ${policy.maxLifetimeSeconds} s`);
  }
  if (bytesEqual(kp.initKey, leaf.hpkePublicKey)) {
    throw new DsError("invalid_key_package", "init_key equals the leaf encryption_key");
  }
  const caps = leaf.capabilities;
  if (!caps.versions.includes("mls10") || !caps.ciphersuites.includes(kp.cipherSuite) || !caps.credentials.includes("basic")) {
    throw new DsError("invalid_key_package", "capabilities must include mls10, the package's own suite and basic credentials");
  }
  const unsupported = leaf.extensions
    .map((e) => extensionTypeToNumber(e.extensionType))
    .filter((t) => t > 5 && !caps.extensions.includes(t));
  if (unsupported.length > 0) {
    throw new DsError("invalid_key_package", `leaf extensions ${unsupported.join(",")} are not in the capabilities`);
  }
  // An allowed suite whose implementation cannot be built (e.g. an optional dependency is missing)
  // must reject this one KeyPackage, not fail the whole upload with a 500.
  const impl = await suiteImpl(suite).catch((e: unknown) => {
    throw new DsError("unsupported_cipher_suite", `cipher suite ${suite} is not available on this DS: ${(e as Error).message}`, {
      allowed: policy.allowedSuites,
    });
  });
  const [leafOk, kpOk] = await Promise.all([
    verifyLeafNodeSignatureKeyPackage(leaf as LeafNodeKeyPackage, impl.signature),
    verifyKeyPackage(kp, impl.signature),
  ]);
  if (!leafOk || !kpOk) throw new DsError("invalid_key_package", "KeyPackage signature does not verify");
  const ref = await makeKeyPackageRef(kp, impl.hash);
  const lastResort = kp.extensions.some((e) => extensionTypeToNumber(e.extensionType) === LAST_RESORT_EXTENSION);
  return {
    ref: toB64u(ref),
    client: expectedClient,
    cipherSuite: suite,
    notAfter: Number(notAfter > BigInt(Number.MAX_SAFE_INTEGER) ? BigInt(Number.MAX_SAFE_INTEGER) : notAfter),
    lastResort,
    identityKey: toB64u(leaf.signaturePublicKey),
    keyPackage: toB64u(bytes),
  };
}

/**
 * KeyPackageRef of a KeyPackage served by a peer (to route Welcomes to the client that owns it).
 * The peer is untrusted: the KeyPackage must be of the negotiated suite, its credential must name
 * `claimed.client` under some identity scheme (the mapping is pure, so any scheme the peer may
 * accept is read), and `claimed.identityKey` must be its signature key.
 */
export async function keyPackageRefOf(
  keyPackage: string,
  suite: SuiteId,
  claimed: { client: string; identityKey: string },
): Promise<string> {
  const bytes = fromB64u(keyPackage);
  if (!bytes) throw new DsError("peer_error", "peer served a KeyPackage that is not base64url");
  let message;
  try {
    message = decodeMlsStrict(bytes, 1 << 20);
  } catch (e) {
    throw new DsError("peer_error", `peer served a KeyPackage that does not decode: ${(e as Error).message}`);
  }
  if (message.wireformat !== "mls_key_package") throw new DsError("peer_error", "peer served something else than a KeyPackage");
  const kp = message.keyPackage;
  if (suiteId(String(kp.cipherSuite)) !== suite) throw new DsError("peer_error", "peer served a KeyPackage of another suite");
  const cred = kp.leafNode.credential;
  const named = cred.credentialType === "basic" ? clientOfIdentity(cred.identity, IDENTITY_SCHEMES) : undefined;
  if (named?.client !== claimed.client) {
    throw new DsError("peer_error", `peer served a KeyPackage whose credential does not name ${claimed.client}`);
  }
  if (toB64u(kp.leafNode.signaturePublicKey) !== claimed.identityKey) {
    throw new DsError("peer_error", `peer's identityKey for ${claimed.client} is not the KeyPackage's signature key`);
  }
  return toB64u(await makeKeyPackageRef(kp, (await suiteImpl(suite)).hash));
}
