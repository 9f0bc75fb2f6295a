import { Agent, request, type buildConnector, type Dispatcher } from "undici";
import { DsError } from "../errors.js";

/** One outbound request to a peer, whichever binding (fedgate or MIMI) makes it. */
export interface PeerRequest {
  method: "GET" | "POST" | "DELETE";
  headers: Record<string, string>;
  body: Uint8Array | null;
  dispatcher: Agent;
  /** The whole exchange, headers and body, must finish within this. */
  timeoutMs: number;
  /** Largest answer body accepted from the peer. */
  maxResponseBytes: number;
}

export interface PeerResponse {
  status: number;
  headers: Dispatcher.ResponseData["headers"];
  bytes: Uint8Array;
}

/**
 * A keep-alive Agent whose connect, headers and body each time out after `timeoutMs`; `connect`
 * adds socket options (a MIMI peer's TLS).
 */
export function peerAgent(timeoutMs: number, connections: number, connect: buildConnector.BuildOptions = {}): Agent {
  return new Agent({
    keepAliveTimeout: 30_000,
    connections,
    connect: { timeout: timeoutMs, ...connect },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
}

/**
 * Sends `req` to `url` on `peer` and reads the whole answer, whatever its status (the binding
 * interprets it). A peer that cannot be reached, times out, or answers more than the cap is
 * `peer_unreachable`.
 */
export async function peerRequest(peer: string, url: string, req: PeerRequest): Promise<PeerResponse> {
  let res;
  try {
    res = await request(url, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      dispatcher: req.dispatcher,
      signal: AbortSignal.timeout(req.timeoutMs),
    });
  } catch (e) {
    throw new DsError("peer_unreachable", `${peer} did not answer: ${(e as Error).message}`, { peer });
  }
  let bytes: Uint8Array;
  try {
    bytes = await readCapped(res.body, req.maxResponseBytes);
  } catch (e) {
    throw new DsError("peer_unreachable", `${peer} answer failed: ${(e as Error).message}`, { peer });
  }
  return { status: res.statusCode, headers: res.headers, bytes };
}

async function readCapped(body: AsyncIterable<Buffer>, max: number): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > max) throw new Error(`answer exceeds ${max} bytes`);
    chunks.push(chunk);
  }
  return new Uint8Array(Buffer.concat(chunks));
}
