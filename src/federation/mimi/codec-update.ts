import { mlsParts, type MLSMessage, type Welcome } from "../../mls/mimi-parts.js";
import { MimiCodecError, Writer, codeOf, decodeStrict } from "./wire.js";
import {
  DEFAULT_MIMI_LIMITS,
  MAX_PROPOSALS,
  SUBMIT_RESPONSE_CODES,
  TEXT_MAX,
  UPDATE_RESPONSE_CODES,
  contentKind,
  mlsMessage,
  protocol,
  readGroupInfoOption,
  readRatchetTreeOption,
  uri,
  writeGroupInfoOption,
  writeRatchetTreeOption,
  type GroupInfoOption,
  type MimiLimits,
  type Mls,
  type RatchetTreeOption,
  readFrank,
  writeFrank,
  type Frank,
} from "./codec-common.js";

/** update and submitMessage bodies (draft-ietf-mimi-protocol-06 §Update Room State, §Submit a Message). */
// ---------------------------------------------------------------- update

export type HandshakeBundle =
  | {
      proposalOrCommit: Mls<MLSMessage>;
      kind: "commit";
      welcome?: Mls<Welcome>;
      groupInfoOption: GroupInfoOption;
      ratchetTreeOption: RatchetTreeOption;
    }
  | { proposalOrCommit: Mls<MLSMessage>; kind: "proposal"; moreProposals: Mls<MLSMessage>[] };

/** UpdateRequest = { select (room.protocol) { case mls10: HandshakeBundle } }: the bundle alone. */
export function encodeUpdateRequest(v: HandshakeBundle): Uint8Array {
  const w = new Writer().raw(v.proposalOrCommit.bytes);
  if (v.kind === "commit") {
    w.optional(v.welcome, (x, welcome) => x.raw(welcome.bytes));
    writeGroupInfoOption(w, v.groupInfoOption);
    writeRatchetTreeOption(w, v.ratchetTreeOption);
  } else {
    w.vector(v.moreProposals, (x, p) => x.raw(p.bytes));
  }
  return w.bytes();
}

export function decodeUpdateRequest(bytes: Uint8Array, limits: MimiLimits = DEFAULT_MIMI_LIMITS): HandshakeBundle {
  return decodeStrict(
    bytes,
    "UpdateRequest",
    (r) => {
      const proposalOrCommit = mlsMessage(r, "proposalOrCommit", limits);
      const kind = contentKind(proposalOrCommit.value);
      if (kind === "commit") {
        const welcome = r.optional("welcome", (x) => x.mls("welcome", mlsParts.welcome, limits.messageBytes));
        return {
          proposalOrCommit,
          kind,
          ...(welcome ? { welcome } : {}),
          groupInfoOption: readGroupInfoOption(r, limits),
          ratchetTreeOption: readRatchetTreeOption(r, limits),
        };
      }
      if (kind === "proposal") {
        const moreProposals = r.vector("moreProposals", limits.messageBytes * 4, MAX_PROPOSALS, (x) =>
          mlsMessage(x, "moreProposals", limits),
        );
        if (moreProposals.some((p) => contentKind(p.value) !== "proposal"))
          throw new MimiCodecError("moreProposals may hold proposals only");
        return { proposalOrCommit, kind, moreProposals };
      }
      throw new MimiCodecError(`proposalOrCommit must be a proposal or commit, not ${kind}`);
    },
    encodeUpdateRequest,
  );
}

export type UpdateRoomResponse =
  | { responseCode: "success"; errorDescription: string; acceptedTimestamp: bigint }
  | { responseCode: "wrongEpoch"; errorDescription: string; currentEpoch: bigint }
  | { responseCode: "notAllowed"; errorDescription: string }
  | { responseCode: "invalidProposal"; errorDescription: string; invalidProposals: Uint8Array[] };

