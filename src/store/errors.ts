/**
 * Which store failures are transient: the store, not the request, failed, and the same request
 * retried later (with the same bytes) is safe. The HTTP layer answers them 503 `unavailable` with
 * Retry-After. Classified by class names along the prototype chain and by Redis error prefixes,
 * so nothing outside store/ needs the Redis client.
 */

/** Thrown by the store adapters themselves when the store did not answer in time. */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreUnavailableError";
  }
}

/** node-redis connection and timeout errors (and their subclasses): the connection, not the command, failed. */
const CONNECTION_ERRORS = new Set([
  "StoreUnavailableError",
  "ClientClosedError",
  "ClientOfflineError",
  "DisconnectsClientError",
  "SocketClosedUnexpectedlyError",
  "SocketTimeoutError",
  "ConnectionTimeoutError",
  "ReconnectStrategyError",
  "TimeoutError",
  "RootNodesUnavailableError",
  "MaxCommandRedirectionsError",
]);
const SOCKET_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH"]);

/**
 * Redis refusals that pass by themselves: replaying its AOF/RDB after a restart (LOADING), too few
 * replicas for min-replicas-to-write (NOREPLICAS), a replica or a demoted master (READONLY,
 * MASTERDOWN), a cluster resharding or failing over (TRYAGAIN, CLUSTERDOWN), a long script (BUSY),
 * a failed background save with stop-writes-on-bgsave-error (MISCONF), maxmemory reached (OOM).
 * (Redis 7 passes a refusal met inside a script on with its own code.)
 */
const TRANSIENT_REPLY = /^(LOADING|NOREPLICAS|READONLY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|BUSY|MISCONF|OOM)\b/;

function classNames(err: object): string[] {
  const names: string[] = [];
  for (let p: unknown = Object.getPrototypeOf(err); p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    const name = (p as { constructor?: { name?: unknown } }).constructor?.name;
    if (typeof name === "string") names.push(name);
  }
  return names;
}

/** The Redis error code of a reply error (`LOADING`, `READONLY`, …), if `err` is one that passes. */
export function transientRedisReply(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  // node-redis 5 answers simple errors as SimpleError and blob errors as BlobError, both ErrorReply.
  if (!classNames(err).includes("ErrorReply")) return undefined;
  return TRANSIENT_REPLY.exec(String((err as { message?: unknown }).message))?.[1];
}

export function isTransientStoreError(err: unknown, depth = 0): boolean {
  if (typeof err !== "object" || err === null || depth > 4) return false;
  const e = err as { name?: unknown; code?: unknown; cause?: unknown };
  if (classNames(err).some((n) => CONNECTION_ERRORS.has(n)) || CONNECTION_ERRORS.has(String(e.name))) return true;
  if (SOCKET_CODES.has(String(e.code))) return true;
  if (transientRedisReply(err) !== undefined) return true;
  // A wrapped refusal (e.g. a fan-out that failed because one append was refused).
  return e.cause !== undefined && e.cause !== err && isTransientStoreError(e.cause, depth + 1);
}
