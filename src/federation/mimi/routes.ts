import express, { type Express, type Request, type Response } from "express";
import type { TLSSocket } from "node:tls";
import type { AppContext } from "../../context.js";
import { DsError } from "../../errors.js";
import { consume, errorHandler, locals, requestContext } from "../../http/middleware.js";
import {
  encodeGroupInfoResponse,
  encodeKeyMaterialResponse,
  encodeSubmitMessageResponse,
  encodeUpdateRoomResponse,
  type MimiLimits,
} from "./codec.js";
import { MimiFollower } from "./follower.js";
import { MimiHub } from "./hub.js";
import { keyMaterial } from "./key-material.js";
import { authenticatePeer, type MimiTls } from "./tls.js";

export const MIMI_BASE = "/mimi/v1";
const ENDPOINTS = ["keyMaterial", "update", "notify", "submitMessage", "groupInfo"] as const;

function param(req: Request, name: string): string {
  const v = req.params[name];
  if (typeof v !== "string" || v.length === 0) throw new DsError("bad_request", `missing ${name}`);
  return v;
}

function send(res: Response, status: number, body: Uint8Array): void {
  res.status(status).type("application/octet-stream").send(Buffer.from(body));
}

/** The MIMI listener's app (mutually authenticated TLS): directory and the five -06 endpoints this DS serves. */
export function mimiApp(ctx: AppContext, tls: MimiTls): Express {
  const { limits } = ctx.config;
  const mimiLimits: MimiLimits = {
    messageBytes: limits.messageBytes,
    groupInfoBytes: limits.groupInfoBytes,
    keyPackageBytes: limits.keyPackageBytes,
  };
  const hub = new MimiHub(ctx, mimiLimits);
  const follower = new MimiFollower(ctx, mimiLimits, ctx.log.child({ part: "mimi" }));
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.use(requestContext(ctx));

  app.get("/.well-known/mimi-protocol-directory", (req, res) => {
    const base = ctx.config.federation.mimi.publicUrl.replace(/\/$/, "") || `https://${req.headers.host ?? ctx.config.domain}`;
    const vars: Record<(typeof ENDPOINTS)[number], string> = {
      keyMaterial: "{targetUser}",
      update: "{roomId}",
      notify: "{roomId}",
      submitMessage: "{roomId}",
      groupInfo: "{roomId}",
    };
    res.setHeader("cache-control", "public, max-age=300");
    res.json(Object.fromEntries(ENDPOINTS.map((e) => [e, `${base}${MIMI_BASE}/${e}/${vars[e]}`])));
  });

  const router = express.Router();
  router.use(async (req, res, next) => {
    const peer = authenticatePeer(tls, req.socket as TLSSocket, req.header("from"));
    const host = (req.header("host") ?? "").replace(/:\d+$/, "").toLowerCase();
    if (host !== ctx.config.domain)
      throw new DsError("forbidden", `Host ${host} is not ${ctx.config.domain}`, { reason: "wrong_host" });
    locals(res).peer = peer;
    await consume(ctx.limiters.peer, peer);
    next();
  });
  router.use(express.raw({ type: () => true, limit: limits.bodyBytes }));
  const body = (req: Request): Uint8Array => {
    if (!Buffer.isBuffer(req.body)) throw new DsError("bad_request", "a MIMI request needs a body");
    return new Uint8Array(req.body);
  };
  const peerOf = (res: Response) => locals(res).peer!;

  router.post("/keyMaterial/:targetUser", async (req, res) => {
    send(res, 200, encodeKeyMaterialResponse(await keyMaterial(ctx, peerOf(res), param(req, "targetUser"), body(req))));
  });
  router.post("/update/:roomId", async (req, res) => {
    const answer = await hub.update(peerOf(res), param(req, "roomId"), body(req));
    ctx.metrics.commits.inc({ result: answer.responseCode === "success" ? "accepted" : `mimi_${answer.responseCode}` });
    send(res, 200, encodeUpdateRoomResponse(answer));
  });
  router.post("/submitMessage/:roomId", async (req, res) => {
    send(res, 200, encodeSubmitMessageResponse(await hub.submitMessage(peerOf(res), param(req, "roomId"), body(req))));
  });
  router.post("/groupInfo/:roomId", async (req, res) => {
    send(res, 200, encodeGroupInfoResponse(await hub.groupInfo(peerOf(res), param(req, "roomId"), body(req))));
  });
  router.post("/notify/:roomId", async (req, res) => {
    await follower.notify(peerOf(res), param(req, "roomId"), body(req));
    res.status(201).end();
  });

  app.use(MIMI_BASE, router);
  app.use((_req, _res, next) => next(new DsError("not_found", "no such endpoint")));
  app.use(errorHandler(ctx));
  return app;
}
