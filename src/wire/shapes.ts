import { z } from "zod";
import { b64, cipherSuite, clientId, groupMode, leaseToken, userId } from "./ids.js";

/**
 * Shapes both APIs share: a client's commit bundle travels unchanged to the hub, and a group view,
 * a claim answer or a device list reads the same on /v1 and /federation/v1.
 */

export const commitBundle = z.strictObject({
  commit: b64,
  welcome: b64.optional(),
  groupInfo: b64.optional(),
  added: z.array(clientId).max(10_000).optional(),
  removed: z.array(clientId).max(10_000).optional(),
  leaseToken: leaseToken.optional(),
});
/**
 * `ratchetTree` (base64url RatchetTree) accompanies a GroupInfo without the ratchet_tree extension.
 * Only the MIMI hub sets it, after binding it to the GroupInfo (checkGroupInfo); a client or a
 * follower cannot send one (commitBundle is strict), so it is not part of the parsed shape.
 */
export type CommitBundle = z.infer<typeof commitBundle> & { ratchetTree?: string };

export const groupViewShape = {
  groupId: z.string().max(512),
  hub: z.string().max(255),
  epoch: z.number().int().min(0),
  mode: groupMode,
  cipherSuite: z.number().int(),
  members: z.array(clientId).max(100_000),
  owner: clientId,
  replyTo: z.string().max(512).optional(),
};
/** A group as its members see it (an answer: unknown fields are tolerated, so the DS may add some). */
export const groupView = z.object(groupViewShape);
export type GroupView = z.infer<typeof groupView>;

export const logKind = z.enum(["commit", "proposal", "application", "welcome"]);
/** A group log entry as the client API shows it. */
export const logMessage = z.object({
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  kind: logKind,
  epoch: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  sender: clientId,
  message: b64,
});
export type LogMessage = z.infer<typeof logMessage>;

export const commitLogEntry = z.object({
  epoch: z.number().int().min(0),
  seq: z.number().int().min(1),
  sender: clientId,
  sha256: z.string().max(128),
});
export const commitLogAnswer = z.object({ entries: z.array(commitLogEntry).max(100_000) });

export const claimAnswer = z.object({
  user: userId,
  version: z.string().max(16),
  cipherSuite,
  bundles: z
    .array(z.object({ client: clientId, keyPackage: b64, identityKey: z.string().max(1024), lastResort: z.boolean() }))
    .max(10_000),
  missing: z.array(z.object({ client: clientId, reason: z.enum(["exhausted", "no_compatible_suite"]) })).max(10_000),
});
export type ClaimAnswer = z.infer<typeof claimAnswer>;

const deviceShape = {
  client: clientId,
  cipherSuites: z.array(z.number().int()).max(64),
  /** The credential identity per accepted scheme (issue 9). */
  identities: z.record(z.string().max(64), z.string().max(512)).optional(),
};
export const deviceList = z.object({
  user: userId,
  version: z.number().int().min(0),
  devices: z.array(z.object(deviceShape)).max(1000),
});
export type DeviceListWire = z.infer<typeof deviceList>;

/** `ratchetTree`: the tree stored beside a GroupInfo that does not embed it (docs/MIMI.md). */
export const groupInfoAnswer = z.object({ epoch: z.number().int().min(0), groupInfo: b64, ratchetTree: b64.optional() });
export const leaseAnswer = z.object({ leaseToken, expiresAt: z.number().int() });

/** Every error answer (DESIGN.md): a code from the error table, a message, and code-specific details. */
export const errorBody = z.object({
  error: z.looseObject({ code: z.string(), message: z.string() }),
});
export type CommitLogAnswer = z.infer<typeof commitLogAnswer>;
export type GroupInfoAnswer = z.infer<typeof groupInfoAnswer>;
export type LeaseAnswer = z.infer<typeof leaseAnswer>;
