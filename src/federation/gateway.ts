import type { ClaimAnswer, ClaimRequest } from "../domain/key-directory.js";
import type { GroupView, PeerGateway, SubmitBody } from "../domain/types.js";
import type { CommitLogEntry, DeviceList, LogEntry } from "../store/port.js";
import type { PeerClient } from "./peer-client.js";

const enc = encodeURIComponent;

/** PeerGateway over the Federation API (docs/FEDERATION.md). */
export class FederationGateway implements PeerGateway {
  constructor(private readonly client: PeerClient) {}

  claim(domain: string, req: ClaimRequest, requestId?: string): Promise<ClaimAnswer> {
    return this.client.call(domain, "POST", "/federation/v1/key-packages/claim", req, requestId);
  }

  devices(domain: string, user: string, requestId?: string): Promise<DeviceList> {
    return this.client.call(domain, "GET", `/federation/v1/users/${enc(user)}/devices`, undefined, requestId);
  }

  submit(hub: string, groupId: string, sender: string, body: SubmitBody, requestId?: string) {
    const payload =
      body.kind === "commit"
        ? { sender, kind: "commit", bundle: body.bundle, ...(body.leaseToken ? { leaseToken: body.leaseToken } : {}) }
        : { sender, kind: "message", message: body.message };
    return this.client.call<{ seq: number; epoch: number }>(
      hub,
      "POST",
      `/federation/v1/groups/${groupId}/submit`,
      payload,
      requestId,
    );
  }

  lease(hub: string, groupId: string, holder: string, ttlMs: number, requestId?: string) {
    return this.client.call<{ leaseToken: string; expiresAt: number }>(
      hub,
      "POST",
      `/federation/v1/groups/${groupId}/lease`,
      { holder, ttlMs },
      requestId,
    );
  }

  async releaseLease(hub: string, groupId: string, holder: string, token: string, requestId?: string): Promise<void> {
    await this.client.call(
      hub,
      "POST",
      `/federation/v1/groups/${groupId}/lease/release`,
      { holder, leaseToken: token },
      requestId,
    );
  }

  group(hub: string, groupId: string, member: string, requestId?: string): Promise<GroupView> {
    return this.client.call(hub, "GET", `/federation/v1/groups/${groupId}?member=${enc(member)}`, undefined, requestId);
  }

  groupInfo(hub: string, groupId: string, member: string, requestId?: string) {
    return this.client.call<{ epoch: number; groupInfo: string }>(
      hub,
      "GET",
      `/federation/v1/groups/${groupId}/group-info?member=${enc(member)}`,
      undefined,
      requestId,
    );
  }

  messages(hub: string, groupId: string, afterSeq: number, limit: number, requestId?: string) {
    return this.client.call<{ group: GroupView; entries: LogEntry[] }>(
      hub,
      "GET",
      `/federation/v1/groups/${groupId}/messages?after=${afterSeq}&limit=${limit}`,
      undefined,
      requestId,
    );
  }

  commitLog(hub: string, groupId: string, afterEpoch: number, requestId?: string) {
    return this.client.call<{ entries: CommitLogEntry[] }>(
      hub,
      "GET",
      `/federation/v1/groups/${groupId}/commit-log?after=${afterEpoch}`,
      undefined,
      requestId,
    );
  }

  async deviceUpdate(domain: string, list: DeviceList, requestId?: string): Promise<void> {
    await this.client.call(domain, "POST", "/federation/v1/device-updates", list, requestId);
  }
}
