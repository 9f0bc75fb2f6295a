import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { peerAgent, peerRequest, type PeerRequest } from "../../src/federation/peer-request.js";
import { freePort } from "../helpers/global-setup.js";

describe("peerRequest (the request path both federation bindings share)", () => {
  let server: Server;
  let base: string;
  const agent = peerAgent(2000, 4);
  const req = (over: Partial<PeerRequest> = {}): PeerRequest => ({
    method: "GET",
    headers: {},
    body: null,
    dispatcher: agent,
    timeoutMs: 2000,
    maxResponseBytes: 16,
    ...over,
  });

  beforeAll(async () => {
    server = createServer((rq, rs) => {
      if (rq.url === "/big") {
        rs.end("x".repeat(17));
      } else if (rq.url === "/busy") {
        rs.writeHead(503, { "retry-after": "7" }).end("later");
      } else {
        rs.end("0123456789abcdef");
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await agent.close();
    await new Promise((r) => server.close(r));
  });

  it("reads an answer of exactly the cap", async () => {
    const res = await peerRequest("b.example", `${base}/`, req());
    expect(res.status).toBe(200);
    expect(Buffer.from(res.bytes).toString("utf8")).toBe("0123456789abcdef");
  });

  it("hands back a refusal's status, headers and body for the binding to interpret", async () => {
    const res = await peerRequest("b.example", `${base}/busy`, req());
    expect(res.status).toBe(503);
    expect(res.headers["retry-after"]).toBe("7");
    expect(Buffer.from(res.bytes).toString("utf8")).toBe("later");
  });

  it("turns an answer over the cap into peer_unreachable", async () => {
    await expect(peerRequest("b.example", `${base}/big`, req())).rejects.toMatchObject({
      code: "peer_unreachable",
      message: "b.example answer failed: answer exceeds 16 bytes",
      details: { peer: "b.example" },
    });
  });

  it("turns a refused connection into peer_unreachable", async () => {
    const port = await freePort();
    await expect(peerRequest("c.example", `http://127.0.0.1:${port}/`, req())).rejects.toMatchObject({
      code: "peer_unreachable",
      message: expect.stringMatching(/^c\.example did not answer: /) as unknown,
      details: { peer: "c.example" },
    });
  });
});
