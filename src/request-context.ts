import { AsyncLocalStorage } from "node:async_hooks";
import type { Logger } from "pino";

/**
 * What belongs to the one request being handled, available to everything it calls without being
 * passed along: its id (sent on as x-request-id to peers, so one conversation step greps as one
 * across providers) and a logger bound to that id. Work outside a request (the outbox, recovery)
 * has no request context.
 */
export interface RequestScope {
  requestId: string;
  log: Logger;
}

const scope = new AsyncLocalStorage<RequestScope>();

/** Runs `fn` (and every async continuation it starts) inside the request's scope. */
export function runInRequest<T>(request: RequestScope, fn: () => T): T {
  return scope.run(request, fn);
}

/** The scope of the request being handled, if any. */
export function currentRequest(): RequestScope | undefined {
  return scope.getStore();
}

/** The id of the request being handled, if any. */
export function currentRequestId(): string | undefined {
  return scope.getStore()?.requestId;
}
