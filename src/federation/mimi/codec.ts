/**
 * The MIMI codecs, one import for callers: shared parts and options (codec-common.ts), keyMaterial
 * (codec-key-material.ts), update and submitMessage (codec-update.ts), notify and groupInfo
 * (codec-fanout.ts).
 */
export * from "./codec-common.js";
export * from "./codec-key-material.js";
export * from "./codec-update.js";
export * from "./codec-fanout.js";
