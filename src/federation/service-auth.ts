import { randomUUID } from "node:crypto";
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, SignJWT, type JWK } from "jose";
import { DsError } from "../errors.js";
import { sha256B64u } from "../encoding.js";
import type { ReplayStore } from "../store/port.js";
import type { SigningKey } from "./keys.js";
import { systemClock, type Clock } from "../clock.js";

export const MAX_TOKEN_LIFETIME_S = 60;
const TOKEN_TYPE = "mls-fedgate+jwt";

export interface RequestFacts {
  method: string;
  /** Path and query as sent on the wire, e.g. /federation/v1/deliver. */
  path: string;
  body: Uint8Array;
}

/** Signs one federation request: the token binds issuer, audience, method, path and body. */
export async function signRequest(
  key: SigningKey,
  iss: string,
  aud: string,
  req: RequestFacts,
  ttlSeconds: number,
  clock: Clock = systemClock,
): Promise<string> {
  const now = clock.nowSeconds();
  return new SignJWT({ htm: req.method.toUpperCase(), htu: req.path, bdh: sha256B64u(req.body) })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: TOKEN_TYPE })
    .setIssuer(iss)
    .setAudience(aud)
    .setIssuedAt(now)
    .setExpirationTime(now + Math.min(ttlSeconds, MAX_TOKEN_LIFETIME_S))
    .setJti(randomUUID())
    .sign(key.privateKey);
}

export interface PeerKeySource {
  isPeer(domain: string): boolean;
  /** The peer's published keys; `refresh` bypasses the cache (key rotation). */
  keysOf(domain: string, refresh: boolean): Promise<JWK[]>;
}

function refuse(reason: string, message: string): DsError {
  return new DsError("unauthenticated", message, { reason });
}

/**
 * The cheap first look at a federation request, without any crypto or the body: a bearer token
 * that decodes and names a configured peer as its issuer. Run before the body is read, so a
 * stranger's request costs no body buffering; verifyRequest repeats it and checks everything.
 */
export function claimedPeer(authorization: string | undefined, peers: PeerKeySource): { token: string; iss: string } {
  const token = authorization && /^bearer /i.test(authorization) ? authorization.slice(7).trim() : undefined;
  if (!token) throw refuse("missing_token", "federation request without a bearer token");
  let iss: string | undefined;
  try {
    decodeProtectedHeader(token);
    iss = decodeJwt(token).iss;
  } catch {
    throw refuse("malformed_token", "federation token does not decode");
  }
  if (!iss || !peers.isPeer(iss))
    throw new DsError("forbidden", `${String(iss)} is not a configured peer`, { reason: "unknown_peer" });
  return { token, iss };
}

/**
 * Verifies a federation request: a configured peer signed it with a published key, for us, for
 * this method, path and body, within 60 s, and never before (jti kept in the shared store).
 */
export async function verifyRequest(
  authorization: string | undefined,
  myDomain: string,
  req: RequestFacts,
  peers: PeerKeySource,
  replay: ReplayStore,
  clock: Clock = systemClock,
): Promise<string> {
  return verifyRequestBody(await verifyRequestToken(authorization, myDomain, req, peers, clock), req.body, replay);
}

/** A federation token whose signature and claims verified; the body and the jti are still to check. */
export interface VerifiedToken {
  iss: string;
  claims: Record<string, unknown>;
}

/**
 * The first half of verifyRequest, from the headers alone: signature, issuer, audience, lifetime,
 * method and path. The HTTP layer runs it before reading the body, so a stranger's body is never
 * buffered; verifyRequestBody then checks `bdh` against the raw bytes and spends the `jti`.
 */
