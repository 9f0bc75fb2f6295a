import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from "jose";

export interface SigningKey {
  kid: string;
  alg: "EdDSA" | "ES256";
  privateKey: CryptoKey;
  publicJwk: JWK;
}

/** Creates a federation signing key as a private JWK (EdDSA Ed25519 by default); `kid` is its thumbprint. */
export async function generateSigningJwk(alg: "EdDSA" | "ES256" = "EdDSA"): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === "EdDSA" ? { crv: "Ed25519" } : {}) });
  const jwk = await exportJWK(privateKey);
  jwk.alg = alg;
  jwk.kid = await calculateJwkThumbprint(jwk);
  jwk.use = "sig";
  return jwk;
}

export async function writeSigningKey(path: string, alg: "EdDSA" | "ES256" = "EdDSA"): Promise<JWK> {
  const jwk = await generateSigningJwk(alg);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(jwk, null, 2) + "\n", { mode: 0o600, flag: "wx" });
  return jwk;
}

export async function signingKeyFromJwk(jwk: JWK): Promise<SigningKey> {
  const alg = jwk.alg === "ES256" ? "ES256" : "EdDSA";
  const kid = jwk.kid ?? (await calculateJwkThumbprint(jwk));
  const privateKey = (await importJWK({ ...jwk, alg }, alg)) as CryptoKey;
  const { d: _d, ...pub } = jwk;
  return { kid, alg, privateKey, publicJwk: { ...pub, kid, alg, use: "sig" } };
}

export async function loadSigningKey(path: string, generateIfMissing: boolean): Promise<SigningKey> {
  if (!existsSync(path)) {
    if (!generateIfMissing)
      throw new Error(`federation signing key ${path} does not exist (run: mls-fedgate keygen --out ${path})`);
    try {
      await writeSigningKey(path);
    } catch (e) {
      // Another replica created it at the same moment: use theirs.
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
  }
  const jwk = JSON.parse(readFileSync(path, "utf8")) as JWK;
  if (!jwk.d) throw new Error(`${path} holds no private key`);
  return signingKeyFromJwk(jwk);
}
