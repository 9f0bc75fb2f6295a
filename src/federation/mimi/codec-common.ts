import { mlsParts, type Extension, type GroupInfo, type MLSMessage, type RatchetTree } from "../../mls/mimi-parts.js";
import { Reader, Writer, codeOf } from "./wire.js";

/**
 * The MIMI structures of draft-ietf-mimi-protocol-06 (and the RatchetTreeOption / PartialGroupInfo
 * of draft-mahy-mls-ratchet-tree-options), exactly as the draft spells them. Embedded MLS
 * structures are decoded by ts-mls and kept with their exact bytes.
 */
export interface Mls<T> {
  value: T;
  bytes: Uint8Array;
}

export interface MimiLimits {
  /** Largest embedded MLS message / Welcome / GroupInfo / KeyPackage, bytes. */
  messageBytes: number;
  groupInfoBytes: number;
  keyPackageBytes: number;
}

export const DEFAULT_MIMI_LIMITS: MimiLimits = { messageBytes: 262144, groupInfoBytes: 524288, keyPackageBytes: 8192 };

export const URI_MAX = 1024;
export const KEY_MAX = 16384;
export const TEXT_MAX = 4096;
export const MAX_CLIENTS = 1000;
export const MAX_SUITES = 64;
export const MAX_PROPOSALS = 100;

export const PROTOCOLS = { 1: "mls10" } as const;
export const KEY_MATERIAL_USER_CODES = {
  0: "success",
  1: "partialSuccess",
  2: "incompatibleProtocol",
  3: "noCompatibleMaterial",
  4: "userUnknown",
  5: "noConsent",
  6: "noConsentForThisRoom",
  7: "userDeleted",
} as const;
export const KEY_MATERIAL_CLIENT_CODES = { 0: "success", 1: "keyMaterialExhausted", 2: "nothingCompatible" } as const;
export const GROUP_INFO_REPRESENTATIONS = { 1: "full", 2: "partial" } as const;
export const RATCHET_TREE_REPRESENTATIONS = { 1: "full", 2: "httpsUri", 3: "outOfBand", 4: "distributionService" } as const;
export const RATCHET_TREE_PRESENCE = { 0: "no_ratchet_tree", 1: "present", 2: "removed", 3: "added" } as const;
export const UPDATE_RESPONSE_CODES = { 0: "success", 1: "wrongEpoch", 2: "notAllowed", 3: "invalidProposal" } as const;
export const SUBMIT_RESPONSE_CODES = { 0: "accepted", 1: "notAllowed", 2: "epochTooOld" } as const;
export const GROUP_INFO_CODES = { 1: "success", 2: "notAuthorized", 3: "noSuchRoom" } as const;

export type KeyMaterialUserCode = (typeof KEY_MATERIAL_USER_CODES)[keyof typeof KEY_MATERIAL_USER_CODES];
export type KeyMaterialClientCode = (typeof KEY_MATERIAL_CLIENT_CODES)[keyof typeof KEY_MATERIAL_CLIENT_CODES];
export type UpdateResponseCode = (typeof UPDATE_RESPONSE_CODES)[keyof typeof UPDATE_RESPONSE_CODES];
export type SubmitResponseCode = (typeof SUBMIT_RESPONSE_CODES)[keyof typeof SUBMIT_RESPONSE_CODES];
export type GroupInfoCode = (typeof GROUP_INFO_CODES)[keyof typeof GROUP_INFO_CODES];

export function protocol(r: Reader): "mls10" {
  return r.enumOf("protocol", PROTOCOLS);
}

export const uri = (r: Reader, field: string) => r.text(field, URI_MAX);

/** Reads an MLSMessage field and names its content: application, proposal, commit, welcome, ... */
export function mlsMessage(r: Reader, field: string, limits: MimiLimits): Mls<MLSMessage> {
  return r.mls(field, mlsParts.mlsMessage, limits.messageBytes);
}

export function contentKind(m: MLSMessage): "application" | "proposal" | "commit" | "welcome" | "other" {
  if (m.wireformat === "mls_private_message") return m.privateMessage.contentType;
  if (m.wireformat === "mls_public_message") return m.publicMessage.content.contentType;
  if (m.wireformat === "mls_welcome") return "welcome";
  return "other";
}

