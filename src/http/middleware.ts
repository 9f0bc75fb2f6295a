import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from "express";
import { RateLimiterRes, type RateLimiterAbstract } from "rate-limiter-flexible";
import type { AppContext } from "../context.js";
import { issuedBefore } from "../domain/revocations.js";
import { DsError } from "../errors.js";
import type { VerifiedToken } from "../federation/service-auth.js";
import { isTransientStoreError } from "../store/errors.js";
import { currentRequest, runInRequest } from "../request-context.js";

export interface Locals {
  client?: string;
  /** When the client's token was issued (s). */
  issuedAt?: number;
  peer?: string;
  /** A federation token verified from the headers, before the body is read. */
  peerToken?: VerifiedToken;
  rawBody?: Buffer;
  mount?: string;
}

export function locals(res: Response): Locals {
  return res.locals as Locals;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** Request ids travel across federation calls (x-request-id) so one conversation step greps as one. */
export function requestContext(ctx: AppContext): RequestHandler {
  return (req, res, next) => {
    const incoming = req.header("x-request-id");
    const requestId = incoming && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    res.setHeader("x-request-id", requestId);
    const end = ctx.metrics.httpDuration.startTimer();
    res.on("finish", () => {
      const route = (req.route as { path?: string } | undefined)?.path ?? "unmatched";
      // express resets baseUrl once an error leaves the router: use the mount point recorded on the way in.
      end({ method: req.method, route: `${locals(res).mount ?? req.baseUrl}${route}`, status: String(res.statusCode) });
    });
    // Everything the request calls (domain, peer client) sees its id without it being passed along.
    // The child logger is made on first use: most requests log nothing.
    let log: Logger | undefined;
    const scope = {
      requestId,
      get log(): Logger {
        return (log ??= ctx.log.child({ requestId }));
      },
    };
    runInRequest(scope, next);
  };
}

export async function consume(limiter: RateLimiterAbstract, key: string): Promise<void> {
  try {
    await limiter.consume(key);
  } catch (e) {
    if (e instanceof RateLimiterRes) {
      const retryAfter = Math.max(1, Math.ceil(e.msBeforeNext / 1000));
      throw new DsError("rate_limited", "too many requests", { retryAfter });
    }
    throw e;
  }
}

const KNOWN_CLIENTS_MAX = 100_000;

/**
 * Bearer JWT → client id; a token issued before the device was deleted is refused; then the
 * per-client rate limit; a client's first request (after its deletion too) registers its device.
 * Runs before the body is read: nothing is parsed for a request that does not authenticate.
 */
export function clientAuth(ctx: AppContext): RequestHandler {
  // client → the deletion time this process saw when it registered the device (0: none), so a
  // device deleted (on any replica) and brought back by a new token is registered again.
  const known = new Map<string, number>();
  return async (req: Request, res: Response, next: NextFunction) => {
    const { client, issuedAt } = await ctx.auth.authenticate(req.header("authorization"));
    const revokedAt = await ctx.revocations.revokedAt(client);
    if (issuedBefore(issuedAt, revokedAt)) {
      throw new DsError("unauthenticated", "this device was deleted: a token issued after the deletion is needed", {
        reason: "device_deleted",
      });
    }
    locals(res).client = client;
    locals(res).issuedAt = issuedAt;
    await consume(ctx.limiters.client, client);
    if (known.get(client) !== (revokedAt ?? 0)) {
      if (known.size >= KNOWN_CLIENTS_MAX) known.clear();
      await ctx.keys.touchDevice(client);
      known.set(client, revokedAt ?? 0);
    }
    next();
  };
}

/** An http-errors style error (body-parser, router) that names a 4xx status. */
function clientFault(err: unknown): boolean {
  const e = err as { status?: unknown; statusCode?: unknown } | null;
  const status = e?.status ?? e?.statusCode;
  return typeof status === "number" && status >= 400 && status < 500;
}

export function errorHandler(ctx: AppContext): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    let error: DsError;
    const type = (err as { type?: string }).type;
    if (err instanceof DsError) error = err;
    else if (type === "entity.too.large")
      error = new DsError(
        "payload_too_large",
        `body exceeds ${(err as { limit?: number }).limit ?? ctx.config.limits.bodyBytes} bytes`,
      );
    else if (type === "entity.parse.failed" || type === "encoding.unsupported" || type === "charset.unsupported") {
      error = new DsError("bad_request", "body is not valid JSON");
    } else if (clientFault(err)) {
      // Other client faults raised by express itself: a path parameter that is no valid
      // percent-encoding (URIError, status 400), a compressed body that does not inflate, …
      error = new DsError("bad_request", err instanceof URIError ? "malformed percent-encoding in the path" : "malformed body");
    } else if (isTransientStoreError(err)) {
      // A store outage (Redis restarting, failing over): transient, and a retry with the same bytes is safe.
      error = new DsError("unavailable", "the store is unreachable; retry with the same request", { retryAfter: 1 });
    } else {
      (currentRequest()?.log ?? ctx.log).error({ err }, "unhandled error");
      error = new DsError("internal", "internal error");
    }
    ctx.metrics.errors.inc({ code: error.code });
    if (error.code === "rate_limited" || error.code === "unavailable" || error.code === "store_reset") {
      res.setHeader("Retry-After", String(error.details.retryAfter ?? 1));
    }
    if (error.status >= 500 && error.code !== "internal")
      (currentRequest()?.log ?? ctx.log).warn({ code: error.code, msg: error.message });
    if (res.headersSent) return;
    // Refused before its body was read (authentication, size): close rather than drain the rest.
    if (!req.complete) res.setHeader("connection", "close");
    res.status(error.status).json(error.toBody());
  };
}
