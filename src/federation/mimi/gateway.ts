import { setTimeout as sleep } from "node:timers/promises";
import { viewOf } from "../../domain/groups.js";
import type { ClaimAnswer, ClaimRequest } from "../../domain/key-directory.js";
import type { Clock, GroupView, PeerGateway, SubmitBody } from "../../domain/types.js";
import { DsError } from "../../errors.js";
import { sha256Hex } from "../../encoding.js";
import { decodeMlsField } from "../../mls/codec.js";
import { readFraming } from "../../mls/framing.js";
import { validateKeyPackage, type KeyPackagePolicy } from "../../mls/key-package.js";
import { checkGroupInfo, type StoredGroupInfo } from "../../mls/group-info.js";
import { decodeMlsMessage, mimiHpkeKeyPair, mimiSign, mimiVerify, treeOfGroupInfo } from "../../mls/mimi-parts.js";
import { userOf, type CommitLogEntry, type DeviceList, type LogEntry, type Store } from "../../store/port.js";
import type { MimiClient } from "./client.js";
import {
  decodeGroupInfoRatchetTreeTBE,
  decodeGroupInfoResponse,
  decodeKeyMaterialResponse,
  decodeSubmitMessageResponse,
  decodeUpdateRoomResponse,
  encodeGroupInfoRequest,
  encodeGroupInfoRequestTBS,
  encodeGroupInfoResponseTBS,
  encodeKeyMaterialRequest,
  encodeKeyMaterialRequestTBS,
  encodeSubmitMessageRequest,
  encodeUpdateRequest,
  mlsOf,
  type HandshakeBundle,
  type KeyMaterialRequestTBS,
  type MimiLimits,
} from "./codec.js";
import { b64u, basicCredential, MimiKeys, unwrapMls, wrapMls } from "./envelope.js";
import { clientOfUri, clientUri, roomUri, userUri } from "./ids.js";

/** How long a follower waits for the hub's winning commit to arrive by notify after `wrongEpoch`. */
const CATCH_UP_WAIT_MS = 2000;
const CATCH_UP_POLL_MS = 20;
/** Our clients' submissions, remembered so their echo from the hub is not delivered back to them. */
export const SENT_TTL_S = 24 * 3600;
export const sentKey = (sha256: string) => `mimi-sent:${sha256}`;
export const GROUP_INFO_LABEL = "GroupInfo and ratchet_tree encryption";

/**
 * PeerGateway for a peer that speaks MIMI: the domain calls the same methods as for a fedgate
 * peer; this class turns them into MIMI requests (or answers from the local replica where MIMI
 * has no such call: group view, catch-up, commit log; see docs/MIMI.md).
 */
export class MimiGateway implements PeerGateway {
  constructor(
    private readonly client: MimiClient,
    private readonly store: Store,
    private readonly keys: MimiKeys,
    private readonly limits: MimiLimits,
    private readonly policy: KeyPackagePolicy,
    private readonly clock: Clock,
  ) {}

