import { z } from "zod";
import { b64, clientId, groupMode, userId } from "./ids.js";
import { commitBundle, logMessage } from "./shapes.js";

/** Request and answer bodies of the client API (/v1, docs/API.md). */

const suiteList = z.array(z.number().int().min(1).max(0xffff)).min(1).max(64);

export const devTokenBody = z.strictObject({ client: clientId });
export const devTokenAnswer = z.object({ token: z.string() });

export const uploadBody = z.strictObject({
  keyPackages: z.array(b64).max(10_000),
  lastResort: b64.optional(),
  /** Single-client mode (seed 003): the KeyPackages are the user's virtual client's. */
  virtual: z.boolean().optional(),
});
export const keyPackageMeta = z.object({
  ref: z.string(),
  cipherSuite: z.number().int(),
  notAfter: z.number().int(),
  lastResort: z.boolean(),
});
export const uploadAnswer = z.object({
  accepted: z.array(keyPackageMeta),
  rejected: z.array(z.object({ index: z.number().int().min(0), code: z.string(), message: z.string() })),
});
export type UploadAnswer = z.infer<typeof uploadAnswer>;
export const keyPackageList = z.object({ keyPackages: z.array(keyPackageMeta) });

export const claimBody = z.strictObject({
  user: userId,
  cipherSuites: suiteList,
  versions: z.array(z.string().max(16)).max(8).optional(),
});

export const peerInfo = z.object({
  domain: z.string(),
  federationApi: z.string(),
  protocolVersions: z.array(z.string()),
  cipherSuites: z.array(z.number().int()),
  identitySchemes: z.array(z.string()),
  /** The suites both this DS and the peer accept. */
  commonCipherSuites: z.array(z.number().int()),
  limits: z.record(z.string(), z.unknown()),
});
export type PeerInfo = z.infer<typeof peerInfo>;

export const createGroupBody = z.strictObject({
  groupId: z.string().min(1).max(512),
  cipherSuite: z.number().int(),
  mode: groupMode.default("ordered"),
  groupInfo: b64.optional(),
  replyTo: z.string().min(1).max(512).optional(),
});
export type CreateGroupBody = z.input<typeof createGroupBody>;

export const commitBody = commitBundle;
export const commitAnswer = z.object({ seq: z.number().int().min(1), epoch: z.number().int().min(0) });
export const messageBody = z.strictObject({ message: b64 });
export const messageAnswer = z.object({ seq: z.number().int().min(1) });
export const messagesPage = z.object({
  messages: z.array(logMessage),
  /** Pass as `after` to read on. */
  next: z.number().int().min(0),
  more: z.boolean(),
});

export const leaseBody = z.strictObject({ ttlMs: z.number().int() });

const treeNode = z.object({
  index: z.number().int().min(0),
  /** base64url TLS-encoded Node, or null for a blank node. */
  node: z.string().nullable(),
});
/** The public ratchet tree: every node, or with `leaf` only what that member needs. */
export const treeAnswer = z.object({
  epoch: z.number().int().min(0),
  nodeCount: z.number().int().min(0),
  nodes: z.array(treeNode).optional(),
  leaf: z.number().int().min(0).optional(),
  directPath: z.array(treeNode.extend({ copathResolution: z.array(treeNode) })).optional(),
  leaves: z.array(treeNode).optional(),
  verification: z.object({ valid: z.boolean(), error: z.string().optional(), ms: z.number() }).optional(),
});

export const inboxKind = z.enum([
  "welcome",
  "commit",
  "proposal",
  "application",
  "device_update",
  "commit_conflict",
  "key_packages_low",
]);
/** An inbox entry: a group log entry addressed to this client, or a notice (fields depend on `kind`). */
export const inboxEntry = z.looseObject({
  cursor: z.number().int().min(1),
  kind: inboxKind,
  groupId: z.string().optional(),
  seq: z.number().int().optional(),
  epoch: z.number().int().optional(),
  sender: z.string().optional(),
  message: z.string().optional(),
});
export type InboxEntry = z.infer<typeof inboxEntry>;
export const inboxPage = z.object({ messages: z.array(inboxEntry), next: z.number().int().min(0) });
export const ackBody = z.strictObject({ upTo: z.number().int().min(0) });

export type KeyPackageList = z.infer<typeof keyPackageList>;
export type TreeAnswer = z.infer<typeof treeAnswer>;
export type CommitAnswer = z.infer<typeof commitAnswer>;
export type MessagesPage = z.infer<typeof messagesPage>;
export type InboxPage = z.infer<typeof inboxPage>;
export type MessageAnswer = z.infer<typeof messageAnswer>;
export type DevTokenAnswer = z.infer<typeof devTokenAnswer>;
