import cors from "cors";
import type { RequestHandler } from "express";
import type { Config } from "../config/schema.js";
import { DsError } from "../errors.js";

/** Every method and request header the client API and the SDK use. */
const METHODS = ["GET", "POST", "DELETE"];
const REQUEST_HEADERS = ["authorization", "content-type", "accept", "x-request-id", "last-event-id"];
/** Headers a page must be able to read from answers (and from error answers). */
const EXPOSED_HEADERS = ["retry-after", "x-request-id"];
const PREFLIGHT_CACHE_SECONDS = 600;

/**
 * CORS for the client API (mounted on /v1 only, before authentication, so a preflight, which
 * carries no token, is answered here). Listed origins get the headers on every answer, errors
 * included; any other origin gets none, and its preflight is refused with 403.
 */
export function clientCors(config: Readonly<Config>): RequestHandler {
  const { origins } = config.cors;
  const allowed = (origin: string | undefined) =>
    origin !== undefined && (origins === "*" || (origins as readonly string[]).includes(origin));
  const headers = cors({
    // Bearer tokens, not cookies: never Allow-Credentials, so "*" stays a plain wildcard.
    origin: origins === "*" ? "*" : (origin, done) => done(null, allowed(origin) ? origin : false),
    methods: METHODS,
    allowedHeaders: REQUEST_HEADERS,
    exposedHeaders: EXPOSED_HEADERS,
    maxAge: PREFLIGHT_CACHE_SECONDS,
  });
  return (req, res, next) => {
    const origin = req.header("origin");
    if (origin === undefined) return next();
    if (!allowed(origin)) {
      const preflight = req.method === "OPTIONS" && req.header("access-control-request-method") !== undefined;
      return next(preflight ? new DsError("forbidden", `origin ${origin} is not allowed (cors.origins)`) : undefined);
    }
    headers(req, res, next);
  };
}
