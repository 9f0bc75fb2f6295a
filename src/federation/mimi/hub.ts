import type { AppContext } from "../../context.js";
import { requireMemberOrSameUser } from "../../domain/group-side.js";
import { DsError } from "../../errors.js";
import { readFraming } from "../../mls/framing.js";
import { leafIdentities, storedLeaves, storedTree } from "../../mls/group-info.js";
import { rosterChange } from "../../mls/framing.js";
import { mimiEncrypt, mimiSign, mimiVerify, mlsParts, treeOfGroupInfo, type MLSMessage } from "../../mls/mimi-parts.js";
import { bytesEqual } from "../../encoding.js";
import { domainOf, type GroupRecord } from "../../store/port.js";
import {
  decodeGroupInfoRequest,
  decodeSubmitMessageRequest,
  decodeUpdateRequest,
  encodeGroupInfoRatchetTreeTBE,
  encodeGroupInfoRequestTBS,
  encodeGroupInfoResponseTBS,
  mlsOf,
  type GroupInfoResponse,
  type HandshakeBundle,
  type MimiLimits,
  type SubmitMessageResponse,
  type UpdateRoomResponse,
} from "./codec.js";
import { b64u, basicCredential, clientOfCredential, fromB64, unwrapMls, wrapMls } from "./envelope.js";
import { GROUP_INFO_LABEL } from "./gateway.js";
import { providerUri, roomOfUri, senderOfUri } from "./ids.js";
import { CLIENT_ID } from "../../wire/ids.js";

/** The hub side of MIMI (update, submitMessage, groupInfo) mapped onto the domain's Groups. */
export class MimiHub {
  constructor(
    private readonly ctx: AppContext,
    private readonly limits: MimiLimits,
  ) {}

  private get domain(): string {
    return this.ctx.config.domain;
  }

  /** A room this DS hubs; MIMI rooms of other hubs are not answered here. */
  private async hubbed(room: string): Promise<GroupRecord> {
    const { hub, groupId } = roomOfUri(room);
    const g = hub === this.domain ? await this.ctx.store.getGroup(groupId) : undefined;
    if (!g || g.hub !== this.domain) throw new DsError("unknown_group", "no such room at this hub");
    return g;
  }

  /** Who sent a member PublicMessage: its leaf in the current epoch's stored tree (else the new one's). */
  private async memberAt(g: GroupRecord, leaf: number, fallback?: (string | null)[]): Promise<string | undefined> {
    const stored = await this.ctx.store.getGroupInfo(g.groupId);
    const leaves = stored && stored.epoch === g.epoch ? storedLeaves(stored) : undefined;
    return (leaves ?? fallback)?.[leaf] ?? undefined;
  }

  async update(peer: string, room: string, body: Uint8Array): Promise<UpdateRoomResponse> {
    const g = await this.hubbed(room);
    const bundle = decodeUpdateRequest(body, this.limits);
    const message = bundle.proposalOrCommit.value;
    if (message.wireformat !== "mls_public_message") {
      return notAllowed("handshakes must be PublicMessages (SemiPrivateMessage is not supported)");
    }
    try {
      return bundle.kind === "commit" ? await this.commit(peer, g, bundle, message) : await this.proposals(peer, g, bundle);
    } catch (e) {
      if (!(e instanceof DsError)) throw e;
      return updateRefusal(e);
    }
  }

