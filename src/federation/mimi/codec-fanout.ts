import {
  mlsParts,
  type Credential,
  type ExternalSender,
  type GroupInfo,
  type HPKECiphertext,
  type MLSMessage,
} from "../../mls/mimi-parts.js";
import { MimiCodecError, Reader, Writer, codeOf, decodeStrict } from "./wire.js";
import {
  DEFAULT_MIMI_LIMITS,
  GROUP_INFO_CODES,
  KEY_MAX,
  MAX_PROPOSALS,
  contentKind,
  mlsMessage,
  protocol,
  readRatchetTreeOption,
  uri,
  writeRatchetTreeOption,
  type MimiLimits,
  type Mls,
  type RatchetTreeOption,
  readFrank,
  writeFrank,
  type Frank,
} from "./codec-common.js";

/** notify and groupInfo bodies (draft-ietf-mimi-protocol-06 §Fanout, §Claim group key information). */
// ---------------------------------------------------------------- notify

export type FanoutMessage =
  | { timestamp: bigint; message: Mls<MLSMessage>; kind: "application"; frank?: Frank }
  | { timestamp: bigint; message: Mls<MLSMessage>; kind: "welcome"; ratchetTreeOption: RatchetTreeOption }
  | { timestamp: bigint; message: Mls<MLSMessage>; kind: "proposal"; moreProposals: Mls<MLSMessage>[] }
  | { timestamp: bigint; message: Mls<MLSMessage>; kind: "commit"; externalProposals: Mls<MLSMessage>[] };

function writeFanout(w: Writer, v: FanoutMessage): void {
  w.u64(v.timestamp).raw(v.message.bytes);
  if (v.kind === "application") w.optional(v.frank, writeFrank);
  if (v.kind === "welcome") writeRatchetTreeOption(w, v.ratchetTreeOption);
  if (v.kind === "proposal") w.vector(v.moreProposals, (x, p) => x.raw(p.bytes));
  if (v.kind === "commit") w.vector(v.externalProposals, (x, p) => x.raw(p.bytes));
}

function readFanout(r: Reader, limits: MimiLimits): FanoutMessage {
  const timestamp = r.u64("timestamp");
  const message = mlsMessage(r, "message", limits);
  const kind = contentKind(message.value);
  const proposals = (field: string) => {
    const list = r.vector(field, limits.messageBytes * 4, MAX_PROPOSALS, (x) => mlsMessage(x, field, limits));
    if (list.some((p) => contentKind(p.value) !== "proposal")) throw new MimiCodecError(`${field} may hold proposals only`);
    return list;
  };
  switch (kind) {
    case "application": {
      const frank = r.optional("frank", readFrank);
      return { timestamp, message, kind, ...(frank ? { frank } : {}) };
    }
    case "welcome":
      return { timestamp, message, kind, ratchetTreeOption: readRatchetTreeOption(r, limits) };
    case "proposal":
      return { timestamp, message, kind, moreProposals: proposals("moreProposals") };
    case "commit":
      return { timestamp, message, kind, externalProposals: proposals("externalProposals") };
    default:
      throw new MimiCodecError("a FanoutMessage carries an application message, proposal, commit or Welcome");
  }
}

/** A notify body: one or more FanoutMessages concatenated (draft §Fanout), at most `maxMessages`. */
export function encodeNotifyBody(messages: readonly FanoutMessage[]): Uint8Array {
  const w = new Writer();
  for (const m of messages) writeFanout(w, m);
  return w.bytes();
}

export function decodeNotifyBody(
  bytes: Uint8Array,
  limits: MimiLimits = DEFAULT_MIMI_LIMITS,
  maxMessages = 1000,
): FanoutMessage[] {
  return decodeStrict(
    bytes,
    "notify body",
    (r) => {
      const out: FanoutMessage[] = [];
      do {
        if (out.length === maxMessages) throw new MimiCodecError(`more than ${maxMessages} FanoutMessages`);
        out.push(readFanout(r, limits));
      } while (!r.done);
      return out;
    },
    encodeNotifyBody,
  );
}

// ---------------------------------------------------------------- groupInfo

export interface GroupInfoRequestTBS {
  cipherSuite: number;
  requestingSignatureKey: Uint8Array;
  requestingCredential: Mls<Credential>;
  groupInfoPublicKey: Uint8Array;
  /** Empty when no joining code is sent (see docs/MIMI.md: the TBS and the request spell it differently). */
  joiningCode: Uint8Array;
}

export interface GroupInfoRequest extends GroupInfoRequestTBS {
  signature: Uint8Array;
}

function writeGroupInfoTBS(w: Writer, v: GroupInfoRequestTBS): Writer {
  return w
    .u8(1)
    .u16(v.cipherSuite)
    .opaque(v.requestingSignatureKey)
    .raw(v.requestingCredential.bytes)
    .opaque(v.groupInfoPublicKey)
    .opaque(v.joiningCode);
}

