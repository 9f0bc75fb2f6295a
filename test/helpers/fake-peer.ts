import { createServer, type IncomingMessage, type Server } from "node:http";
import { request } from "undici";
import { signRequest } from "../../src/federation/service-auth.js";
import type { SigningKey } from "../../src/federation/keys.js";
import { freePort } from "./global-setup.js";
import { testKey } from "./providers.js";

/** A request the real DSs made to the fake peer. */
export interface SeenRequest {
  method: string;
  path: string;
  body: unknown;
}

export type Script = (req: SeenRequest) => { status: number; body?: unknown } | undefined;

export interface Answer<T = Record<string, unknown>> {
  status: number;
  body: T & { error?: { code: string; message: string; [k: string]: unknown } };
}

/**
 * A scripted hostile provider: a real HTTP server on 127.0.0.1 serving its discovery document with
 * its own valid EdDSA key, so the real DSs that list it as a peer verify its signed requests like
 * any other peer's. Tests sign whatever they want with `call`, and answer the DSs' requests to it
 * with `script` (the attacker's side of a pull, a claim, …).
 */
export class FakePeer {
  readonly seen: SeenRequest[] = [];
  /** Answers requests the real DSs make; undefined falls back to a plain refusal (or deliver's 200). */
  script: Script = () => undefined;

  private constructor(
    readonly domain: string,
    readonly key: SigningKey,
    readonly url: string,
    private readonly server: Server,
  ) {}

  static async start(domain = "c.example"): Promise<FakePeer> {
    const key = await testKey();
    const port = await freePort();
    const server = createServer((req, res) => {
      void readBody(req).then((raw) => {
        const answer = peer.answer(req.method ?? "GET", req.url ?? "/", raw);
        res.writeHead(answer.status, { "content-type": "application/json" });
        res.end(answer.body === undefined ? "" : JSON.stringify(answer.body));
      });
    });
    const peer = new FakePeer(domain, key, `http://127.0.0.1:${port}`, server);
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    return peer;
  }

  private answer(method: string, path: string, raw: string): { status: number; body?: unknown } {
    if (path === "/.well-known/mls-federation") {
      return {
        status: 200,
        body: {
          domain: this.domain,
          federationApi: "1",
          protocolVersions: ["mls10"],
          cipherSuites: [1],
          jwks: { keys: [this.key.publicJwk] },
          limits: { bodyBytes: 1 << 20, messageBytes: 1 << 18, keyPackageBytes: 8192, maxTokenLifetimeSeconds: 60 },
        },
      };
    }
    let body: unknown;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      body = raw;
    }
    const seen = { method, path, body };
    this.seen.push(seen);
    const scripted = this.script(seen);
    if (scripted) return scripted;
    if (path === "/federation/v1/deliver") return { status: 200, body: { accepted: 0 } };
    return { status: 404, body: { error: { code: "not_found", message: "the fake peer has no script for this" } } };
  }

  /** Requests the DSs made to this peer whose path starts with `prefix`. */
  requests(prefix: string): SeenRequest[] {
    return this.seen.filter((r) => r.path.startsWith(prefix));
  }

  /** A federation request signed with this peer's own (valid, published) key. */
  async call<T = Record<string, unknown>>(
    target: { url: string; domain: string },
    method: "GET" | "POST",
    path: string,
    body?: unknown,
    opts: { iss?: string } = {},
  ): Promise<Answer<T>> {
    const bytes = body === undefined ? new Uint8Array() : Buffer.from(JSON.stringify(body));
    const token = await signRequest(this.key, opts.iss ?? this.domain, target.domain, { method, path, body: bytes }, 60);
    const res = await request(target.url + path, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? null : bytes,
    });
    const text = await res.body.text();
    return { status: res.statusCode, body: (text ? JSON.parse(text) : {}) as Answer<T>["body"] };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}
