import type { z } from "zod";
import type { ClaimAnswer, ClaimRequest } from "../domain/key-directory.js";
import type { GroupView, PeerGateway, SubmitBody } from "../domain/types.js";
import { DsError } from "../errors.js";
import {
  fedClaimAnswer,
  fedCommitLogAnswer,
  fedDevicesAnswer,
  fedGroupInfoAnswer,
  fedGroupViewAnswer,
  fedLeaseAnswer,
  fedMessagesAnswer,
  fedSubmitAnswer,
} from "../wire/federation.js";
import { userOf, type CommitLogEntry, type DeviceList, type LogEntry } from "../store/port.js";
import type { PeerClient } from "./peer-client.js";

const enc = encodeURIComponent;

/** A peer's answer is believed only in the shape the contract gives it. */
function checked<T extends z.ZodType>(schema: T, peer: string, what: string, answer: unknown): z.infer<T> {
  const r = schema.safeParse(answer);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new DsError(
      "peer_error",
      `${peer} answered ${what} with a malformed body (${issue.path.join(".") || "body"}: ${issue.message})`,
      {
        peer,
      },
    );
  }
  return r.data;
}

/** PeerGateway over the Federation API (docs/FEDERATION.md). */
export class FederationGateway implements PeerGateway {
  constructor(private readonly client: PeerClient) {}

  async claim(domain: string, req: ClaimRequest): Promise<ClaimAnswer> {
    const answer = await this.client.call(domain, "POST", "/federation/v1/key-packages/claim", req);
    return checked(fedClaimAnswer, domain, "a claim", answer);
  }

  async devices(domain: string, user: string): Promise<DeviceList> {
    const answer = await this.client.call(domain, "GET", `/federation/v1/users/${enc(user)}/devices`, undefined);
    const list = checked(fedDevicesAnswer, domain, "a device list", answer);
    // A provider speaks for its own users only: the list must be the one asked for.
    if (list.user !== user || list.devices.some((d) => userOf(d.client) !== user))
      throw new DsError("peer_error", `${domain} answered a device list for ${user} with other users' devices`, { peer: domain });
    return list;
  }

  async submit(hub: string, groupId: string, sender: string, body: SubmitBody) {
    const payload =
      body.kind === "commit"
        ? { sender, kind: "commit", bundle: body.bundle, ...(body.leaseToken ? { leaseToken: body.leaseToken } : {}) }
        : { sender, kind: "message", message: body.message };
    const path = `/federation/v1/groups/${groupId}/submit`;
    const answer = checked(fedSubmitAnswer, hub, "a submission", await this.client.call(hub, "POST", path, payload));
    // A commit's answer names the new epoch; a message's answer has only its seq.
    if (body.kind === "commit" && answer.epoch === undefined)
      throw new DsError("peer_error", `${hub} answered a commit without its epoch`, { peer: hub });
    return { seq: answer.seq, epoch: answer.epoch ?? 0 };
  }

  async lease(hub: string, groupId: string, holder: string, ttlMs: number) {
    const path = `/federation/v1/groups/${groupId}/lease`;
    return checked(fedLeaseAnswer, hub, "a lease", await this.client.call(hub, "POST", path, { holder, ttlMs }));
  }

  async releaseLease(hub: string, groupId: string, holder: string, token: string): Promise<void> {
    await this.client.call(hub, "POST", `/federation/v1/groups/${groupId}/lease/release`, { holder, leaseToken: token });
  }

  async group(hub: string, groupId: string, member: string): Promise<GroupView> {
    const path = `/federation/v1/groups/${groupId}?member=${enc(member)}`;
    return checked(fedGroupViewAnswer, hub, "a group view", await this.client.call(hub, "GET", path, undefined));
  }

  async groupInfo(hub: string, groupId: string, member: string) {
    const path = `/federation/v1/groups/${groupId}/group-info?member=${enc(member)}`;
    return checked(fedGroupInfoAnswer, hub, "group-info", await this.client.call(hub, "GET", path, undefined));
  }

  async messages(
    hub: string,
    groupId: string,
    afterSeq: number,
    limit: number,
  ): Promise<{ group: GroupView; entries: LogEntry[]; logStart?: number }> {
    const path = `/federation/v1/groups/${groupId}/messages?after=${afterSeq}&limit=${limit}`;
    return checked(fedMessagesAnswer, hub, "a log page", await this.client.call(hub, "GET", path, undefined));
  }

  async commitLog(hub: string, groupId: string, afterEpoch: number): Promise<{ entries: CommitLogEntry[] }> {
    const path = `/federation/v1/groups/${groupId}/commit-log?after=${afterEpoch}`;
    return checked(fedCommitLogAnswer, hub, "the commit log", await this.client.call(hub, "GET", path, undefined));
  }

  async deviceUpdate(domain: string, list: DeviceList): Promise<void> {
    await this.client.call(domain, "POST", "/federation/v1/device-updates", list);
  }
}