// ---------------------------------------------------------------- ratchet tree / GroupInfo options

export type RatchetTreeOption =
  | { representation: "full"; ratchetTree: Mls<RatchetTree> }
  | { representation: "httpsUri"; url: string; treeSignature: Uint8Array }
  | { representation: "outOfBand"; treeSignature: Uint8Array }
  | { representation: "distributionService" };

export function writeRatchetTreeOption(w: Writer, v: RatchetTreeOption): void {
  w.u8(codeOf(RATCHET_TREE_REPRESENTATIONS, v.representation));
  if (v.representation === "full") w.raw(v.ratchetTree.bytes);
  if (v.representation === "httpsUri") w.text(v.url).opaque(v.treeSignature);
  if (v.representation === "outOfBand") w.opaque(v.treeSignature);
}

export function readRatchetTreeOption(r: Reader, limits: MimiLimits): RatchetTreeOption {
  const representation = r.enumOf("RatchetTreeRepresentation", RATCHET_TREE_REPRESENTATIONS);
  switch (representation) {
    case "full":
      return { representation, ratchetTree: r.mls("ratchet_tree", mlsParts.ratchetTree, limits.groupInfoBytes) };
    case "httpsUri":
      return { representation, url: uri(r, "ratchet_tree_url"), treeSignature: r.opaque("tree_signature", KEY_MAX) };
    case "outOfBand":
      return { representation, treeSignature: r.opaque("tree_signature", KEY_MAX) };
    case "distributionService":
      return { representation };
  }
}

export interface PartialGroupInfo {
  ratchetTreePresence: (typeof RATCHET_TREE_PRESENCE)[keyof typeof RATCHET_TREE_PRESENCE];
  groupInfoExtensions: Mls<Extension>[];
  signature: Uint8Array;
}

export type GroupInfoOption =
  { representation: "full"; groupInfo: Mls<GroupInfo> } | { representation: "partial"; partial: PartialGroupInfo };

export function writeGroupInfoOption(w: Writer, v: GroupInfoOption): void {
  w.u8(codeOf(GROUP_INFO_REPRESENTATIONS, v.representation));
  if (v.representation === "full") w.raw(v.groupInfo.bytes);
  else
    w.u8(codeOf(RATCHET_TREE_PRESENCE, v.partial.ratchetTreePresence))
      .vector(v.partial.groupInfoExtensions, (x, e) => x.raw(e.bytes))
      .opaque(v.partial.signature);
}

export function readGroupInfoOption(r: Reader, limits: MimiLimits): GroupInfoOption {
  const representation = r.enumOf("GroupInfoRepresentation", GROUP_INFO_REPRESENTATIONS);
  if (representation === "full") {
    return { representation, groupInfo: r.mls("groupInfo", mlsParts.groupInfo, limits.groupInfoBytes) };
  }
  return {
    representation,
    partial: {
      ratchetTreePresence: r.enumOf("ratchet_tree_presence", RATCHET_TREE_PRESENCE),
      groupInfoExtensions: r.vector("group_info_extensions", limits.groupInfoBytes, 256, (x) =>
        x.mls("Extension", mlsParts.extension, limits.groupInfoBytes),
      ),
      signature: r.opaque("signature", KEY_MAX),
    },
  };
}

export interface Frank {
  serverFrank: Uint8Array;
  frankingSignatureCiphersuite: number;
  frankingIntegritySignature: Uint8Array;
}

export function writeFrank(w: Writer, f: Frank): void {
  w.raw(f.serverFrank).u16(f.frankingSignatureCiphersuite).opaque(f.frankingIntegritySignature);
}

export function readFrank(r: Reader): Frank {
  return {
    serverFrank: r.fixed(32, "server_frank"),
    frankingSignatureCiphersuite: r.u16("franking_signature_ciphersuite"),
    frankingIntegritySignature: r.opaque("franking_integrity_signature", KEY_MAX),
  };
}

/** Builds an Mls<T> from a value by encoding it with ts-mls. */
export function mlsOf<K extends keyof typeof mlsParts>(
  kind: K,
  value: Parameters<(typeof mlsParts)[K]["encode"]>[0],
): Mls<typeof value> {
  const codec = mlsParts[kind] as { encode: (v: typeof value) => Uint8Array };
  return { value, bytes: codec.encode(value) };
}
