import { z } from "zod";
import { b64, clientId, leaseToken, userId } from "./ids.js";
import { claimBody } from "./client-api.js";
import {
  claimAnswer,
  commitBundle,
  commitLogAnswer,
  deviceList,
  groupInfoAnswer,
  groupView,
  groupViewShape,
  leaseAnswer,
  logMessage,
} from "./shapes.js";

/**
 * Bodies of the Federation API (/federation/v1, docs/FEDERATION.md). Requests a peer sends are
 * strict; answers a follower reads from its hub are checked before anything in them is believed,
 * with unknown fields dropped so a newer peer may add some.
 */

/** `GET /.well-known/mls-federation`. */
export const discoveryDocument = z.object({
  domain: z.string(),
  federationApi: z.string(),
  protocolVersions: z.array(z.string()),
  cipherSuites: z.array(z.number()),
  /** Absent on providers older than issue 9: they speak only `fedgate` identities. */
  identitySchemes: z.array(z.string()).optional(),
  jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }),
  limits: z.record(z.string(), z.unknown()),
});
export type Discovery = z.infer<typeof discoveryDocument>;

export const fedClaimBody = claimBody.extend({ requester: clientId, versions: z.array(z.string().max(16)).max(8) });
export const fedSubmitBody = z.discriminatedUnion("kind", [
  z.strictObject({ sender: clientId, kind: z.literal("commit"), bundle: commitBundle, leaseToken: leaseToken.optional() }),
  z.strictObject({ sender: clientId, kind: z.literal("message"), message: b64 }),
]);
export type FedSubmitBody = z.infer<typeof fedSubmitBody>;
export const fedLeaseBody = z.strictObject({ holder: clientId, ttlMs: z.number().int() });
export const fedReleaseBody = z.strictObject({ holder: clientId, leaseToken });

/** A log entry as the hub pushes it: what clients see plus its hash and recipients. */
const logEntryShape = {
  ...logMessage.shape,
  sha256: z.string().max(128),
  recipients: z.array(clientId).max(100_000),
};
export const deliverBody = z.strictObject({
  groups: z.record(z.string().max(512), z.strictObject(groupViewShape)),
  messages: z.array(z.strictObject(logEntryShape).extend({ groupId: z.string().max(512) })).max(10_000),
});
/** One entry (or, without `seq`, a whole group's part of the batch) the receiver would not take. */
export const deliverRefusal = z.strictObject({
  groupId: z.string().max(512),
  seq: z.number().int().min(1).optional(),
  code: z.string().max(64),
  message: z.string().max(1024),
});
export type DeliverRefusal = z.infer<typeof deliverRefusal>;
/** `deliver` answer; `refused` (an extension, absent when empty) lists what was set aside per entry. */
export const deliverAnswer = z.object({
  accepted: z.number().int().min(0),
  refused: z.array(deliverRefusal).max(10_000).optional(),
});

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

export const fedGroupViewAnswer = groupView;
export const fedMessagesAnswer = z.object({
  group: fedGroupViewAnswer,
  entries: z.array(z.object(logEntryShape)).max(1000),
  /** The lowest seq the hub still holds (it trimmed the ones before); absent from older hubs. */
  logStart: z.number().int().positive().optional(),
});
export const fedGroupInfoAnswer = groupInfoAnswer;
export const fedCommitLogAnswer = commitLogAnswer;
export const fedClaimAnswer = claimAnswer;
export const fedDevicesAnswer = deviceList;
export const fedSubmitAnswer = z.object({ seq: z.number().int().min(1), epoch: z.number().int().min(0).optional() });
export const fedLeaseAnswer = leaseAnswer;
