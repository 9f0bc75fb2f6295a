import { z } from "zod";
import { DsError } from "../errors.js";

/** Wire bodies, defined once; handler types are inferred from them. */
const b64 = z.string().max(16 * 1024 * 1024);
const clientId = z
  .string()
  .regex(/^[^\s/@]+@[a-z0-9.-]+\/[^\s/]+$/, "must be user@domain/device")
  .max(512);
const userId = z
  .string()
  .regex(/^[^\s/@]+@[a-z0-9.-]+$/, "must be user@domain")
  .max(512);
const suiteList = z.array(z.number().int().min(1).max(0xffff)).min(1).max(64);

export const devTokenBody = z.strictObject({ client: clientId });
export const uploadBody = z.strictObject({
  keyPackages: z.array(b64).max(10_000),
  lastResort: b64.optional(),
  virtual: z.boolean().optional(),
});
export const claimBody = z.strictObject({
  user: userId,
  cipherSuites: suiteList,
  versions: z.array(z.string().max(16)).max(8).optional(),
});
export const createGroupBody = z.strictObject({
  groupId: z.string().min(1).max(512),
  cipherSuite: z.number().int(),
  mode: z.enum(["ordered", "send-group"]).default("ordered"),
  groupInfo: b64.optional(),
  replyTo: z.string().min(1).max(512).optional(),
});
export const commitBody = z.strictObject({
  commit: b64,
  welcome: b64.optional(),
  groupInfo: b64.optional(),
  added: z.array(clientId).max(10_000).optional(),
  removed: z.array(clientId).max(10_000).optional(),
  leaseToken: z.string().max(256).optional(),
});
export const messageBody = z.strictObject({ message: b64 });
export const leaseBody = z.strictObject({ ttlMs: z.number().int() });
export const ackBody = z.strictObject({ upTo: z.number().int().min(0) });

export const fedClaimBody = claimBody.extend({ requester: clientId, versions: z.array(z.string().max(16)).max(8) });
export const fedSubmitBody = z.discriminatedUnion("kind", [
  z.strictObject({ sender: clientId, kind: z.literal("commit"), bundle: commitBody, leaseToken: z.string().max(256).optional() }),
  z.strictObject({ sender: clientId, kind: z.literal("message"), message: b64 }),
]);
export const fedLeaseBody = z.strictObject({ holder: clientId, ttlMs: z.number().int() });
export const fedReleaseBody = z.strictObject({ holder: clientId, leaseToken: z.string().max(256) });
const groupViewShape = {
  groupId: z.string().max(512),
  hub: z.string().max(255),
  epoch: z.number().int().min(0),
  mode: z.enum(["ordered", "send-group"]),
  cipherSuite: z.number().int(),
  members: z.array(clientId).max(100_000),
  owner: clientId,
  replyTo: z.string().max(512).optional(),
};
export const groupView = z.strictObject(groupViewShape);
const logEntryShape = {
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  kind: z.enum(["commit", "proposal", "application", "welcome"]),
  epoch: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  sender: clientId,
  message: b64,
  sha256: z.string().max(128),
  recipients: z.array(clientId).max(100_000),
};
const logEntry = z.strictObject(logEntryShape);
export const deliverBody = z.strictObject({
  groups: z.record(z.string().max(512), groupView),
  messages: z.array(logEntry.extend({ groupId: z.string().max(512) })).max(10_000),
});
/** One entry (or, without `seq`, a whole group's part of the batch) the receiver would not take. */
export const deliverRefusal = z.strictObject({
  groupId: z.string().max(512),
  seq: z.number().int().min(1).optional(),
  code: z.string().max(64),
  message: z.string().max(1024),
});
/** `deliver` answer; `refused` (an extension, absent when empty) lists what was set aside per entry. */
export const deliverAnswer = z.object({
  accepted: z.number().int().min(0),
  refused: z.array(deliverRefusal).max(10_000).optional(),
});
/**
 * Answers a follower reads from its hub: checked before anything in them is believed (unknown
 * fields are dropped, so a newer peer may add some).
 */
export const fedGroupViewAnswer = z.object(groupViewShape);
export const fedMessagesAnswer = z.object({ group: fedGroupViewAnswer, entries: z.array(z.object(logEntryShape)).max(1000) });
export const fedGroupInfoAnswer = z.object({ epoch: z.number().int().min(0), groupInfo: b64 });
export const fedCommitLogAnswer = z.object({
  entries: z
    .array(
      z.object({
        epoch: z.number().int().min(0),
        seq: z.number().int().min(1),
        sender: clientId,
        sha256: z.string().max(128),
      }),
    )
    .max(100_000),
});
export const fedClaimAnswer = z.object({
  user: userId,
  version: z.string().max(16),
  cipherSuite: z.number().int().min(1).max(0xffff),
  bundles: z
    .array(z.object({ client: clientId, keyPackage: b64, identityKey: z.string().max(1024), lastResort: z.boolean() }))
    .max(10_000),
  missing: z.array(z.object({ client: clientId, reason: z.enum(["exhausted", "no_compatible_suite"]) })).max(10_000),
});
export const fedDevicesAnswer = z.object({
  user: userId,
  version: z.number().int().min(0),
  devices: z
    .array(
      z.object({
        client: clientId,
        cipherSuites: z.array(z.number().int()).max(64),
        identities: z.record(z.string().max(64), z.string().max(512)).optional(),
      }),
    )
    .max(1000),
});
export const fedSubmitAnswer = z.object({ seq: z.number().int().min(1), epoch: z.number().int().min(0).optional() });
export const fedLeaseAnswer = z.object({ leaseToken: z.string().max(256), expiresAt: z.number().int() });
export type GroupViewWire = z.infer<typeof groupView>;
export type DeliverRefusal = z.infer<typeof deliverRefusal>;
export const deviceUpdateBody = z.strictObject({
  user: userId,
  version: z.number().int().min(0),
  devices: z
    .array(
      z.strictObject({
        client: clientId,
        cipherSuites: z.array(z.number().int()),
        identities: z.record(z.string().max(64), z.string().max(512)).optional(),
      }),
    )
    .max(1000),
});

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
