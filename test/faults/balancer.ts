/**
 * A tiny HTTP load balancer for the fault tests: round-robin over DS replicas; a replica that
 * refuses or drops a connection is taken out for a while and the request is retried on the next
 * one (safe here: every DS submission is idempotent by its MLS bytes).
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Agent, request } from "undici";

const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "host", "content-length", "upgrade"]);

export class Balancer {
  private next = 0;
  private downUntil = new Map<string, number>();
  private agent = new Agent({ connections: 64, keepAliveTimeout: 10_000, headersTimeout: 60_000, bodyTimeout: 60_000 });
  /** Requests that had to be retried on another replica. */
  failovers = 0;

  private constructor(
    private readonly server: Server,
    readonly backends: string[],
  ) {}

  static async start(backends: string[]): Promise<Balancer> {
    const server = createServer();
    const lb = new Balancer(server, backends);
    server.on("request", (req, res) => {
      lb.handle(req)
        .then(({ status, headers, body }) => {
          res.writeHead(status, headers);
          res.end(body);
        })
        .catch((e: unknown) => {
          res.writeHead(502, { "content-type": "application/json" });
          res.end(
            JSON.stringify({ error: { code: "peer_unreachable", message: `no replica answered: ${(e as Error).message}` } }),
          );
        });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return lb;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private async handle(req: IncomingMessage): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(k) && typeof v === "string") headers[k] = v;
    let lastError: unknown;
    for (let attempt = 0; attempt < this.backends.length * 2; attempt++) {
      const backend = this.pick();
      try {
        const res = await request(backend + req.url, {
          method: req.method as "GET",
          headers,
          ...(body.length || req.method === "POST" ? { body } : {}),
          dispatcher: this.agent,
        });
        const out: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) if (!HOP_BY_HOP.has(k) && typeof v === "string") out[k] = v;
        return { status: res.statusCode, headers: out, body: Buffer.from(await res.body.arrayBuffer()) };
      } catch (e) {
        lastError = e;
        this.downUntil.set(backend, Date.now() + 2000);
        this.failovers += 1;
      }
    }
    throw lastError instanceof Error ? lastError : new Error(String(lastError));
  }

  private pick(): string {
    const now = Date.now();
    for (let i = 0; i < this.backends.length; i++) {
      const b = this.backends[this.next++ % this.backends.length]!;
      if ((this.downUntil.get(b) ?? 0) <= now) return b;
    }
    return this.backends[this.next++ % this.backends.length]!;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.agent.close();
  }
}
