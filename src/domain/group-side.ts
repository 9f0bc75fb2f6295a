import type { StoredGroupInfo } from "../mls/group-info.js";
import type { MLSMessage } from "ts-mls/message.js";
import { DsError } from "../errors.js";
import { resolveActor } from "./ordering.js";
import { decodeMlsField } from "../mls/codec.js";
import { readFraming, type Framing } from "../mls/framing.js";
import type { GroupMode, GroupRecord, LogEntry } from "../store/port.js";
import type { CommitBundle, GroupView } from "./types.js";
import type { LogMessage as WireLogEntry } from "../wire/shapes.js";

/**
 * The two sides of a group, chosen by its hub (Groups.sideOf). One interface, two trust positions:
 *
 * - HubSide (this DS orders the group) DECIDES. It believes its own store and nothing a follower
 *   says except what it cannot check itself: a follower vouches that Welcome refs the hub cannot
 *   resolve (KeyPackages of third providers) belong to the clients it names as added, and that the
 *   sender it names is the client that asked it (the hub checks the sender is of that follower's
 *   domain and a member, and rechecks every Welcome ref it can resolve).
 * - FollowerSide (another provider orders it) FORWARDS its clients' requests to the hub and
 *   VERIFIES the answers: shape, group id and hub. It believes the hub's ordering decisions for the
 *   groups that hub created, and nothing the hub says about any other group (ReplicaSync).
 *
 * docs/SECURITY.md lists these rules and the attacks each one answers.
 */
export interface GroupSide {
  /** The group as its hub sees it, for a member (`actor`). */
  view(actor: string, g: GroupRecord): Promise<GroupView>;
  /** A commit a local client submitted; the bundle passed the client-facing checks (Groups). */
  submitCommit(actor: string, g: GroupRecord, bundle: CommitBundle, decoded: DecodedBundle): Promise<Accepted>;
  submitMessage(actor: string, g: GroupRecord, text: string): Promise<{ seq: number }>;
  acquireLease(actor: string, g: GroupRecord, ttlMs: number): Promise<{ leaseToken: string; expiresAt: number }>;
  releaseLease(actor: string, g: GroupRecord, token: string): Promise<void>;
  /**
   * The record to read `client`'s catch-up from (a follower first pulls what the hub has beyond its
   * replica, unless the hub's answer would leave `client` out: then it refuses, having stored nothing).
   */
  forLogRead(client: string, g: GroupRecord): Promise<GroupRecord>;
  groupInfo(client: string, g: GroupRecord): Promise<StoredGroupInfo>;
}

export type Accepted = { seq: number; epoch: number };

export interface GroupLimits {
  messageBytes: number;
  groupInfoBytes: number;
  leaseMaxTtlMs: number;
  logPageSize: number;
  allowedSuites: readonly number[];
}

export interface DecodedBundle {
  bytes: Uint8Array;
  message: MLSMessage;
  framing: Framing;
  welcome?: { bytes: Uint8Array; message: MLSMessage };
}

export type { WireLogEntry };

export interface CreateGroupRequest {
  groupId: string;
  cipherSuite: number;
  mode: GroupMode;
  groupInfo?: string;
  replyTo?: string;
}

/** Strict decoding of a bundle's commit and Welcome, once per request. */
export function decodeBundle(bundle: CommitBundle, groupId: string, messageBytes: number): DecodedBundle {
  const { bytes, message } = decodeMlsField(bundle.commit, "commit", messageBytes);
  const framing = readFraming(message);
  if (framing.contentType !== "commit")
    throw new DsError("bad_request", "commit must carry a Commit (send other content to /messages)");
  if (framing.groupId !== groupId) throw new DsError("bad_request", "the commit belongs to another group");
  if (!bundle.welcome) return { bytes, message, framing };
  const welcome = decodeMlsField(bundle.welcome, "welcome", messageBytes);
  if (welcome.message.wireformat !== "mls_welcome") throw new DsError("invalid_mls", "welcome must be a Welcome");
  return { bytes, message, framing, welcome };
}

export function viewOf(g: GroupRecord): GroupView {
  return {
    groupId: g.groupId,
    hub: g.hub,
    epoch: g.epoch,
    mode: g.mode,
    cipherSuite: g.cipherSuite,
    members: [...g.members],
    owner: g.owner,
    ...(g.replyTo ? { replyTo: g.replyTo } : {}),
  };
}

export function wireEntry(e: LogEntry): WireLogEntry {
  return { seq: e.seq, kind: e.kind, epoch: e.epoch, sender: e.sender, message: e.message };
}

/**
 * Who a device acts as in a group: itself, or — in single-client mode — its user's virtual
 * client `user@domain/*` when that is the member (seed 003).
 */
export function actorIn(g: GroupRecord, client: string): string {
  return resolveActor(g.members, client);
}

export function requireMember(g: GroupRecord, actor: string): void {
  if (!g.members.includes(actor)) throw new DsError("not_a_member", "you are not a member of this group");
}

/** Members, and other devices of a member's user (they need the GroupInfo to join externally). */
export function requireMemberOrSameUser(g: GroupRecord, client: string): void {
  const user = client.slice(0, client.indexOf("/"));
  if (!g.members.some((m) => m === client || m.startsWith(`${user}/`))) {
    throw new DsError("not_a_member", "you are not a member of this group");
  }
}
