import { jest } from "@jest/globals";
import { defaultCapabilities, encodeMlsMessage, generateKeyPackage, getCiphersuiteFromName, getCiphersuiteImpl } from "ts-mls";
import { signKeyPackage } from "ts-mls/keyPackage.js";

// The DS may allow a suite whose implementation cannot be built here (an optional dependency is missing).
const real = await import("../../src/mls/suites.js");
jest.unstable_mockModule("../../src/mls/suites.js", () => ({
  ...real,
  suiteImpl: (id: number) => (id === 3 ? Promise.reject(new Error("optional dependency is not installed")) : real.suiteImpl(id)),
}));
const { validateKeyPackage } = await import("../../src/mls/key-package.js");
const { DsError } = await import("../../src/errors.js");

it("rejects a KeyPackage of an allowed suite that cannot be loaded with unsupported_cipher_suite, not a crash", async () => {
  const cs = await getCiphersuiteImpl(getCiphersuiteFromName("MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"));
  const now = BigInt(Math.floor(Date.now() / 1000));
  const { publicPackage, privatePackage } = await generateKeyPackage(
    { credentialType: "basic", identity: new TextEncoder().encode("alice@a.example/phone") },
    defaultCapabilities(),
    { notBefore: now - 60n, notAfter: now + 3600n },
    [],
    cs,
  );
  const { signature: _unused, ...tbs } = publicPackage;
  // Suites 1 and 3 share X25519 and Ed25519, so this is a genuine suite-3 KeyPackage.
  const suite3 = await signKeyPackage(
    { ...tbs, cipherSuite: "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519" },
    privatePackage.signaturePrivateKey,
    cs.signature,
  );
  const bytes = encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: suite3 });
  const policy = {
    allowedSuites: [1, 3],
    maxLifetimeSeconds: 86400,
    maxBytes: 8192,
    clockSkewSeconds: 300,
    identitySchemes: ["fedgate"] as const,
  };
  const err = await validateKeyPackage(bytes, "alice@a.example/phone", policy, Number(now)).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DsError);
  expect(err).toMatchObject({ code: "unsupported_cipher_suite", status: 400, details: { allowed: [1, 3] } });
});
