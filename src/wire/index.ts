/**
 * Wire shapes of both APIs, defined once (zod; TypeScript types inferred). No Node APIs and no
 * express here: the server, the peer client and the SDK (browser and Node) import the same module.
 */
export * from "./ids.js";
export * from "./shapes.js";
export * from "./client-api.js";
export * from "./federation.js";
export * from "./client-routes.js";
export * from "./openapi.js";