  private async commit(
    peer: string,
    g: GroupRecord,
    bundle: Extract<HandshakeBundle, { kind: "commit" }>,
    message: MLSMessage,
  ): Promise<UpdateRoomResponse> {
    if (bundle.groupInfoOption.representation !== "full")
      return notAllowed("PartialGroupInfo is not supported: send the full GroupInfo");
    const gi = bundle.groupInfoOption.groupInfo;
    const embedded = treeOfGroupInfo(gi.value);
    const rto = bundle.ratchetTreeOption;
    if (rto.representation === "httpsUri") return notAllowed("ratchet trees by URL are not fetched");
    if (embedded && rto.representation === "full" && !bytesEqual(rto.ratchetTree.bytes, mlsParts.ratchetTree.encode(embedded)))
      return notAllowed("the ratchet tree differs from the GroupInfo's");
    // -06: the tree may come only in RatchetTreeOption.full; it is checked against the GroupInfo's
    // tree hash on the commit path (checkGroupInfo) and stored beside the signed GroupInfo.
    const separate = !embedded && rto.representation === "full" ? rto.ratchetTree : undefined;
    const tree = embedded ?? separate?.value;
    if (!tree) return notAllowed("the GroupInfo carries no ratchet_tree extension and no RatchetTreeOption.full came with it");
    if (message.wireformat !== "mls_public_message") return notAllowed("not a PublicMessage");
    const content = message.publicMessage.content;
    let sender: string | undefined;
    if (content.sender.senderType === "member") sender = await this.memberAt(g, content.sender.leafIndex, leafIdentities(tree));
    else if (content.sender.senderType === "new_member_commit" && content.contentType === "commit" && content.commit.path)
      sender = clientOfCredential(content.commit.path.leafNode.credential);
    if (!sender || !CLIENT_ID.test(sender)) return notAllowed("the committer cannot be identified");
    if (domainOf(sender) !== peer) return notAllowed(`${peer} may submit only its own clients' handshakes`);
    const change = rosterChange(message);
    let added = change?.added ?? [];
    const removed: string[] = [];
    if (change?.byReference) {
      // Proposals by reference are not visible in the commit: the roster change is the difference
      // between the members and the new tree the committer signed (its GroupInfo, checked below).
      const next = new Set(leafIdentities(tree).filter((l): l is string => !!l));
      added = [...next].filter((c) => !g.members.includes(c) && c !== sender);
      removed.push(...g.members.filter((c) => !next.has(c)));
    } else {
      for (const leaf of change?.removed ?? []) {
        const who = await this.memberAt(g, leaf);
        if (!who) return notAllowed(`leaf ${leaf} cannot be resolved: the hub holds no GroupInfo of epoch ${g.epoch}`);
        removed.push(who);
      }
    }
    await this.ctx.groups.hub.acceptFromPeer(peer, sender, g, {
      kind: "commit",
      bundle: {
        commit: b64u(bundle.proposalOrCommit.bytes),
        ...(bundle.welcome ? { welcome: b64u(wrapMls("welcome", bundle.welcome.bytes)) } : {}),
        groupInfo: b64u(wrapMls("group_info", gi.bytes)),
        ...(separate ? { ratchetTree: b64u(separate.bytes) } : {}),
        added,
        removed,
      },
    });
    return { responseCode: "success", errorDescription: "", acceptedTimestamp: BigInt(this.ctx.clock.nowMs()) };
  }

  private async proposals(
    peer: string,
    g: GroupRecord,
    bundle: Extract<HandshakeBundle, { kind: "proposal" }>,
  ): Promise<UpdateRoomResponse> {
    const all = [bundle.proposalOrCommit, ...bundle.moreProposals];
    const senders: string[] = [];
    for (const p of all) {
      if (p.value.wireformat !== "mls_public_message" || p.value.publicMessage.content.sender.senderType !== "member")
        return notAllowed("proposals must be member PublicMessages");
      const who = await this.memberAt(g, p.value.publicMessage.content.sender.leafIndex);
      if (!who || domainOf(who) !== peer)
        return notAllowed("the proposer cannot be identified as a client of the requesting provider");
      senders.push(who);
    }
    for (const [i, p] of all.entries())
      await this.ctx.groups.hub.acceptFromPeer(peer, senders[i]!, g, { kind: "message", message: b64u(p.bytes) });
    return { responseCode: "success", errorDescription: "", acceptedTimestamp: BigInt(this.ctx.clock.nowMs()) };
  }

  async submitMessage(peer: string, room: string, body: Uint8Array): Promise<SubmitMessageResponse> {
    const g = await this.hubbed(room);
    const req = decodeSubmitMessageRequest(body, this.limits);
    const framing = readFraming(req.appMessage.value);
    if (framing.groupId !== g.groupId) return { statusCode: "notAllowed" };
    const who = senderOfUri(req.sendingUri);
    const sender = who.client ?? g.members.find((m) => m.startsWith(`${who.user}/`));
    if (!sender || domainOf(sender) !== peer || !g.members.includes(sender)) return { statusCode: "notAllowed" };
    if (framing.epoch > g.epoch) return { statusCode: "notAllowed" };
    if (framing.epoch < g.epoch) return { statusCode: "epochTooOld", currentEpoch: BigInt(g.epoch) };
    try {
      await this.ctx.groups.hub.acceptFromPeer(peer, sender, g, { kind: "message", message: b64u(req.appMessage.bytes) });
    } catch (e) {
      if (!(e instanceof DsError)) throw e;
      if (e.code === "stale_epoch") return { statusCode: "epochTooOld", currentEpoch: BigInt(Number(e.details.expectedEpoch)) };
      if (["not_a_member", "not_designated_sender", "forbidden", "bad_request"].includes(e.code))
        return { statusCode: "notAllowed" };
      throw e;
    }
    return { statusCode: "accepted", acceptedTimestamp: BigInt(this.ctx.clock.nowMs()) };
  }

