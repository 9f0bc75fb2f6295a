export {
  FedgateApi,
  FedgateError,
  type ClaimAnswer,
  type CommitBundle,
  type GroupView,
  type InboxEntry,
  type LogMessage,
} from "./api.js";
export { MlsClient, type MlsEvent } from "./mls-client.js";
export { toB64u, fromB64u } from "./b64.js";