export async function verifyRequestToken(
  authorization: string | undefined,
  myDomain: string,
  req: Omit<RequestFacts, "body">,
  peers: PeerKeySource,
  clock: Clock = systemClock,
): Promise<VerifiedToken> {
  const { token, iss } = claimedPeer(authorization, peers);

  const verify = async (refresh: boolean) =>
    jwtVerify(token, createLocalJWKSet({ keys: await peers.keysOf(iss, refresh) }), {
      issuer: iss,
      audience: myDomain,
      algorithms: ["EdDSA", "ES256"],
      typ: TOKEN_TYPE,
      requiredClaims: ["iat", "exp", "jti", "htm", "htu", "bdh"],
      currentDate: new Date(clock.nowMs()),
    });
  let payload;
  try {
    try {
      payload = (await verify(false)).payload;
    } catch (e) {
      // An unknown kid or a bad signature may mean the peer rotated its key: refetch once.
      if (!(e instanceof joseErrors.JWKSNoMatchingKey || e instanceof joseErrors.JWSSignatureVerificationFailed)) throw e;
      payload = (await verify(true)).payload;
    }
  } catch (e) {
    if (e instanceof DsError) throw e;
    if (e instanceof joseErrors.JWTExpired) throw refuse("expired", "federation token has expired");
    if (e instanceof joseErrors.JWTClaimValidationFailed)
      throw refuse(`bad_${e.claim}`, `federation token claim ${e.claim} is wrong`);
    if (e instanceof joseErrors.JWSSignatureVerificationFailed)
      throw refuse("bad_signature", "federation token signature does not verify");
    if (e instanceof joseErrors.JWKSNoMatchingKey)
      throw refuse("unknown_key", "federation token names a key the peer does not publish");
    throw refuse("invalid_token", `federation token rejected: ${(e as Error).message}`);
  }
  const { iat, exp, htm, htu } = payload as Record<string, unknown>;
  if (typeof iat !== "number" || typeof exp !== "number" || exp - iat > MAX_TOKEN_LIFETIME_S) {
    throw refuse("bad_lifetime", `federation token must expire within ${MAX_TOKEN_LIFETIME_S} s of issue`);
  }
  if (iat > clock.nowMs() / 1000 + 30) throw refuse("bad_iat", "federation token is issued in the future");
  if (htm !== req.method.toUpperCase()) throw refuse("bad_htm", "federation token is for another method");
  if (htu !== req.path) throw refuse("bad_htu", "federation token is for another path");
  return { iss, claims: payload as Record<string, unknown> };
}

/** The second half of verifyRequest: the body is the one signed (`bdh`), and the token is used once. */
export async function verifyRequestBody(token: VerifiedToken, body: Uint8Array, replay: ReplayStore): Promise<string> {
  const { iss } = token;
  const { exp, jti, bdh } = token.claims as { exp: number; jti: unknown; bdh: unknown };
  if (bdh !== sha256B64u(body)) throw refuse("bad_bdh", "request body does not match the signed hash");
  if (typeof jti !== "string" || jti.length === 0 || jti.length > 128) throw refuse("bad_jti", "federation token needs a jti");
  if (!(await replay.rememberOnce(`jti:${iss}:${jti}`, exp * 1000 + 1000))) {
    throw new DsError("replayed_request", "this federation token was already used");
  }
  return iss;
}

/**
 * Inbound federation authentication as the routes use it: this DS's domain, its peers' keys and
 * the jti cache replicas share, bound once, so a route never reaches into the store itself.
 */
export class PeerRequestAuth {
  constructor(
    private readonly myDomain: string,
    private readonly peers: PeerKeySource,
    private readonly replay: ReplayStore,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Signature and claims of the token, before any of the body is read. */
  verifyToken(authorization: string | undefined, req: Omit<RequestFacts, "body">): Promise<VerifiedToken> {
    return verifyRequestToken(authorization, this.myDomain, req, this.peers, this.clock);
  }

  /** The body against the signed hash, and the jti used once; resolves to the peer's domain. */
  verifyBody(token: VerifiedToken, body: Uint8Array): Promise<string> {
    return verifyRequestBody(token, body, this.replay);
  }
}
