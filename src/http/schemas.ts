import type { z } from "zod";
import { DsError } from "../errors.js";

/** Request parsing for the routes; the shapes themselves live in src/wire (defined once). */

export function parse<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const r = schema.safeParse(value ?? {});
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new DsError("bad_request", `${issue.path.join(".") || "body"}: ${issue.message}`);
  }
  return r.data;
}

/** Non-negative integer query parameter with a default. */
export function intParam(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "string" || !/^\d{1,15}$/.test(value))
    throw new DsError("bad_request", `${name} must be a non-negative integer`);
  return Number(value);
}
