import express, { type Router } from "express";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { DsError } from "../errors.js";

/**
 * The page may load its own scripts and styles and talk to this DS only. Text is rendered as text
 * (never HTML), and this policy is the second line against XSS: no inline or foreign script runs.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** dist/web, found from dist/src/http (built) or src/http (tests run the sources). */
export function webRoot(): string | undefined {
  const here = dirname(fileURLToPath(import.meta.url));
  return [join(here, "..", "..", "dist", "web"), join(here, "..", "..", "web")].find((dir) => existsSync(join(dir, "app.js")));
}

/** The web messenger's static files (built by `npm run build`), served at /app/. */
export function webApp(root = webRoot()): Router {
  const r = express.Router();
  r.use((req, res, next) => {
    // /app → /app/: the page's relative URLs (app.js, style.css) resolve under /app/.
    if (req.path === "/" && !req.originalUrl.split("?")[0]!.endsWith("/")) return res.redirect(301, `${req.baseUrl}/`);
    res.setHeader("content-security-policy", CONTENT_SECURITY_POLICY);
    res.setHeader("x-content-type-options", "nosniff");
    res.setHeader("referrer-policy", "no-referrer");
    res.setHeader("cache-control", "no-cache");
    next();
  });
  if (!root) {
    r.use((_req, _res, next) => next(new DsError("unavailable", "the web messenger is not built (run npm run build)")));
    return r;
  }
  r.use(express.static(root, { index: "index.html", redirect: true, dotfiles: "ignore" }));
  return r;
}
