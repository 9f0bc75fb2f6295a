import type { MLSMessage } from "ts-mls/message.js";
import { DsError } from "../errors.js";
import { toB64u } from "../encoding.js";
import { IDENTITY_SCHEMES, clientOfIdentity } from "./identity.js";

export type ContentKind = "application" | "proposal" | "commit";

export interface Framing {
  wireformat: "mls_private_message" | "mls_public_message";
  groupId: string;
  epoch: number;
  contentType: ContentKind;
  /** Only visible for PublicMessage: who sent it and, for commits, which proposals it carries. */
  senderType?: string;
}

/** Epoch, group id and content type always come from the MLS framing, never from JSON. */
export function readFraming(message: MLSMessage): Framing {
  if (message.wireformat === "mls_private_message") {
    const pm = message.privateMessage;
    return {
      wireformat: message.wireformat,
      groupId: toB64u(pm.groupId),
      epoch: toEpoch(pm.epoch),
      contentType: pm.contentType as ContentKind,
    };
  }
  if (message.wireformat === "mls_public_message") {
    const content = message.publicMessage.content;
    return {
      wireformat: message.wireformat,
      groupId: toB64u(content.groupId),
      epoch: toEpoch(content.epoch),
      contentType: content.contentType as ContentKind,
      senderType: content.sender.senderType,
    };
  }
  throw new DsError("invalid_mls", `expected a PublicMessage or PrivateMessage, got ${message.wireformat}`);
}

function toEpoch(epoch: bigint): number {
  if (epoch > BigInt(Number.MAX_SAFE_INTEGER)) throw new DsError("invalid_mls", "epoch out of range");
  return Number(epoch);
}

/** KeyPackageRefs of the new members a Welcome is encrypted to. */
export function welcomeRefs(message: MLSMessage): string[] {
  if (message.wireformat !== "mls_welcome") throw new DsError("invalid_mls", `expected a Welcome, got ${message.wireformat}`);
  return message.welcome.secrets.map((s) => toB64u(s.newMember));
}

export interface RosterChange {
  /** Client ids named by the credentials of the KeyPackages added by value (see identity.ts). */
  added: string[];
  /** Leaf indexes removed by value. */
  removed: number[];
  /** True when some proposals are by reference (the DS cannot see them). */
  byReference: boolean;
  /** External commit: the client id the joiner's new leaf names (its UpdatePath leaf credential). */
  joiner?: string;
}

/**
 * A credential's client id under any identity scheme the DS knows (each mapping is pure and their
 * forms are disjoint, so reading every form never misreads one); a marker that matches no client
 * id when it names none.
 */
export function credentialClient(cred: { credentialType: string; identity?: Uint8Array }): string {
  if (cred.credentialType !== "basic" || !cred.identity) return `(${cred.credentialType} credential)`;
  return clientOfIdentity(cred.identity, IDENTITY_SCHEMES)?.client ?? `(unreadable identity ${toB64u(cred.identity)})`;
}

/** The Add/Remove proposals a PublicMessage commit carries inline; undefined for PrivateMessages. */
export function rosterChange(message: MLSMessage): RosterChange | undefined {
  if (message.wireformat !== "mls_public_message") return undefined;
  const content = message.publicMessage.content;
  if (content.contentType !== "commit") return undefined;
  const change: RosterChange = { added: [], removed: [], byReference: false };
  if (content.sender.senderType === "new_member_commit" && content.commit.path) {
    change.joiner = credentialClient(content.commit.path.leafNode.credential);
  }
  for (const p of content.commit.proposals) {
    if (p.proposalOrRefType === "reference") {
      change.byReference = true;
      continue;
    }
    if (p.proposal.proposalType === "add") {
      change.added.push(credentialClient(p.proposal.add.keyPackage.leafNode.credential));
    } else if (p.proposal.proposalType === "remove") {
      change.removed.push(p.proposal.remove.removed);
    }
  }
  return change;
}
