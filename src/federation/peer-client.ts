import type { Agent } from "undici";
import type { JWK } from "jose";
import { systemClock, type Clock } from "../clock.js";
import { DsError, isErrorCode } from "../errors.js";
import type { SigningKey } from "./keys.js";
import { signRequest, type PeerKeySource } from "./service-auth.js";
import { discoveryDocument, type Discovery } from "../wire/federation.js";
import { currentRequestId } from "../request-context.js";
import { peerAgent, peerRequest } from "./peer-request.js";

export type { Discovery };

const MIN_REFRESH_INTERVAL_MS = 30_000;
/** Codes about our own server-to-server credentials: the client did nothing wrong. */
const PEER_AUTH_CODES = new Set(["unauthenticated", "replayed_request"]);

export interface PeerClientOptions {
  domain: string;
  peers: Readonly<Record<string, { url: string; protocol?: string }>>;
  key: SigningKey;
  tokenTtlSeconds: number;
  timeoutMs: number;
  discoveryCacheSeconds: number;
  /** Largest answer body accepted from a peer. */
  maxResponseBytes: number;
  onRequest?: (peer: string, path: string) => void;
  clock?: Clock;
}

/**
 * Outbound server-to-server calls: one keep-alive undici Agent, every request signed, timeouts on
 * connect/headers/body, answers capped in size, and a peer's DS errors passed through unchanged.
 */
export class PeerClient implements PeerKeySource {
  private agent: Agent;
  private discoveries = new Map<string, { at: number; doc: Discovery }>();
  /** Peer domains come from untrusted input (user ids, paths, tokens): a Map, never a property lookup. */
  private readonly peers: ReadonlyMap<string, { url: string }>;
  private readonly clock: Clock;

  constructor(private readonly opts: PeerClientOptions) {
    this.peers = new Map(Object.entries(opts.peers));
    this.clock = opts.clock ?? systemClock;
    this.agent = peerAgent(opts.timeoutMs, 64);
  }

  isPeer(domain: string): boolean {
    return this.peers.has(domain);
  }

  peerDomains(): string[] {
    return [...this.peers.keys()];
  }

  private baseUrl(domain: string): string {
    const peer = this.peers.get(domain);
    if (!peer) throw new DsError("peer_unknown", `${domain} is not a configured peer of ${this.opts.domain}`);
    return peer.url.replace(/\/$/, "");
  }

  async discovery(domain: string, refresh = false): Promise<Discovery> {
    const cached = this.discoveries.get(domain);
    if (cached && !refresh && this.clock.nowMs() - cached.at < this.opts.discoveryCacheSeconds * 1000) return cached.doc;
    const raw = await this.send(domain, "GET", "/.well-known/mls-federation", undefined, false);
    const parsed = discoveryDocument.safeParse(raw);
    if (!parsed.success || parsed.data.domain !== domain) {
      throw new DsError("peer_error", `${domain} serves an invalid discovery document`);
    }
    this.discoveries.set(domain, { at: this.clock.nowMs(), doc: parsed.data });
    return parsed.data;
  }

  async keysOf(domain: string, refresh: boolean): Promise<JWK[]> {
    // A MIMI peer authenticates by mTLS on the MIMI listener; it has no fedgate keys.
    if (this.opts.peers[domain]?.protocol === "mimi") {
      throw new DsError("forbidden", `${domain} is configured to speak MIMI, not the fedgate binding`, { reason: "mimi_peer" });
    }
    // A forged token must not make us refetch on every request: at most one forced refresh per interval.
    const cached = this.discoveries.get(domain);
    const allowRefresh = refresh && (!cached || this.clock.nowMs() - cached.at > MIN_REFRESH_INTERVAL_MS);
    return (await this.discovery(domain, allowRefresh)).jwks.keys as JWK[];
  }

  /** A signed federation call; resolves to the parsed JSON answer (undefined for 204). */
  call<T = unknown>(domain: string, method: "GET" | "POST" | "DELETE", path: string, body?: unknown): Promise<T> {
    return this.send(domain, method, path, body, true) as Promise<T>;
  }

  private async send(
    domain: string,
    method: "GET" | "POST" | "DELETE",
    path: string,
    body: unknown,
    sign: boolean,
  ): Promise<unknown> {
    const url = this.baseUrl(domain) + path;
    const bytes = body === undefined ? new Uint8Array() : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    // The request this call serves (if any) travels on, so one step greps as one across providers.
    const requestId = currentRequestId();
    if (requestId) headers["x-request-id"] = requestId;
    if (sign) {
      const token = await signRequest(
        this.opts.key,
        this.opts.domain,
        domain,
        { method, path, body: bytes },
        this.opts.tokenTtlSeconds,
        this.clock,
      );
      headers.authorization = `Bearer ${token}`;
    }
    this.opts.onRequest?.(domain, path);
    const res = await peerRequest(domain, url, {
      method,
      headers,
      body: body === undefined ? null : bytes,
      dispatcher: this.agent,
      timeoutMs: this.opts.timeoutMs,
      maxResponseBytes: this.opts.maxResponseBytes,
    });
    if (res.status === 204) return undefined;
    const text = Buffer.from(res.bytes.buffer, res.bytes.byteOffset, res.bytes.byteLength).toString("utf8");
    let json: unknown;
    try {
      json = text.length ? JSON.parse(text) : undefined;
    } catch {
      throw new DsError("peer_error", `${domain} answered ${res.status} with non-JSON`, { peer: domain });
    }
    if (res.status >= 200 && res.status < 300) return json;
    const err = (json as { error?: Record<string, unknown> } | undefined)?.error;
    if (err && PEER_AUTH_CODES.has(String(err.code))) {
      throw new DsError("peer_error", `${domain} refused this DS's credentials: ${String(err.message)}`, {
        peer: domain,
        peerCode: err.code,
      });
    }
    if (err && isErrorCode(err.code) && err.code !== "internal") {
      const { code, message, ...details } = err;
      throw new DsError(code, typeof message === "string" ? message : code, details);
    }
    throw new DsError("peer_error", `${domain} answered ${res.status}`, { peer: domain, status: res.status });
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
