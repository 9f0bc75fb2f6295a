import { z } from "zod";
import {
  ackBody,
  claimBody,
  commitAnswer,
  commitBody,
  createGroupBody,
  devTokenAnswer,
  devTokenBody,
  inboxPage,
  keyPackageList,
  leaseBody,
  messageAnswer,
  messageBody,
  messagesPage,
  peerInfo,
  treeAnswer,
  uploadAnswer,
  uploadBody,
} from "./client-api.js";
import { claimAnswer, commitLogAnswer, deviceList, groupInfoAnswer, groupView, leaseAnswer } from "./shapes.js";

/**
 * The client API's contract: every /v1 operation with its parameters, body and answers. The
 * OpenAPI document is generated from this table, and a test checks it against the express router
 * both ways, so a route cannot be added without its schema.
 */
export interface QueryParam {
  name: string;
  schema: z.ZodType;
  description: string;
}
export interface ClientOperation {
  method: "get" | "post" | "delete";
  /** OpenAPI path template under /v1, e.g. `/groups/{groupId}`. */
  path: string;
  operationId: string;
  summary: string;
  /** False only for the dev-token call; everything else needs a bearer token. */
  auth?: false;
  query?: QueryParam[];
  body?: z.ZodType;
  /** Status → answer schema; `null` for an empty answer, `"event-stream"` for SSE. */
  responses: Record<number, z.ZodType | null | "event-stream">;
}

const nonNegative = z.int().min(0);
const after = (what: string): QueryParam => ({ name: "after", schema: nonNegative, description: what });
const limit: QueryParam = { name: "limit", schema: nonNegative, description: "page size (capped by the DS)" };

export const clientOperations: readonly ClientOperation[] = [
  {
    method: "post",
    path: "/dev/token",
    operationId: "devToken",
    summary: "Dev mode only: a token for a client of this domain (404 in jwt mode)",
    auth: false,
    body: devTokenBody,
    responses: { 200: devTokenAnswer },
  },
  {
    method: "post",
    path: "/key-packages",
    operationId: "uploadKeyPackages",
    summary: "Upload KeyPackages (and a last-resort one); each is validated and accepted or rejected",
    body: uploadBody,
    responses: { 201: uploadAnswer },
  },
  {
    method: "get",
    path: "/key-packages",
    operationId: "listKeyPackages",
    summary: "This client's unclaimed KeyPackages",
    responses: { 200: keyPackageList },
  },
  {
    method: "delete",
    path: "/key-packages/{ref}",
    operationId: "deleteKeyPackage",
    summary: "Withdraw one of this client's KeyPackages",
    responses: { 204: null },
  },
  {
    method: "post",
    path: "/key-packages/claim",
    operationId: "claimKeyPackages",
    summary: "Claim one KeyPackage per device of a user (local or on a peer), in a common cipher suite",
    body: claimBody,
    responses: { 200: claimAnswer },
  },
  {
    method: "get",
    path: "/users/{user}/devices",
    operationId: "userDevices",
    summary: "A user's device list (local or from its provider)",
    responses: { 200: deviceList },
  },
  {
    method: "delete",
    path: "/devices/{client}",
    operationId: "removeDevice",
    summary: "Delete (and revoke) one of the caller's user's devices",
    responses: { 204: null },
  },
  {
    method: "get",
    path: "/peers/{domain}",
    operationId: "peer",
    summary: "A peer's discovery facts and the cipher suites in common",
    responses: { 200: peerInfo },
  },
  {
    method: "post",
    path: "/groups",
    operationId: "createGroup",
    summary: "Create a group hubbed on this DS",
    body: createGroupBody,
    responses: { 201: groupView },
  },
  {
    method: "get",
    path: "/groups/{groupId}",
    operationId: "group",
    summary: "The group as a member sees it",
    responses: { 200: groupView },
  },
  {
    method: "post",
    path: "/groups/{groupId}/commits",
    operationId: "submitCommit",
    summary: "Submit a commit bundle (commit, Welcome, GroupInfo, roster change) for the next epoch",
    body: commitBody,
    responses: { 201: commitAnswer },
  },
  {
    method: "post",
    path: "/groups/{groupId}/messages",
    operationId: "sendMessage",
    summary: "Send an application message or proposal to the group",
    body: messageBody,
    responses: { 202: messageAnswer },
  },
  {
    method: "get",
    path: "/groups/{groupId}/messages",
    operationId: "groupMessages",
    summary: "Read the group log after a sequence number",
    query: [after("sequence number to read after (0: from the start)"), limit],
    responses: { 200: messagesPage },
  },
  {
    method: "post",
    path: "/groups/{groupId}/lease",
    operationId: "acquireLease",
    summary: "Take the group's commit lease for ttlMs",
    body: leaseBody,
    responses: { 201: leaseAnswer },
  },
  {
    method: "delete",
    path: "/groups/{groupId}/lease/{token}",
    operationId: "releaseLease",
    summary: "Release a lease this client holds",
    responses: { 204: null },
  },
  {
    method: "get",
    path: "/groups/{groupId}/group-info",
    operationId: "groupInfo",
    summary: "The latest GroupInfo (for external joins and tree views)",
    responses: { 200: groupInfoAnswer },
  },
  {
    method: "get",
    path: "/groups/{groupId}/tree",
    operationId: "groupTree",
    summary: "The public ratchet tree, whole or the part one leaf needs; verify=true validates it",
    query: [
      { name: "leaf", schema: nonNegative, description: "only what this leaf needs" },
      { name: "verify", schema: z.enum(["true", "false"]), description: "run full tree validation" },
    ],
    responses: { 200: treeAnswer },
  },
  {
    method: "get",
    path: "/groups/{groupId}/commit-log",
    operationId: "commitLog",
    summary: "Which commit made each epoch",
    query: [{ name: "after", schema: z.int().min(-1), description: "epoch to list after (-1 or absent: from epoch 0)" }],
    responses: { 200: commitLogAnswer },
  },
  {
    method: "get",
    path: "/inbox",
    operationId: "inbox",
    summary: "This client's inbox after a cursor; waitMs > 0 long-polls",
    query: [
      after("cursor to read after"),
      limit,
      { name: "waitMs", schema: nonNegative, description: "long-poll up to this long (capped by limits.maxWaitMs)" },
      { name: "ack", schema: nonNegative, description: "first drop entries up to this cursor, as POST /inbox/ack does" },
    ],
    responses: { 200: inboxPage },
  },
  {
    method: "post",
    path: "/inbox/ack",
    operationId: "ackInbox",
    summary: "Drop inbox entries up to a cursor",
    body: ackBody,
    responses: { 204: null },
  },
  {
    method: "get",
    path: "/inbox/stream",
    operationId: "inboxStream",
    summary: "The inbox as Server-Sent Events (id = cursor, event = kind, data = an InboxEntry); Last-Event-ID resumes",
    query: [after("cursor to start after (Last-Event-ID wins)")],
    responses: { 200: "event-stream" },
  },
];
