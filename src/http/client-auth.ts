import { createHash } from "node:crypto";
import { readFileSync, existsSync } from "node:fs";
import { createRemoteJWKSet, importSPKI, jwtVerify, SignJWT, type JWTVerifyGetKey, type CryptoKey } from "jose";
import { ConfigError } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { DsError } from "../errors.js";
import { systemClock, type Clock } from "../clock.js";
import { CLIENT_ID, CLIENT_ID_MAX } from "../wire/ids.js";

/** C0 and C1 control characters (DEL included): never part of an id that is logged, listed and compared. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** A token issued this far in the future is refused (clock skew allowance). */
const FUTURE_IAT_SKEW_S = 60;

export interface Authenticated {
  client: string;
  /** When the token was issued (s); without `iat`, the earliest moment its lifetime allows. */
  issuedAt: number;
}
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
  private readonly verified = new Map<string, { who: Authenticated; until: number }>();
  private clock: Clock = systemClock;

  private constructor(
    private readonly config: Readonly<Config>,
    private readonly key: Uint8Array | CryptoKey | JWTVerifyGetKey,
    private readonly devSecret?: Uint8Array,
  ) {}

  static async create(config: Readonly<Config>, clock: Clock = systemClock): Promise<ClientAuth> {
    const auth = await ClientAuth.load(config);
    auth.clock = clock;
    return auth;
  }

  private static async load(config: Readonly<Config>): Promise<ClientAuth> {
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
      .setIssuedAt(this.clock.nowSeconds())
      .setExpirationTime(this.clock.nowSeconds() + this.config.auth.devTokenTtlSeconds)
      .sign(this.devSecret);
  }

  /** A client id of this domain: user@domain/device, at most 512 characters, no control characters, not the virtual `/*`. */
  checkClient(client: string): void {
    if (client.length > CLIENT_ID_MAX) throw new DsError("bad_request", `client id longer than ${CLIENT_ID_MAX} characters`);
    if (CONTROL.test(client)) throw new DsError("bad_request", "client id contains control characters");
    const m = CLIENT_ID.exec(client);
    if (!m) throw new DsError("bad_request", "client must be user@domain/device");
    if (m[2] === "*") throw new DsError("bad_request", "user@domain/* is the virtual client of a user, not a device");
    if (m[1] !== this.config.domain) throw new DsError("forbidden", `client ${client} does not belong to ${this.config.domain}`);
  }

  /** The authenticated client of a request and when its token was issued. */
  async authenticate(header: string | undefined): Promise<Authenticated> {
    // The auth scheme is case-insensitive (RFC 9110 §11.1).
    const token = header && /^bearer /i.test(header) ? header.slice(7).trim() : undefined;
    if (!token) throw new DsError("unauthenticated", "missing bearer token");
    const now = this.clock.nowMs();
    const hit = this.verified.get(token);
    if (hit && now < hit.until) return hit.who;
    if (hit) this.verified.delete(token);
    let payload: { sub?: string; exp?: number; iat?: number };
    try {
      const opts = {
        ...(this.devSecret
          ? { issuer: `dev:${this.config.domain}`, audience: this.config.domain, algorithms: ["HS256"] }
          : { issuer: this.config.auth.issuer!, audience: this.config.auth.audience!, algorithms: this.config.auth.algorithms }),
        requiredClaims: ["exp", "sub"],
        currentDate: new Date(now),
      };
      ({ payload } =
        typeof this.key === "function" ? await jwtVerify(token, this.key, opts) : await jwtVerify(token, this.key, opts));
    } catch (e) {
      throw new DsError("unauthenticated", `invalid token: ${(e as Error).message}`);
    }
    const sub = payload.sub!;
    const exp = payload.exp!;
    const who = { client: sub, issuedAt: this.checkLifetime(exp, payload.iat, now / 1000) };
    try {
      this.checkClient(sub);
    } catch (e) {
      throw new DsError("unauthenticated", `token subject rejected: ${(e as Error).message}`);
    }
    if (this.verified.size >= VERIFIED_MAX) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(token, { who, until: Math.min(now + VERIFIED_TTL_MS, exp * 1000) });
    return who;
  }

  /** exp − iat, and exp − now, within auth.maxTokenLifetimeSeconds; iat not in the future. Returns the issue time. */
  private checkLifetime(exp: number, iat: number | undefined, nowSeconds: number): number {
    const max = this.config.auth.maxTokenLifetimeSeconds;
    if (iat !== undefined && iat > nowSeconds + FUTURE_IAT_SKEW_S)
      throw new DsError("unauthenticated", "invalid token: issued in the future", { reason: "bad_iat" });
    if (exp - (iat ?? nowSeconds) > max || exp - nowSeconds > max + FUTURE_IAT_SKEW_S)
      throw new DsError("unauthenticated", `invalid token: lives longer than ${max} s (auth.maxTokenLifetimeSeconds)`, {
        reason: "lifetime",
      });
    return iat ?? exp - max;
  }
}
