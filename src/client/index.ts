export {
  FedgateApi,
  FedgateError,
  type ClaimAnswer,
  type CommitBundle,
  type GroupView,
  type InboxEntry,
  type LogMessage,
} from "./api.js";
export { MlsClient, type MlsClientOptions, type MlsEvent } from "./mls-client.js";
export { InboxReader, type InboxReaderOptions } from "./inbox-reader.js";
export { MemoryClientStorage, type ClientStorage, type StoredGroup, type StoredKeyPackage } from "./storage.js";
export { IndexedDbClientStorage } from "./indexeddb-storage.js";
export { toB64u, fromB64u } from "./b64.js";
export { sframe, deriveKeySalt, sframeLabels } from "./sframe.js";
export { encodeSframeHeader, decodeSframeHeader, type SframeHeader } from "./sframe-header.js";
export { SframeError, type SframeErrorCode } from "./sframe-error.js";
export { SFRAME_SUITE_IDS, sframeSuite, type SframeSuite } from "./sframe-suites.js";
export {
  SframeKeyRing,
  systemClock,
  KEY_RING_DEFAULTS,
  MAX_CONTEXTS,
  type CallClock,
  type EpochKeys,
  type KeyRingOptions,
  type OpenedFrame,
} from "./sframe-key-ring.js";
export {
  CallKeys,
  DEFAULT_CALL_SUITE,
  SFRAME_EXPORTER_LABEL,
  type CallFrame,
  type CallKeysOptions,
  type EpochSnapshot,
  type EpochSource,
  type GroupEpochEvent,
} from "./call-keys.js";
export {
  CLEAR_BYTES,
  MEDIA_CONTEXT,
  SframeTransformHost,
  clearByteCount,
  installSframeWorker,
  protectFrame,
  unprotectFrame,
  type EncodedFrameType,
  type MediaKind,
  type ScriptTransformer,
  type SframeTransformOptions,
  type SframeWorkerReply,
  type SframeWorkerRequest,
  type TransformStats,
  type TransformWorkerScope,
} from "./sframe-transform.js";
export { wrapKeyPackage, unwrapKeyPackage, wrapGroupInfo, unwrapGroupInfo, wrapWelcome, unwrapWelcome } from "./wire-format.js";
export { IDENTITY_SCHEMES, clientOfIdentity, identityFor, clientForIdentity, type IdentityScheme } from "../mls/identity.js";
