import { Router, type Request, type Response } from "express";
import type { AppContext } from "../context.js";
import { DsError } from "../errors.js";
import { domainOf, userOf } from "../store/port.js";
import { jsonBody, readRawBody } from "./body.js";
import { consume, locals } from "./middleware.js";
import { intParam, parse } from "./schemas.js";
import {
  deliverBody,
  deviceUpdateBody,
  fedClaimBody,
  fedLeaseBody,
  fedReleaseBody,
  fedSubmitBody,
  type Discovery,
} from "../wire/federation.js";

function peerOf(res: Response): string {
  return locals(res).peer!;
}

function param(req: Request, name: string): string {
  const v = req.params[name];
  if (typeof v !== "string" || v.length === 0) throw new DsError("bad_request", `missing ${name}`);
  return v;
}

/** A peer speaks only for its own clients. */
function requireFrom(peer: string, client: string): void {
  if (domainOf(client) !== peer) throw new DsError("forbidden", `${peer} cannot act for ${client}`);
}

export function discoveryDocument(ctx: AppContext): Discovery {
  const { limits } = ctx.config;
  return {
    domain: ctx.config.domain,
    federationApi: "1",
    protocolVersions: ["mls10"],
    cipherSuites: [...ctx.config.cipherSuites],
    /** Credential identity forms this provider's clients may use (docs/INTEROP.md). */
    identitySchemes: [...ctx.config.identity.schemes],
    jwks: { keys: [ctx.signingKey.publicJwk, ...ctx.config.federation.previousPublicKeys] },
    limits: {
      bodyBytes: limits.bodyBytes,
      messageBytes: limits.messageBytes,
      keyPackageBytes: limits.keyPackageBytes,
      maxTokenLifetimeSeconds: 60,
    },
  };
}

/** The Federation API (docs/FEDERATION.md): every call signed by a configured peer. */
export function federationRoutes(ctx: AppContext): Router {
  const r = Router();

  // Before authentication nothing but headers: the token's signature and claims are verified
  // first, then the raw body is read (capped, not parsed) and checked against the signed hash
  // (bdh), and only then parsed.
  r.use(async (req, res, next) => {
    locals(res).peerToken = await ctx.peerAuth.verifyToken(req.header("authorization"), {
      method: req.method,
      path: req.originalUrl,
    });
    next();
  });
  r.use(readRawBody(ctx.config.limits.bodyBytes, false));
  r.use(async (_req, res, next) => {
    const peer = await ctx.peerAuth.verifyBody(locals(res).peerToken!, locals(res).rawBody ?? Buffer.alloc(0));
    locals(res).peer = peer;
    await consume(ctx.limiters.peer, peer);
    next();
  });
  r.use(jsonBody(ctx.config.limits.jsonMaxDepth));

  r.post("/key-packages/claim", async (req, res) => {
    const peer = peerOf(res);
    const body = parse(fedClaimBody, req.body);
    requireFrom(peer, body.requester);
    if (domainOf(body.user) !== ctx.config.domain)
      throw new DsError("unknown_user", `${body.user} is not a user of ${ctx.config.domain}`);
    // The requester name is the peer's to choose, so the limits are keyed by what the peer cannot
    // vary: its domain per target user, and its domain overall.
    await consume(ctx.limiters.claims, `peer:${peer}>${body.user}`);
    await consume(ctx.limiters.peerClaims, peer);
    res.json(
      await ctx.keys.claimLocal({
        user: body.user,
        requester: body.requester,
        cipherSuites: body.cipherSuites,
        versions: body.versions,
      }),
    );
  });

  r.get("/users/:user/devices", async (req, res) => {
    const user = param(req, "user");
    if (domainOf(user) !== ctx.config.domain) throw new DsError("unknown_user", `${user} is not a user of ${ctx.config.domain}`);
    res.json(await ctx.keys.devices(user));
  });

  const hubbed = (groupId: string) => ctx.groups.hub.ownGroup(groupId);

  r.post("/groups/:groupId/submit", async (req, res) => {
    const body = parse(fedSubmitBody, req.body);
    requireFrom(peerOf(res), body.sender);
    const g = await hubbed(param(req, "groupId"));
    if (body.kind === "commit") {
      try {
        const answer = await ctx.groups.hub.acceptFromPeer(peerOf(res), body.sender, g, body);
        ctx.metrics.commits.inc({ result: "accepted" });
        res.status(201).json(answer);
      } catch (e) {
        ctx.metrics.commits.inc({ result: e instanceof DsError ? e.code : "error" });
        throw e;
      }
      return;
    }
    const { seq } = await ctx.groups.hub.acceptFromPeer(peerOf(res), body.sender, g, body);
    res.status(202).json({ seq });
  });

  r.post("/groups/:groupId/lease", async (req, res) => {
    const body = parse(fedLeaseBody, req.body);
    requireFrom(peerOf(res), body.holder);
    const g = await hubbed(param(req, "groupId"));
    res.status(201).json(await ctx.groups.acquireLease(body.holder, g.groupId, body.ttlMs));
  });

  r.post("/groups/:groupId/lease/release", async (req, res) => {
    const body = parse(fedReleaseBody, req.body);
    requireFrom(peerOf(res), body.holder);
    const g = await hubbed(param(req, "groupId"));
    await ctx.groups.releaseLease(body.holder, g.groupId, body.leaseToken);
    res.status(204).end();
  });

  r.get("/groups/:groupId", async (req, res) => {
    const member = String(req.query.member ?? "");
    requireFrom(peerOf(res), member);
    const g = await hubbed(param(req, "groupId"));
    res.json(ctx.groups.hub.peerView(peerOf(res), member, g));
  });

  r.get("/groups/:groupId/group-info", async (req, res) => {
    const member = String(req.query.member ?? "");
    requireFrom(peerOf(res), member);
    const g = await hubbed(param(req, "groupId"));
    res.json(await ctx.groups.groupInfo(member, g.groupId));
  });

  r.get("/groups/:groupId/messages", async (req, res) => {
    const g = await hubbed(param(req, "groupId"));
    const after = intParam(req.query.after, "after", 0);
    const limit = Math.min(intParam(req.query.limit, "limit", 1000), 1000);
    res.json(await ctx.groups.hub.peerLog(peerOf(res), g, after, limit));
  });

  r.get("/groups/:groupId/commit-log", async (req, res) => {
    const g = await hubbed(param(req, "groupId"));
    // after=-1 (or absent) includes the commit of epoch 0.
    const after = req.query.after === undefined || req.query.after === "-1" ? -1 : intParam(req.query.after, "after", 0);
    res.json(await ctx.groups.hub.peerCommitLog(peerOf(res), g, after));
  });

  r.post("/deliver", async (req, res) => {
    const peer = peerOf(res);
    const body = parse(deliverBody, req.body);
    const refused = await ctx.replica.deliverBatch(peer, body.groups, body.messages);
    ctx.metrics.deliverRefused.inc({ peer }, refused.length);
    res.json({ accepted: body.messages.length - refused.length, ...(refused.length > 0 ? { refused } : {}) });
  });

  r.post("/device-updates", async (req, res) => {
    const peer = peerOf(res);
    const body = parse(deviceUpdateBody, req.body);
    if (domainOf(body.user) !== peer || body.devices.some((d) => userOf(d.client) !== body.user)) {
      throw new DsError("forbidden", `${peer} cannot speak for ${body.user}`);
    }
    res.json({ notified: await ctx.devices.remoteChange(body) });
  });

  return r;
}
