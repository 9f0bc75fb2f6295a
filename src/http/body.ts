import express, { type RequestHandler } from "express";
import { DsError } from "../errors.js";
import { locals } from "./middleware.js";

/** Bodies of unauthenticated calls (POST /v1/dev/token) are tiny; nothing bigger is read before authentication. */
export const PRE_AUTH_BODY_BYTES = 4096;

const OPEN_BRACKET = 0x5b;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACKET = 0x5d;
const CLOSE_BRACE = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * True when JSON text nests arrays/objects deeper than `maxDepth`. One linear pass over the bytes,
 * skipping string contents, so `[[[[…` of 1 MiB costs a scan (about a millisecond), not a parse
 * that builds half a million arrays. Malformed text is left to JSON.parse.
 */
export function jsonDeeperThan(bytes: Uint8Array, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (inString) {
      if (b === BACKSLASH) i++;
      else if (b === QUOTE) inString = false;
    } else if (b === QUOTE) inString = true;
    else if (b === OPEN_BRACKET || b === OPEN_BRACE) {
      if (++depth > maxDepth) return true;
    } else if (b === CLOSE_BRACKET || b === CLOSE_BRACE) depth--;
  }
  return false;
}

/** Strict JSON of a request body: an object or array, at most `maxDepth` deep, UTF-8. */
export function parseJsonBody(raw: Uint8Array, maxDepth: number): unknown {
  if (jsonDeeperThan(raw, maxDepth)) {
    throw new DsError("bad_request", `JSON nesting deeper than ${maxDepth} levels`, { reason: "json_too_deep" });
  }
  const text = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("utf8");
  const first = text.trimStart()[0];
  if (first !== "{" && first !== "[") throw new DsError("bad_request", "body is not valid JSON (an object or array)");
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new DsError("bad_request", "body is not valid JSON");
  }
}

/**
 * Reads the raw body (up to `limit` bytes, over it → 413) into `locals.rawBody` without parsing it.
 * `inflate: false` where the reader runs before authentication: no decompression for strangers.
 */
export function readRawBody(limit: number, inflate: boolean): RequestHandler {
  const raw = express.raw({ type: () => true, limit, inflate });
  return (req, res, next) => {
    raw(req, res, (err?: unknown) => {
      if (err) return next(err);
      locals(res).rawBody = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      req.body = undefined;
      next();
    });
  };
}

/** Parses `locals.rawBody` as JSON into req.body when the request says it is JSON (others keep no body). */
export function jsonBody(maxDepth: number): RequestHandler {
  return (req, res, next) => {
    const raw = locals(res).rawBody;
    if (raw && req.is("application/json")) {
      const charset = /;\s*charset=([^;\s]+)/i.exec(req.header("content-type") ?? "")?.[1]?.toLowerCase();
      if (charset && charset !== "utf-8" && charset !== "utf8")
        throw new DsError("bad_request", `unsupported charset ${charset}: JSON bodies are UTF-8`);
      req.body = raw.length === 0 ? {} : parseJsonBody(raw, maxDepth);
    }
    next();
  };
}
