/**
 * Ceiling H: a bare express app on the DS's express version that parses the same JSON body (same
 * body limit) and answers 202 with a body of the DS's shape — no auth, no MLS, no store. What the
 * DS reaches relative to this is the fraction of the machine's HTTP ceiling it keeps.
 * Usage: node dist/bench/ceiling-h.js <port>
 */
import express from "express";

const port = Number(process.argv[2] ?? 0);
const app = express();
app.disable("x-powered-by");
app.set("etag", false);
app.use(express.json({ limit: 1048576 }));
let seq = 0;
app.post("/v1/groups/:groupId/messages", (req, res) => {
  if (typeof (req.body as { message?: unknown }).message !== "string") {
    res.status(400).json({ error: { code: "bad_request", message: "message missing" } });
    return;
  }
  res.status(202).json({ seq: ++seq });
});
const server = app.listen(port, "127.0.0.1", () => {
  const addr = server.address();
  process.stdout.write(`ceiling-h listening on ${typeof addr === "object" && addr ? addr.port : port}\n`);
});
server.keepAliveTimeout = 65_000;
process.on("SIGTERM", () => server.close(() => process.exit(0)));