export function encodeGroupInfoRequestTBS(v: GroupInfoRequestTBS): Uint8Array {
  return writeGroupInfoTBS(new Writer(), v).bytes();
}

export function encodeGroupInfoRequest(v: GroupInfoRequest): Uint8Array {
  return writeGroupInfoTBS(new Writer(), v).opaque(v.signature).bytes();
}

export function decodeGroupInfoRequest(bytes: Uint8Array): GroupInfoRequest {
  return decodeStrict(
    bytes,
    "GroupInfoRequest",
    (r) => {
      protocol(r);
      return {
        cipherSuite: r.u16("cipher_suite"),
        requestingSignatureKey: r.opaque("requestingSignatureKey", KEY_MAX),
        requestingCredential: r.mls("requestingCredential", mlsParts.credential, KEY_MAX),
        groupInfoPublicKey: r.opaque("groupInfoPublicKey", KEY_MAX),
        joiningCode: r.opaque("joiningCode", 1024),
        signature: r.opaque("signature", KEY_MAX),
      };
    },
    encodeGroupInfoRequest,
  );
}

export interface PendingProposal {
  proposal: Mls<MLSMessage>;
  hubAcceptedTime: bigint;
}

export interface GroupInfoRatchetTreeTBE {
  groupInfo: Mls<GroupInfo>;
  ratchetTreeOption: RatchetTreeOption;
  pendingProposals: PendingProposal[];
}

export function encodeGroupInfoRatchetTreeTBE(v: GroupInfoRatchetTreeTBE): Uint8Array {
  const w = new Writer().raw(v.groupInfo.bytes);
  writeRatchetTreeOption(w, v.ratchetTreeOption);
  return w.vector(v.pendingProposals, (x, p) => x.raw(p.proposal.bytes).u64(p.hubAcceptedTime)).bytes();
}

export function decodeGroupInfoRatchetTreeTBE(
  bytes: Uint8Array,
  limits: MimiLimits = DEFAULT_MIMI_LIMITS,
): GroupInfoRatchetTreeTBE {
  return decodeStrict(
    bytes,
    "GroupInfoRatchetTreeTBE",
    (r) => ({
      groupInfo: r.mls("groupInfo", mlsParts.groupInfo, limits.groupInfoBytes),
      ratchetTreeOption: readRatchetTreeOption(r, limits),
      pendingProposals: r.vector("pending_proposals", limits.messageBytes * 4, MAX_PROPOSALS, (x) => ({
        proposal: mlsMessage(x, "proposal", limits),
        hubAcceptedTime: x.u64("hub_accepted_time"),
      })),
    }),
    encodeGroupInfoRatchetTreeTBE,
  );
}

export type GroupInfoResponse =
  | {
      status: "success";
      roomId: string;
      cipherSuite: number;
      hubSender: Mls<ExternalSender>;
      encrypted: Mls<HPKECiphertext>;
      signature: Uint8Array;
    }
  | { status: "notAuthorized" | "noSuchRoom"; roomId: string };

type SuccessResponse = Extract<GroupInfoResponse, { status: "success" }>;

/** GroupInfoResponseTBS: the success response without its signature. */
export function encodeGroupInfoResponseTBS(v: Omit<SuccessResponse, "signature">): Uint8Array {
  return new Writer()
    .u8(1)
    .text(v.roomId)
    .u8(codeOf(GROUP_INFO_CODES, "success"))
    .u16(v.cipherSuite)
    .raw(v.hubSender.bytes)
    .raw(v.encrypted.bytes)
    .bytes();
}

export function encodeGroupInfoResponse(v: GroupInfoResponse): Uint8Array {
  if (v.status !== "success") return new Writer().u8(1).text(v.roomId).u8(codeOf(GROUP_INFO_CODES, v.status)).bytes();
  return new Writer().raw(encodeGroupInfoResponseTBS(v)).opaque(v.signature).bytes();
}

export function decodeGroupInfoResponse(bytes: Uint8Array, limits: MimiLimits = DEFAULT_MIMI_LIMITS): GroupInfoResponse {
  return decodeStrict(
    bytes,
    "GroupInfoResponse",
    (r): GroupInfoResponse => {
      protocol(r);
      const roomId = uri(r, "room_id");
      const status = r.enumOf("status", GROUP_INFO_CODES);
      if (status !== "success") return { status, roomId };
      return {
        status,
        roomId,
        cipherSuite: r.u16("cipher_suite"),
        hubSender: r.mls("hub_sender", mlsParts.externalSender, KEY_MAX),
        encrypted: r.mls("encrypted_groupinfo_and_tree", mlsParts.hpkeCiphertext, limits.groupInfoBytes * 2),
        signature: r.opaque("signature", KEY_MAX),
      };
    },
    encodeGroupInfoResponse,
  );
}