  async claim(domain: string, req: ClaimRequest): Promise<ClaimAnswer> {
    // Signed with the first requested suite this DS implements (the receiver tries them in order).
    let signer: { suite: number; publicKey: Uint8Array; signKey: Uint8Array } | undefined;
    for (const suite of req.cipherSuites) {
      const key = await this.keys.keyFor(suite).catch(() => undefined);
      if (key) {
        signer = { suite, ...key };
        break;
      }
    }
    if (!signer) {
      throw new DsError("no_common_cipher_suite", "none of the requested cipher suites is implemented here", {
        requester: { cipherSuites: req.cipherSuites },
        target: { cipherSuites: [] },
      });
    }
    const { suite, publicKey, signKey } = signer;
    const tbs: KeyMaterialRequestTBS = {
      requestingUser: userUri(userOf(req.requester)),
      targetUser: userUri(req.user),
      roomId: "",
      acceptableCiphersuites: req.cipherSuites,
      requiredCapabilities: mlsOf("requiredCapabilities", { extensionTypes: [], proposalTypes: [], credentialTypes: [] }),
      requesterSignatureKey: publicKey,
      requesterCredential: basicCredential(req.requester),
    };
    const signature = await mimiSign(suite, signKey, "KeyMaterialRequestTBS", encodeKeyMaterialRequestTBS(tbs));
    const res = await this.client.post(domain, "keyMaterial", tbs.targetUser, encodeKeyMaterialRequest({ ...tbs, signature }));
    const answer = decodeKeyMaterialResponse(res.body, this.limits);
    if (answer.userUri !== tbs.targetUser)
      throw new DsError("peer_error", `${domain} answered for ${answer.userUri}`, { peer: domain });
    switch (answer.userStatus) {
      case "userUnknown":
      case "userDeleted":
        throw new DsError("unknown_user", `${req.user} is not known at ${domain} (${answer.userStatus})`);
      case "noConsent":
      case "noConsentForThisRoom":
        throw new DsError("forbidden", `${domain}: ${answer.userStatus}`, { mimi: answer.userStatus });
      case "incompatibleProtocol":
        throw new DsError("no_common_cipher_suite", "no common protocol version", {
          requester: { versions: req.versions },
          target: { versions: [] },
        });
      default:
        break;
    }
    const accepted: ClaimAnswer["bundles"] = [];
    const missing: ClaimAnswer["missing"] = [];
    let chosen: number | undefined;
    for (const c of answer.clients) {
      const client = clientOfUri(c.clientUri);
      if (userOf(client) !== req.user)
        throw new DsError("peer_error", `${domain} listed ${client} for ${req.user}`, { peer: domain });
      if (c.clientStatus !== "success") {
        missing.push({ client, reason: c.clientStatus === "keyMaterialExhausted" ? "exhausted" : "no_compatible_suite" });
        continue;
      }
      const kp = await validateKeyPackage(
        wrapMls("key_package", c.keyPackage.bytes),
        client,
        this.policy,
        this.clock.nowSeconds(),
      );
      chosen ??= kp.cipherSuite;
      if (!req.cipherSuites.includes(kp.cipherSuite) || kp.cipherSuite !== chosen) {
        missing.push({ client, reason: "no_compatible_suite" });
        continue;
      }
      accepted.push({ client, keyPackage: kp.keyPackage, identityKey: kp.identityKey, lastResort: kp.lastResort });
    }
    if (accepted.length === 0 || chosen === undefined) {
      if (missing.length > 0 && missing.every((m) => m.reason === "exhausted"))
        throw new DsError("no_key_package", `${req.user} has no usable KeyPackage`);
      if (missing.length === 0 && answer.userStatus === "noCompatibleMaterial")
        throw new DsError("no_common_cipher_suite", `no cipher suite in common with ${req.user}`, {
          requester: { cipherSuites: req.cipherSuites },
          target: { cipherSuites: [] },
        });
      if (missing.length === 0) throw new DsError("no_key_package", `${req.user} has no usable KeyPackage`);
      throw new DsError("no_common_cipher_suite", `no cipher suite in common with ${req.user}`, {
        requester: { cipherSuites: req.cipherSuites },
        target: { cipherSuites: [] },
      });
    }
    return { user: req.user, version: "mls10", cipherSuite: chosen, bundles: accepted, missing };
  }

  devices(domain: string): Promise<DeviceList> {
    return Promise.reject(new DsError("not_found", `${domain} speaks MIMI, which has no device list`));
  }

