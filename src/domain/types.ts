import type { StoredGroupInfo } from "../mls/group-info.js";
import type { ClaimAnswer, ClaimRequest } from "./key-directory.js";
import type { CommitBundle, GroupView } from "../wire/shapes.js";
import type { CommitLogEntry, DeviceList, LogEntry } from "../store/port.js";

export { systemClock, type Clock } from "../clock.js";

/** A submission forwarded from a follower to the hub, or answered locally. */
export type SubmitBody = { kind: "commit"; bundle: CommitBundle; leaseToken?: string } | { kind: "message"; message: string };

export type { CommitBundle, GroupView } from "../wire/shapes.js";

/** What the domain needs from other providers; federation/ implements it over HTTP. */
export interface PeerGateway {
  claim(domain: string, req: ClaimRequest): Promise<ClaimAnswer>;
  devices(domain: string, user: string): Promise<DeviceList>;
  submit(hub: string, groupId: string, sender: string, body: SubmitBody): Promise<{ seq: number; epoch: number }>;
  lease(hub: string, groupId: string, holder: string, ttlMs: number): Promise<{ leaseToken: string; expiresAt: number }>;
  releaseLease(hub: string, groupId: string, holder: string, token: string): Promise<void>;
  group(hub: string, groupId: string, member: string): Promise<GroupView>;
  groupInfo(hub: string, groupId: string, member: string): Promise<StoredGroupInfo>;
  messages(
    hub: string,
    groupId: string,
    afterSeq: number,
    limit: number,
  ): Promise<{ group: GroupView; entries: LogEntry[]; logStart?: number }>;
  deviceUpdate(domain: string, list: DeviceList): Promise<void>;
  commitLog(hub: string, groupId: string, afterEpoch: number): Promise<{ entries: CommitLogEntry[] }>;
}
