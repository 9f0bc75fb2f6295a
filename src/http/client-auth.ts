import { createHash } from "node:crypto";
import { readFileSync, existsSync } from "node:fs";
import { createRemoteJWKSet, importSPKI, jwtVerify, SignJWT, type JWTVerifyGetKey, type CryptoKey } from "jose";
import { ConfigError } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { DsError } from "../errors.js";

const CLIENT_ID = /^[^\s/@]+@([a-z0-9.-]+)\/[^\s/]+$/;
/** Verified tokens are remembered (exact token text → client) this long at most, and never past their exp. */
const VERIFIED_TTL_MS = 60_000;
const VERIFIED_MAX = 10_000;

/**
 * Client authentication: bearer JWTs whose `sub` is the client id (`user@domain/device`) of this
 * DS's domain. `dev` mode signs its own tokens (HS256, secret derived from the domain so replicas
 * agree — insecure by design, for development only); `jwt` mode trusts the configured issuer.
 */
export class ClientAuth {
  /**
   * A client sends the same bearer token with every request; verifying its signature each time
   * was a fifth of the DS's CPU per message (WebCrypto HMAC/EdDSA). A token that verified is
   * accepted again without a signature check until its `exp` (or VERIFIED_TTL_MS, whichever comes
   * first, so a key withdrawn from the JWKS stops working within a minute).
   */
  private readonly verified = new Map<string, { sub: string; until: number }>();

  private constructor(
    private readonly config: Readonly<Config>,
    private readonly key: Uint8Array | CryptoKey | JWTVerifyGetKey,
    private readonly devSecret?: Uint8Array,
  ) {}

  static async create(config: Readonly<Config>): Promise<ClientAuth> {
    if (config.auth.mode === "dev") {
      const secret = createHash("sha256").update(`mls-fedgate-dev-token:${config.domain}`).digest();
      return new ClientAuth(config, secret, secret);
    }
    if (config.auth.jwksUrl) return new ClientAuth(config, createRemoteJWKSet(new URL(config.auth.jwksUrl)));
    const pem = config.auth.publicKey!;
    const text = pem.includes("BEGIN PUBLIC KEY") ? pem : existsSync(pem) ? readFileSync(pem, "utf8") : pem;
    // The key's type decides its algorithm: use the first configured one it imports under.
    for (const alg of config.auth.algorithms) {
      try {
        return new ClientAuth(config, await importSPKI(text, alg));
      } catch {
        // not this algorithm
      }
    }
    throw new ConfigError(
      "auth.publicKey",
      `not an SPKI PEM public key (or a file holding one) for any of ${config.auth.algorithms.join(", ")}`,
    );
  }

  get devMode(): boolean {
    return this.devSecret !== undefined;
  }

  async issueDevToken(client: string): Promise<string> {
    if (!this.devSecret) throw new DsError("not_found", "dev tokens are disabled (auth.mode is jwt)");
    this.checkClient(client);
    return new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(client)
      .setIssuer(`dev:${this.config.domain}`)
      .setAudience(this.config.domain)
      .setIssuedAt()
      .setExpirationTime(`${this.config.auth.devTokenTtlSeconds}s`)
      .sign(this.devSecret);
  }

  checkClient(client: string): void {
    const m = CLIENT_ID.exec(client);
    if (!m) throw new DsError("bad_request", "client must be user@domain/device");
    if (m[1] !== this.config.domain) throw new DsError("forbidden", `client ${client} does not belong to ${this.config.domain}`);
  }

  /** The authenticated client id of a request. */
  async authenticate(header: string | undefined): Promise<string> {
    // The auth scheme is case-insensitive (RFC 9110 §11.1).
    const token = header && /^bearer /i.test(header) ? header.slice(7).trim() : undefined;
    if (!token) throw new DsError("unauthenticated", "missing bearer token");
    const now = Date.now();
    const hit = this.verified.get(token);
    if (hit && now < hit.until) return hit.sub;
    if (hit) this.verified.delete(token);
    let sub: string | undefined;
    let exp: number | undefined;
    try {
      const opts = this.devSecret
        ? { issuer: `dev:${this.config.domain}`, audience: this.config.domain, algorithms: ["HS256"] }
        : { issuer: this.config.auth.issuer!, audience: this.config.auth.audience!, algorithms: this.config.auth.algorithms };
      const { payload } =
        typeof this.key === "function" ? await jwtVerify(token, this.key, opts) : await jwtVerify(token, this.key, opts);
      sub = payload.sub;
      exp = payload.exp;
    } catch (e) {
      throw new DsError("unauthenticated", `invalid token: ${(e as Error).message}`);
    }
    if (!sub) throw new DsError("unauthenticated", "token has no sub");
    try {
      this.checkClient(sub);
    } catch (e) {
      throw new DsError("unauthenticated", `token subject rejected: ${(e as Error).message}`);
    }
    if (this.verified.size >= VERIFIED_MAX) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(token, { sub, until: Math.min(now + VERIFIED_TTL_MS, exp === undefined ? Infinity : exp * 1000) });
    return sub;
  }
}