  async submit(hub: string, groupId: string, sender: string, body: SubmitBody): Promise<{ seq: number; epoch: number }> {
    const room = roomUri(hub, groupId);
    const text = body.kind === "commit" ? body.bundle.commit : body.message;
    const { bytes, message } = decodeMlsField(text, body.kind === "commit" ? "commit" : "message", this.limits.messageBytes);
    const framing = readFraming(message);
    // Remembered before sending: the hub's notify may overtake its answer.
    await this.store.rememberRefs([{ ref: sentKey(sha256Hex(bytes)), client: sender }], SENT_TTL_S);
    if (framing.contentType === "application") {
      const res = await this.client.post(
        hub,
        "submitMessage",
        room,
        encodeSubmitMessageRequest({ appMessage: { value: message, bytes }, sendingUri: clientUri(sender) }),
      );
      const answer = decodeSubmitMessageResponse(res.body);
      if (answer.statusCode === "epochTooOld") {
        throw new DsError("stale_epoch", `the group is at epoch ${answer.currentEpoch}`, {
          expectedEpoch: Number(answer.currentEpoch),
        });
      }
      if (answer.statusCode === "notAllowed")
        throw new DsError("forbidden", `${hub} did not allow the message`, { mimi: "notAllowed" });
      return { seq: 0, epoch: framing.epoch };
    }
    if (message.wireformat !== "mls_public_message") {
      throw new DsError("bad_request", `${hub} speaks MIMI: handshake messages must be PublicMessages`);
    }
    let bundle: HandshakeBundle;
    if (body.kind === "commit") {
      if (!body.bundle.groupInfo) throw new DsError("bad_request", `${hub} speaks MIMI: a commit needs its GroupInfo`);
      const gi = decodeMlsField(body.bundle.groupInfo, "groupInfo", this.limits.groupInfoBytes);
      if (gi.message.wireformat !== "mls_group_info") throw new DsError("invalid_group_info", "groupInfo must be a GroupInfo");
      const tree = treeOfGroupInfo(gi.message.groupInfo);
      if (!tree) throw new DsError("invalid_group_info", "GroupInfo must carry the ratchet_tree extension");
      const welcome = body.bundle.welcome ? decodeMlsField(body.bundle.welcome, "welcome", this.limits.messageBytes) : undefined;
      if (welcome && welcome.message.wireformat !== "mls_welcome") throw new DsError("invalid_mls", "welcome must be a Welcome");
      bundle = {
        proposalOrCommit: { value: message, bytes },
        kind: "commit",
        ...(welcome && welcome.message.wireformat === "mls_welcome"
          ? { welcome: { value: welcome.message.welcome, bytes: unwrapMls("welcome", welcome.bytes) } }
          : {}),
        groupInfoOption: {
          representation: "full",
          groupInfo: { value: gi.message.groupInfo, bytes: unwrapMls("group_info", gi.bytes) },
        },
        ratchetTreeOption: { representation: "full", ratchetTree: mlsOf("ratchetTree", tree) },
      };
    } else {
      bundle = { proposalOrCommit: { value: message, bytes }, kind: "proposal", moreProposals: [] };
    }
    const res = await this.client.post(hub, "update", room, encodeUpdateRequest(bundle));
    const answer = decodeUpdateRoomResponse(res.body);
    switch (answer.responseCode) {
      case "success":
        return { seq: 0, epoch: body.kind === "commit" ? framing.epoch + 1 : framing.epoch };
      case "wrongEpoch": {
        const current = Number(answer.currentEpoch);
        await this.awaitReplicaEpoch(groupId, current);
        throw new DsError("stale_epoch", `the group is at epoch ${current}`, { expectedEpoch: current });
      }
      case "notAllowed":
        throw new DsError("forbidden", `${hub}: ${answer.errorDescription || "not allowed"}`, { mimi: "notAllowed" });
      case "invalidProposal":
        throw new DsError("roster_mismatch", `${hub}: ${answer.errorDescription || "invalid proposal"}`, {
          mimi: "invalidProposal",
        });
    }
  }

  /** After wrongEpoch the winner reaches us by notify; wait (bounded) so the client's catch-up finds it. */
  private async awaitReplicaEpoch(groupId: string, epoch: number): Promise<void> {
    // Deadline on the injected clock; the poll count bounds the wait even if that clock stands still.
    const deadline = this.clock.nowMs() + CATCH_UP_WAIT_MS;
    for (let polls = 0; polls <= CATCH_UP_WAIT_MS / CATCH_UP_POLL_MS; polls++) {
      const g = await this.store.getGroup(groupId);
      if (!g || g.epoch >= epoch || this.clock.nowMs() >= deadline) return;
      await sleep(CATCH_UP_POLL_MS);
    }
  }

  lease(hub: string): Promise<{ leaseToken: string; expiresAt: number }> {
    return Promise.reject(new DsError("bad_request", `${hub} speaks MIMI, which has no group lease`, { peerProtocol: "mimi" }));
  }

  releaseLease(hub: string): Promise<void> {
    return Promise.reject(new DsError("bad_request", `${hub} speaks MIMI, which has no group lease`, { peerProtocol: "mimi" }));
  }