export function encodeUpdateRoomResponse(v: UpdateRoomResponse): Uint8Array {
  const w = new Writer().u8(codeOf(UPDATE_RESPONSE_CODES, v.responseCode)).text(v.errorDescription);
  if (v.responseCode === "success") w.u64(v.acceptedTimestamp);
  if (v.responseCode === "wrongEpoch") w.u64(v.currentEpoch);
  if (v.responseCode === "invalidProposal") w.vector(v.invalidProposals, (x, ref) => x.opaque(ref));
  return w.bytes();
}

export function decodeUpdateRoomResponse(bytes: Uint8Array): UpdateRoomResponse {
  return decodeStrict(
    bytes,
    "UpdateRoomResponse",
    (r): UpdateRoomResponse => {
      const responseCode = r.enumOf("responseCode", UPDATE_RESPONSE_CODES);
      const errorDescription = r.text("errorDescription", TEXT_MAX);
      switch (responseCode) {
        case "success":
          return { responseCode, errorDescription, acceptedTimestamp: r.u64("accepted_timestamp") };
        case "wrongEpoch":
          return { responseCode, errorDescription, currentEpoch: r.u64("currentEpoch") };
        case "notAllowed":
          return { responseCode, errorDescription };
        case "invalidProposal":
          return {
            responseCode,
            errorDescription,
            invalidProposals: r.vector("invalidProposals", 64 * MAX_PROPOSALS, MAX_PROPOSALS, (x) => x.opaque("ProposalRef", 64)),
          };
      }
    },
    encodeUpdateRoomResponse,
  );
}

// ---------------------------------------------------------------- submitMessage

export interface SubmitMessageRequest {
  appMessage: Mls<MLSMessage>;
  sendingUri: string;
}

export function encodeSubmitMessageRequest(v: SubmitMessageRequest): Uint8Array {
  return new Writer().u8(1).raw(v.appMessage.bytes).text(v.sendingUri).bytes();
}

export function decodeSubmitMessageRequest(bytes: Uint8Array, limits: MimiLimits = DEFAULT_MIMI_LIMITS): SubmitMessageRequest {
  return decodeStrict(
    bytes,
    "SubmitMessageRequest",
    (r) => {
      protocol(r);
      const appMessage = mlsMessage(r, "appMessage", limits);
      if (appMessage.value.wireformat !== "mls_private_message" || contentKind(appMessage.value) !== "application")
        throw new MimiCodecError("appMessage must be a PrivateMessage with application content");
      return { appMessage, sendingUri: uri(r, "sendingUri") };
    },
    encodeSubmitMessageRequest,
  );
}

export type SubmitMessageResponse =
  | { statusCode: "accepted"; acceptedTimestamp: bigint; frank?: Frank }
  | { statusCode: "notAllowed" }
  | { statusCode: "epochTooOld"; currentEpoch: bigint };

export function encodeSubmitMessageResponse(v: SubmitMessageResponse): Uint8Array {
  const w = new Writer().u8(1).u8(codeOf(SUBMIT_RESPONSE_CODES, v.statusCode));
  if (v.statusCode === "accepted") w.u64(v.acceptedTimestamp).optional(v.frank, writeFrank);
  if (v.statusCode === "epochTooOld") w.u64(v.currentEpoch);
  return w.bytes();
}

export function decodeSubmitMessageResponse(bytes: Uint8Array): SubmitMessageResponse {
  return decodeStrict(
    bytes,
    "SubmitMessageResponse",
    (r): SubmitMessageResponse => {
      protocol(r);
      const statusCode = r.enumOf("statusCode", SUBMIT_RESPONSE_CODES);
      if (statusCode === "accepted") {
        const acceptedTimestamp = r.u64("accepted_timestamp");
        const frank = r.optional("frank", readFrank);
        return { statusCode, acceptedTimestamp, ...(frank ? { frank } : {}) };
      }
      if (statusCode === "epochTooOld") return { statusCode, currentEpoch: r.u64("currentEpoch") };
      return { statusCode };
    },
    encodeSubmitMessageResponse,
  );
}
