import { z } from "zod";

/**
 * Identifier syntax shared by the DS, its peers and the SDK. `user@domain/device`; the groups
 * capture the domain and the device. The device `*` is a user's virtual client (seed 003).
 */
export const CLIENT_ID = /^[^\s/@]+@([a-z0-9.-]+)\/([^\s/]+)$/;
export const USER_ID = /^[^\s/@]+@[a-z0-9.-]+$/;
/** Longest client or user id any API accepts. */
export const CLIENT_ID_MAX = 512;

/** True for a syntactically valid client id `user@domain/device`. */
export function isClientId(client: string): boolean {
  return CLIENT_ID.test(client);
}

/** base64url MLS bytes (a KeyPackage, a Commit, a Welcome, a GroupInfo, an application message). */
export const b64 = z.string().max(16 * 1024 * 1024);
export const clientId = z.string().regex(CLIENT_ID, "must be user@domain/device").max(CLIENT_ID_MAX);
export const userId = z.string().regex(USER_ID, "must be user@domain").max(CLIENT_ID_MAX);
export const groupId = z.string().min(1).max(512);
export const cipherSuite = z.number().int().min(1).max(0xffff);
export const groupMode = z.enum(["ordered", "send-group"]);
export const leaseToken = z.string().max(256);