  /** MIMI has no room-state call: the view is this DS's replica, kept from the hub's notifies. */
  async group(_hub: string, groupId: string, member?: string): Promise<GroupView> {
    const g = await this.store.getGroup(groupId);
    if (!g) throw new DsError("unknown_group", "no such group");
    if (member !== undefined && !g.members.includes(member))
      throw new DsError("not_a_member", "you are not a member of this group");
    return viewOf(g);
  }

  async groupInfo(hub: string, groupId: string, member: string): Promise<StoredGroupInfo> {
    const g = await this.store.getGroup(groupId);
    if (!g) throw new DsError("unknown_group", "no such group");
    const suite = g.cipherSuite;
    const room = roomUri(hub, groupId);
    const { publicKey, signKey } = await this.keys.keyFor(suite);
    const hpke = await mimiHpkeKeyPair(suite);
    const tbs = {
      cipherSuite: suite,
      requestingSignatureKey: publicKey,
      requestingCredential: basicCredential(member),
      groupInfoPublicKey: hpke.publicKey,
      joiningCode: new Uint8Array(),
    };
    const signature = await mimiSign(suite, signKey, "GroupInfoRequestTBS", encodeGroupInfoRequestTBS(tbs));
    const res = await this.client.post(hub, "groupInfo", room, encodeGroupInfoRequest({ ...tbs, signature }));
    const answer = decodeGroupInfoResponse(res.body, this.limits);
    if (answer.roomId !== room) throw new DsError("peer_error", `${hub} answered for room ${answer.roomId}`, { peer: hub });
    if (answer.status !== "success") {
      throw answer.status === "noSuchRoom"
        ? new DsError("unknown_group", `${hub} knows no such room`)
        : new DsError("not_a_member", `${hub} did not authorize ${member}`);
    }
    const { signature: hubSignature, ...unsigned } = answer;
    const ok = await mimiVerify(
      answer.cipherSuite,
      answer.hubSender.value.signaturePublicKey,
      "GroupInfoResponseTBS",
      encodeGroupInfoResponseTBS(unsigned),
      hubSignature,
    );
    if (!ok) throw new DsError("peer_error", `${hub}'s GroupInfo response signature does not verify`, { peer: hub });
    let plain: Uint8Array;
    try {
      plain = await hpke.decrypt(GROUP_INFO_LABEL, new TextEncoder().encode(room), answer.encrypted.value);
    } catch {
      throw new DsError("peer_error", `${hub}'s GroupInfo does not decrypt`, { peer: hub });
    }
    const tbe = decodeGroupInfoRatchetTreeTBE(plain, this.limits);
    const gi = tbe.groupInfo.value;
    const option = tbe.ratchetTreeOption;
    // -06: the tree comes in RatchetTreeOption.full unless the GroupInfo embeds it.
    const separate = !treeOfGroupInfo(gi) && option.representation === "full" ? option.ratchetTree : undefined;
    if (!treeOfGroupInfo(gi) && !separate)
      throw new DsError("peer_error", `${hub}'s GroupInfo carries no ratchet tree`, { peer: hub });
    if (separate) {
      const wrapped = decodeMlsMessage(wrapMls("group_info", tbe.groupInfo.bytes), 0)![0];
      await checkGroupInfo(wrapped, { groupId, cipherSuite: suite }, separate.value).catch((e: unknown) => {
        throw new DsError("peer_error", `${hub}'s GroupInfo and tree do not match: ${(e as Error).message}`, { peer: hub });
      });
    }
    return {
      epoch: Number(gi.groupContext.epoch),
      groupInfo: b64u(wrapMls("group_info", tbe.groupInfo.bytes)),
      ...(separate ? { ratchetTree: b64u(separate.bytes) } : {}),
    };
  }

  /** MIMI has no catch-up call: the replica is all there is (kept gap-free by local numbering). */
  async messages(_hub: string, groupId: string): Promise<{ group: GroupView; entries: LogEntry[] }> {
    return { group: await this.group(_hub, groupId), entries: [] };
  }

  async deviceUpdate(): Promise<void> {
    // MIMI has no device notifications; its peers learn of devices through keyMaterial.
  }

  async commitLog(): Promise<{ entries: CommitLogEntry[] }> {
    // No commit-log gossip over MIMI: the follower only compares the commits it was sent itself.
    return { entries: [] };
  }
}
