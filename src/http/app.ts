import express, { type Express } from "express";
import type { AppContext } from "../context.js";
import type { StoreReadiness } from "../store/integrity.js";
import { DsError } from "../errors.js";
import { clientRoutes } from "./client-routes.js";
import { clientCors } from "./cors.js";
import { webApp } from "./web-app.js";
import { webEnabled } from "../config/schema.js";
import { discoveryDocument, federationRoutes } from "./federation-routes.js";
import { errorHandler, locals, requestContext } from "./middleware.js";
import { clientOpenApi } from "../wire/openapi.js";

/** Builds the express app (client API, federation API, discovery, health, metrics); listening is the caller's job. */
export function buildApp(ctx: AppContext, state: { ready: () => Promise<StoreReadiness> }): Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.set("query parser", "simple");
  app.use(requestContext(ctx));
  // No body parser here: /v1 reads and parses bodies after authenticating the client, and
  // /federation/v1 reads the raw bytes (the token's bdh covers them) and parses after verifying.
  // After a detected store reset nothing the API answers would be true, and every write would start
  // over silently (device registration included): refuse until the operator acknowledges.
  app.use(["/v1", "/federation/v1"], (_req, _res, next) => next(ctx.integrity.resetError()));

  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  app.get("/readyz", async (_req, res) => {
    try {
      res.json({ status: "ready", store: await state.ready() });
    } catch (e) {
      const error = e instanceof DsError ? e : new DsError("unavailable", `not ready: ${(e as Error).message}`);
      res.status(error.status).json(error.toBody());
    }
  });
  app.get("/metrics", async (_req, res) => {
    for (const peer of ctx.peerClient.peerDomains()) {
      const stats = await ctx.outbox.stats(peer);
      ctx.metrics.outboxDepth.set({ peer }, stats.depth);
      ctx.metrics.outboxAge.set({ peer }, stats.oldestMs ? (ctx.clock.nowMs() - stats.oldestMs) / 1000 : 0);
    }
    res.setHeader("content-type", ctx.metrics.registry.contentType);
    res.send(await ctx.metrics.registry.metrics());
  });
  // Generated once from the wire schemas (src/wire/client-routes.ts); clients generate SDKs from it.
  const openApi = clientOpenApi();
  app.get("/openapi.json", (_req, res) => {
    res.setHeader("cache-control", "public, max-age=300");
    res.json(openApi);
  });
  app.get("/.well-known/mls-federation", (_req, res) => {
    res.setHeader("cache-control", "public, max-age=300");
    res.json(discoveryDocument(ctx));
  });

  const mount =
    (path: string): express.RequestHandler =>
    (_req, res, next) => {
      locals(res).mount = path;
      next();
    };
  app.use("/v1", mount("/v1"), clientCors(ctx.config), clientRoutes(ctx));
  app.use("/federation/v1", mount("/federation/v1"), federationRoutes(ctx));
  if (webEnabled(ctx.config)) {
    app.get("/", (_req, res) => res.redirect(302, "/app/"));
    app.use("/app", mount("/app"), webApp());
  }
  app.use((_req, _res, next) => next(new DsError("not_found", "no such endpoint")));
  app.use(errorHandler(ctx));
  return app;
}
