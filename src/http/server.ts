import { createServer, type Server } from "node:http";
import type { Socket } from "node:net";
import type { Express } from "express";
import type { AppContext } from "../context.js";
import { DsError } from "../errors.js";

/** A raw HTTP/1.1 answer written straight to the socket (the request never reached express). */
function rawAnswer(error: DsError, reason: string): string {
  const body = JSON.stringify(error.toBody());
  return (
    `HTTP/1.1 ${error.status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

/**
 * The HTTP server around the app, with the edge limits of docs/SECURITY.md: headers and the whole
 * request (body included) must arrive within limits.headersTimeoutMs / requestTimeoutMs, or the
 * connection is answered `408 request_timeout` and closed — a 1 byte / 2 s body no longer holds a
 * connection open. Long-polls and SSE streams are not cut: their request is complete once the
 * headers arrived. Connections over limits.maxConnections are closed at accept.
 */
export function createHttpServer(ctx: AppContext, app: Express): Server {
  const { limits } = ctx.config;
  const server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      // Node checks the two timeouts on this interval (default 30 s, far coarser than the timeouts).
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
    },
    app,
  );
  server.keepAliveTimeout = 65_000;
  server.maxConnections = limits.maxConnections;
  server.on("drop", () => ctx.metrics.connectionsDropped.inc());
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (socket.writable && !inFlight?.headersSent) {
      if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
        ctx.metrics.errors.inc({ code: "request_timeout" });
        const limit = `headers within ${limits.headersTimeoutMs} ms, the whole request within ${limits.requestTimeoutMs} ms`;
        socket.write(rawAnswer(new DsError("request_timeout", `request not received in time (${limit})`), "Request Timeout"));
      } else if (err.code === "HPE_HEADER_OVERFLOW") {
        socket.write(rawAnswer(new DsError("payload_too_large", "request headers too large"), "Payload Too Large"));
      } else if (err.code !== "ECONNRESET") {
        socket.write(rawAnswer(new DsError("bad_request", "malformed HTTP request"), "Bad Request"));
      }
    }
    socket.destroy();
  });
  return server;
}
