import type { ClaimAnswer, ClaimRequest } from "./key-directory.js";
import type { CommitBundle, GroupView } from "../wire/shapes.js";
import type { CommitLogEntry, DeviceList, LogEntry } from "../store/port.js";

export { systemClock, type Clock } from "../clock.js";

/** A submission forwarded from a follower to the hub, or answered locally. */
export type SubmitBody = { kind: "commit"; bundle: CommitBundle; leaseToken?: string } | { kind: "message"; message: string };

export type { CommitBundle, GroupView } from "../wire/shapes.js";

/** What the domain needs from other providers; federation/ implements it over HTTP. */
export interface PeerGateway {
  claim(domain: string, req: ClaimRequest, requestId?: string): Promise<ClaimAnswer>;
  devices(domain: string, user: string, requestId?: string): Promise<DeviceList>;
  submit(
    hub: string,
    groupId: string,
    sender: string,
    body: SubmitBody,
    requestId?: string,
  ): Promise<{ seq: number; epoch: number }>;
  lease(
    hub: string,
    groupId: string,
    holder: string,
    ttlMs: number,
    requestId?: string,
  ): Promise<{ leaseToken: string; expiresAt: number }>;
  releaseLease(hub: string, groupId: string, holder: string, token: string, requestId?: string): Promise<void>;
  group(hub: string, groupId: string, member: string, requestId?: string): Promise<GroupView>;
  groupInfo(hub: string, groupId: string, member: string, requestId?: string): Promise<{ epoch: number; groupInfo: string }>;
  messages(
    hub: string,
    groupId: string,
    afterSeq: number,
    limit: number,
    requestId?: string,
  ): Promise<{ group: GroupView; entries: LogEntry[] }>;
  deviceUpdate(domain: string, list: DeviceList, requestId?: string): Promise<void>;
  commitLog(hub: string, groupId: string, afterEpoch: number, requestId?: string): Promise<{ entries: CommitLogEntry[] }>;
}
