import type { Agent } from "undici";
import type { Clock } from "../../clock.js";
import { DsError, isErrorCode } from "../../errors.js";
import { peerAgent, peerRequest } from "../peer-request.js";
import { clientTlsOptions, type MimiTls } from "./tls.js";

export type MimiEndpoint = "keyMaterial" | "update" | "notify" | "submitMessage" | "groupInfo";

const DIRECTORY_PATH = "/.well-known/mimi-protocol-directory";
const TEMPLATE_VAR: Record<MimiEndpoint, string> = {
  keyMaterial: "{targetUser}",
  update: "{roomId}",
  notify: "{roomId}",
  submitMessage: "{roomId}",
  groupInfo: "{roomId}",
};
const PEER_AUTH_CODES = new Set(["unauthenticated", "replayed_request"]);

export interface MimiClientOptions {
  domain: string;
  peers: Readonly<Record<string, { url: string; protocol: string }>>;
  tls: MimiTls;
  timeoutMs: number;
  maxResponseBytes: number;
  directoryCacheSeconds: number;
  /** Directory cache age and `Retry-After` dates are measured on this clock (tests move it). */
  clock: Clock;
  onRequest?: (peer: string, endpoint: string) => void;
}

/**
 * Outbound MIMI calls: one undici Agent per peer carrying our client certificate and trusting only
 * that peer's anchors; endpoints found in the peer's directory (same origin as the configured URL);
 * `From: mimi@<our domain>` and `Host: <peer domain>` on every request (draft -06 §Transport).
 */
export class MimiClient {
  private agents = new Map<string, Agent>();
  private directories = new Map<string, { at: number; doc: Record<string, string> }>();

  constructor(private readonly opts: MimiClientOptions) {}

  speaksMimi(domain: string): boolean {
    return this.opts.peers[domain]?.protocol === "mimi";
  }

  mimiPeers(): string[] {
    return Object.keys(this.opts.peers).filter((d) => this.speaksMimi(d));
  }

  private base(domain: string): URL {
    const peer = this.opts.peers[domain];
    if (!peer || peer.protocol !== "mimi")
      throw new DsError("peer_unknown", `${domain} is not a MIMI peer of ${this.opts.domain}`);
    return new URL(peer.url);
  }

  private agent(domain: string): Agent {
    let a = this.agents.get(domain);
    if (!a) {
      a = peerAgent(this.opts.timeoutMs, 16, clientTlsOptions(this.opts.tls, domain));
      this.agents.set(domain, a);
    }
    return a;
  }

  /** The peer's directory; every URL must stay on the configured origin (no redirection of our calls elsewhere). */
  async directory(domain: string): Promise<Record<string, string>> {
    const cached = this.directories.get(domain);
    if (cached && this.opts.clock.nowMs() - cached.at < this.opts.directoryCacheSeconds * 1000) return cached.doc;
    const base = this.base(domain);
    const res = await this.send(domain, "GET", new URL(DIRECTORY_PATH, base).toString(), undefined);
    let doc: unknown;
    try {
      doc = JSON.parse(Buffer.from(res.body).toString("utf8"));
    } catch {
      throw new DsError("peer_error", `${domain} serves a MIMI directory that is not JSON`, { peer: domain });
    }
    if (typeof doc !== "object" || doc === null)
      throw new DsError("peer_error", `${domain}: invalid MIMI directory`, { peer: domain });
    const out: Record<string, string> = {};
    for (const [name, template] of Object.entries(doc as Record<string, unknown>)) {
      if (typeof template !== "string") continue;
      let url: URL;
      try {
        url = new URL(template.replace(/\{[A-Za-z]+\}/g, "x"));
      } catch {
        continue;
      }
      if (url.origin !== base.origin) continue;
      out[name] = template;
    }
    this.directories.set(domain, { at: this.opts.clock.nowMs(), doc: out });
    return out;
  }

  /** POSTs a MIMI body; resolves to the answer's status and bytes (2xx only; errors become DsErrors). */
  async post(
    domain: string,
    endpoint: MimiEndpoint,
    param: string,
    body: Uint8Array,
  ): Promise<{ status: number; body: Uint8Array }> {
    const template = (await this.directory(domain))[endpoint];
    if (!template || !template.includes(TEMPLATE_VAR[endpoint])) {
      throw new DsError("peer_error", `${domain}'s MIMI directory has no usable ${endpoint} endpoint`, { peer: domain });
    }
    // RFC 6570 simple expansion: the whole URI percent-encoded as one segment.
    const url = template.replace(TEMPLATE_VAR[endpoint], encodeURIComponent(param));
    this.opts.onRequest?.(domain, endpoint);
    return this.send(domain, "POST", url, body);
  }

  private async send(domain: string, method: "GET" | "POST", url: string, body: Uint8Array | undefined) {
    const res = await peerRequest(domain, url, {
      method,
      headers: {
        host: domain,
        from: `mimi@${this.opts.domain}`,
        accept: "application/octet-stream, application/json",
        ...(body ? { "content-type": "application/octet-stream" } : {}),
      },
      body: body ? Buffer.from(body) : null,
      dispatcher: this.agent(domain),
      timeoutMs: this.opts.timeoutMs,
      maxResponseBytes: this.opts.maxResponseBytes,
    });
    if (res.status >= 200 && res.status < 300) return { status: res.status, body: res.bytes };
    throw mimiErrorFrom(domain, res.status, res.headers["retry-after"], res.bytes, this.opts.clock);
  }

  async close(): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.close()));
    this.agents.clear();
  }
}

function retryAfterMs(header: string | string[] | undefined, clock: Clock): number | undefined {
  const v = Array.isArray(header) ? header[0] : header;
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - clock.nowMs());
}

/** A peer's refusal as a DsError: our own JSON error bodies pass through, anything else is a peer_error. */
export function mimiErrorFrom(
  domain: string,
  status: number,
  retryAfter: string | string[] | undefined,
  body: Uint8Array,
  clock: Clock,
): DsError {
  const wait = retryAfterMs(retryAfter, clock);
  const extra = wait !== undefined ? { retryAfterMs: wait } : {};
  let err: Record<string, unknown> | undefined;
  try {
    err = (JSON.parse(Buffer.from(body).toString("utf8")) as { error?: Record<string, unknown> }).error;
  } catch {
    err = undefined;
  }
  if (err && PEER_AUTH_CODES.has(String(err.code))) {
    return new DsError("peer_error", `${domain} refused this DS's MIMI credentials: ${String(err.message)}`, {
      peer: domain,
      peerCode: err.code,
    });
  }
  if (err && isErrorCode(err.code) && err.code !== "internal") {
    const { code, message, ...details } = err;
    return new DsError(code, typeof message === "string" ? message : code, { ...details, ...extra });
  }
  if (status === 429) return new DsError("rate_limited", `${domain} asks to slow down`, { peer: domain, ...extra });
  if (status === 503) return new DsError("unavailable", `${domain} is unavailable`, { peer: domain, ...extra });
  return new DsError("peer_error", `${domain} answered ${status}`, { peer: domain, status, ...extra });
}
