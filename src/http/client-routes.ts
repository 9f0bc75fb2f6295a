import { Router, type Request, type RequestHandler, type Response } from "express";
import type { AppContext } from "../context.js";
import { issuedBefore } from "../domain/revocations.js";
import { DsError } from "../errors.js";
import { jsonBody, PRE_AUTH_BODY_BYTES, readRawBody } from "./body.js";
import { StreamCap } from "./stream-caps.js";
import { encodeInboxEvent, encodeInboxPage } from "./inbox-json.js";
import { currentRequest } from "../request-context.js";
import { clientAuth, consume, locals } from "./middleware.js";
import { intParam, parse } from "./schemas.js";
import {
  ackBody,
  claimBody,
  commitBody,
  createGroupBody,
  devTokenBody,
  leaseBody,
  messageBody,
  uploadBody,
  type PeerInfo,
} from "../wire/client-api.js";
import { treeView, verifyTree } from "../mls/tree.js";

const SSE_WAIT_MS = 15_000;

function me(res: Response): string {
  return locals(res).client!;
}

function param(req: Request, name: string): string {
  const v = req.params[name];
  if (typeof v !== "string" || v.length === 0) throw new DsError("bad_request", `missing ${name}`);
  return v;
}

/** The client API of DESIGN.md: thin handlers — parse, authorize, one domain call, serialize. */
export function clientRoutes(ctx: AppContext): Router {
  const r = Router();

  const devOnly: RequestHandler = (_req, _res, next) => {
    if (!ctx.auth.devMode) throw new DsError("not_found", "dev tokens are disabled (auth.mode is jwt)");
    next();
  };
  // The one unauthenticated call with a body: a tiny one.
  const preAuthBody = [readRawBody(PRE_AUTH_BODY_BYTES, false), jsonBody(ctx.config.limits.jsonMaxDepth)];
  r.post("/dev/token", devOnly, ...preAuthBody, async (req, res) => {
    const { client } = parse(devTokenBody, req.body);
    const token = await ctx.auth.issueDevToken(client);
    await ctx.keys.touchDevice(client);
    res.json({ token });
  });

  r.use(clientAuth(ctx));
  r.use(readRawBody(ctx.config.limits.bodyBytes, true), jsonBody(ctx.config.limits.jsonMaxDepth));

  r.post("/key-packages", async (req, res) => {
    const body = parse(uploadBody, req.body);
    res.status(201).json(await ctx.keys.upload(me(res), body.keyPackages, body.lastResort, body.virtual ?? false));
  });

  r.get("/key-packages", async (_req, res) => {
    res.json({ keyPackages: await ctx.keys.list(me(res)) });
  });

  r.delete("/key-packages/:ref", async (req, res) => {
    await ctx.keys.remove(me(res), param(req, "ref"));
    res.status(204).end();
  });

  r.post("/key-packages/claim", async (req, res) => {
    const body = parse(claimBody, req.body);
    // KeyPackage-exhaustion protection: a requester may claim a given user only so often.
    await consume(ctx.limiters.claims, `${me(res)}>${body.user}`);
    try {
      const answer = await ctx.keys.claim({
        user: body.user,
        requester: me(res),
        cipherSuites: body.cipherSuites,
        versions: body.versions ?? ["mls10"],
      });
      ctx.metrics.claims.inc({ result: "ok" });
      res.json(answer);
    } catch (e) {
      ctx.metrics.claims.inc({ result: e instanceof DsError ? e.code : "error" });
      throw e;
    }
  });

  r.get("/users/:user/devices", async (req, res) => {
    res.json(await ctx.keys.devices(param(req, "user")));
  });

  r.delete("/devices/:client", async (req, res) => {
    await ctx.keys.removeDevice(me(res), param(req, "client"));
    res.status(204).end();
  });

  r.get("/peers/:domain", async (req, res) => {
    const domain = param(req, "domain");
    if (domain === ctx.config.domain) throw new DsError("bad_request", "that is this DS; see /.well-known/mls-federation");
    if (ctx.mimi?.client.speaksMimi(domain)) {
      // A MIMI peer publishes a directory of endpoints, not our discovery document (docs/MIMI.md).
      res.json({ domain, protocol: "mimi", directory: await ctx.mimi.client.directory(domain) });
      return;
    }
    const doc = await ctx.peerClient.discovery(domain);
    const info: PeerInfo = {
      domain: doc.domain,
      federationApi: doc.federationApi,
      protocolVersions: doc.protocolVersions,
      cipherSuites: doc.cipherSuites,
      identitySchemes: doc.identitySchemes ?? ["fedgate"],
      commonCipherSuites: ctx.config.cipherSuites.filter((s) => doc.cipherSuites.includes(s)),
      limits: doc.limits,
    };
    res.json(info);
  });

  r.post("/groups", async (req, res) => {
    const body = parse(createGroupBody, req.body);
    res.status(201).json(
      await ctx.groups.create(me(res), {
        groupId: body.groupId,
        cipherSuite: body.cipherSuite,
        mode: body.mode,
        ...(body.groupInfo ? { groupInfo: body.groupInfo } : {}),
        ...(body.replyTo ? { replyTo: body.replyTo } : {}),
      }),
    );
  });

  r.get("/groups/:groupId", async (req, res) => {
    res.json(await ctx.groups.get(me(res), param(req, "groupId")));
  });

  r.post("/groups/:groupId/commits", async (req, res) => {
    const body = parse(commitBody, req.body);
    try {
      const answer = await ctx.groups.submitCommit(me(res), param(req, "groupId"), body);
      ctx.metrics.commits.inc({ result: "accepted" });
      res.status(201).json(answer);
    } catch (e) {
      ctx.metrics.commits.inc({ result: e instanceof DsError ? e.code : "error" });
      throw e;
    }
  });

  r.post("/groups/:groupId/messages", async (req, res) => {
    const { message } = parse(messageBody, req.body);
    const answer = await ctx.groups.submitMessage(me(res), param(req, "groupId"), message);
    ctx.metrics.messages.inc({ result: "accepted" });
    res.status(202).json(answer);
  });

  r.get("/groups/:groupId/messages", async (req, res) => {
    const after = intParam(req.query.after, "after", 0);
    const limit = intParam(req.query.limit, "limit", ctx.config.limits.groupsLogPageSize);
    res.json(await ctx.groups.messages(me(res), param(req, "groupId"), after, limit));
  });

  r.post("/groups/:groupId/lease", async (req, res) => {
    const { ttlMs } = parse(leaseBody, req.body);
    res.status(201).json(await ctx.groups.acquireLease(me(res), param(req, "groupId"), ttlMs));
  });

  r.delete("/groups/:groupId/lease/:token", async (req, res) => {
    await ctx.groups.releaseLease(me(res), param(req, "groupId"), param(req, "token"));
    res.status(204).end();
  });

  r.get("/groups/:groupId/group-info", async (req, res) => {
    res.json(await ctx.groups.groupInfo(me(res), param(req, "groupId")));
  });

  r.get("/groups/:groupId/tree", async (req, res) => {
    const gi = await ctx.groups.groupInfo(me(res), param(req, "groupId"));
    const leaf = req.query.leaf === undefined ? undefined : intParam(req.query.leaf, "leaf", 0);
    const view = treeView(gi, gi.epoch, leaf);
    res.json(req.query.verify === "true" ? { ...view, verification: await verifyTree(gi) } : view);
  });

  r.get("/groups/:groupId/commit-log", async (req, res) => {
    const after = req.query.after === undefined || req.query.after === "-1" ? -1 : intParam(req.query.after, "after", 0);
    res.json({ entries: await ctx.groups.commitLog(me(res), param(req, "groupId"), after) });
  });

  const { limits } = ctx.config;
  const longPolls = new StreamCap("long_poll", limits.longPollsPerClient, "limits.longPollsPerClient");
  const streams = new StreamCap("sse", limits.sseStreamsPerClient, "limits.sseStreamsPerClient");

  r.get("/inbox", async (req, res) => {
    const after = intParam(req.query.after, "after", 0);
    const limit = intParam(req.query.limit, "limit", ctx.config.limits.inboxPageSize);
    const waitMs = intParam(req.query.waitMs, "waitMs", 0);
    // ack=<cursor>: what POST /inbox/ack does, in the read's round trip (a polling reader's usual pair).
    const ack = req.query.ack === undefined ? undefined : intParam(req.query.ack, "ack", 0);
    let signal: AbortSignal | undefined;
    if (waitMs > 0) {
      if (limits.maxWaitMs > 0) longPolls.hold(me(res), res);
      // Only a wait needs to learn that its client left (an abort per plain read cost measurable CPU).
      const abort = new AbortController();
      res.on("close", () => abort.abort());
      signal = abort.signal;
    }
    // Only once nothing can refuse the request any more (parameters, the long-poll cap).
    if (ack !== undefined) await ctx.inbox.ack(me(res), ack);
    const page = await ctx.inbox.readRows(me(res), after, limit, waitMs, signal);
    res.setHeader("content-type", "application/json; charset=utf-8");
    res.send(encodeInboxPage(page));
  });

  r.post("/inbox/ack", async (req, res) => {
    const { upTo } = parse(ackBody, req.body);
    await ctx.inbox.ack(me(res), upTo);
    res.status(204).end();
  });

  r.get("/inbox/stream", async (req, res) => {
    const client = me(res);
    // On reconnect the browser's Last-Event-ID wins over the ?after= baked into the URL.
    let after = intParam(req.header("last-event-id") ?? req.query.after, "after", 0);
    streams.hold(client, res);
    const abort = new AbortController();
    res.on("close", () => abort.abort());
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" });
    res.write(": mls-fedgate inbox\n\n");
    try {
      while (!abort.signal.aborted) {
        // A stream opened before its device was deleted ends with the deletion (within revocationCacheMs + one wait).
        if (issuedBefore(locals(res).issuedAt ?? 0, await ctx.revocations.revokedAt(client))) break;
        const { rows, next } = await ctx.inbox.readRows(
          client,
          after,
          ctx.config.limits.inboxPageSize,
          SSE_WAIT_MS,
          abort.signal,
        );
        for (const row of rows) res.write(encodeInboxEvent(row));
        if (rows.length === 0 && !abort.signal.aborted) {
          res.write(": keep-alive\n\n");
          // maxWaitMs may be 0: never spin.
          if (ctx.config.limits.maxWaitMs < SSE_WAIT_MS)
            await new Promise((r) => setTimeout(r, SSE_WAIT_MS - ctx.config.limits.maxWaitMs));
        }
        after = next;
      }
    } catch (err) {
      (currentRequest()?.log ?? ctx.log).warn({ err }, "inbox stream ended by an error");
    }
    res.end();
  });
  return r;
}