  async groupInfo(peer: string, room: string, body: Uint8Array): Promise<GroupInfoResponse> {
    const req = decodeGroupInfoRequest(body);
    let g: GroupRecord;
    try {
      g = await this.hubbed(room);
    } catch {
      return { status: "noSuchRoom", roomId: room };
    }
    const refuse: GroupInfoResponse = { status: "notAuthorized", roomId: room };
    const suite = req.cipherSuite;
    if (!this.ctx.config.cipherSuites.includes(suite) || req.joiningCode.byteLength > 0) return refuse;
    const signed = await mimiVerify(
      suite,
      req.requestingSignatureKey,
      "GroupInfoRequestTBS",
      encodeGroupInfoRequestTBS(req),
      req.signature,
    );
    const client = clientOfCredential(req.requestingCredential.value);
    if (!signed || !client || !CLIENT_ID.test(client) || domainOf(client) !== peer) return refuse;
    try {
      requireMemberOrSameUser(g, client);
    } catch {
      return refuse;
    }
    const stored = await this.ctx.store.getGroupInfo(g.groupId);
    if (!stored) throw new DsError("not_found", "no GroupInfo has been uploaded for this room");
    const bare = unwrapMls("group_info", fromB64(stored.groupInfo));
    const [value] = mlsParts.groupInfo.decode(bare, 0) ?? [];
    const tree = value && (treeOfGroupInfo(value) ?? storedTree(stored));
    if (!value || !tree) throw new DsError("internal", "stored GroupInfo is unusable");
    const tbe = encodeGroupInfoRatchetTreeTBE({
      groupInfo: { value, bytes: bare },
      ratchetTreeOption: { representation: "full", ratchetTree: mlsOf("ratchetTree", tree) },
      pendingProposals: [],
    });
    let encrypted;
    try {
      encrypted = await mimiEncrypt(suite, req.groupInfoPublicKey, GROUP_INFO_LABEL, new TextEncoder().encode(room), tbe);
    } catch {
      throw new DsError("bad_request", "groupInfoPublicKey is not an HPKE public key of the cipher suite");
    }
    const { publicKey, signKey } = await this.ctx.mimi!.keys.keyFor(suite);
    const unsigned = {
      status: "success" as const,
      roomId: room,
      cipherSuite: suite,
      hubSender: mlsOf("externalSender", {
        signaturePublicKey: publicKey,
        credential: basicCredential(providerUri(this.domain)).value,
      }),
      encrypted: mlsOf("hpkeCiphertext", encrypted),
    };
    const signature = await mimiSign(suite, signKey, "GroupInfoResponseTBS", encodeGroupInfoResponseTBS(unsigned));
    return { ...unsigned, signature };
  }
}

function notAllowed(errorDescription: string): UpdateRoomResponse {
  return { responseCode: "notAllowed", errorDescription };
}

/** Domain refusals as MIMI update codes (docs/MIMI.md has the table). */
function updateRefusal(e: DsError): UpdateRoomResponse {
  switch (e.code) {
    case "stale_epoch":
      return { responseCode: "wrongEpoch", errorDescription: e.message, currentEpoch: BigInt(Number(e.details.expectedEpoch)) };
    case "roster_mismatch":
      return { responseCode: "invalidProposal", errorDescription: e.message, invalidProposals: [] };
    case "not_a_member":
    case "not_designated_sender":
    case "group_locked":
    case "forbidden":
    case "peer_unknown":
    case "invalid_welcome":
    case "invalid_group_info":
    case "invalid_mls":
    case "bad_request":
    case "unsupported_cipher_suite":
      return notAllowed(e.message);
    default:
      throw e;
  }
}
