import { z } from "zod";
import * as clientApi from "./client-api.js";
import { clientOperations, type ClientOperation } from "./client-routes.js";
import * as shapes from "./shapes.js";

/** Version of the client API contract (the `/v1` in its paths); bump the minor on compatible additions. */
export const CLIENT_API_VERSION = "1.1.0";

/** Every schema the document names; bodies and answers of `clientOperations` must be among them. */
const components: Record<string, z.ZodType> = {
  DevTokenBody: clientApi.devTokenBody,
  DevTokenAnswer: clientApi.devTokenAnswer,
  UploadBody: clientApi.uploadBody,
  UploadAnswer: clientApi.uploadAnswer,
  KeyPackageMeta: clientApi.keyPackageMeta,
  KeyPackageList: clientApi.keyPackageList,
  ClaimBody: clientApi.claimBody,
  ClaimAnswer: shapes.claimAnswer,
  DeviceList: shapes.deviceList,
  PeerInfo: clientApi.peerInfo,
  CreateGroupBody: clientApi.createGroupBody,
  GroupView: shapes.groupView,
  CommitBundle: shapes.commitBundle,
  CommitAnswer: clientApi.commitAnswer,
  MessageBody: clientApi.messageBody,
  MessageAnswer: clientApi.messageAnswer,
  LogMessage: shapes.logMessage,
  MessagesPage: clientApi.messagesPage,
  LeaseBody: clientApi.leaseBody,
  LeaseAnswer: shapes.leaseAnswer,
  GroupInfoAnswer: shapes.groupInfoAnswer,
  TreeAnswer: clientApi.treeAnswer,
  CommitLogAnswer: shapes.commitLogAnswer,
  InboxEntry: clientApi.inboxEntry,
  InboxPage: clientApi.inboxPage,
  AckBody: clientApi.ackBody,
  Error: shapes.errorBody,
};

type JsonSchema = Record<string, unknown>;

function withoutMeta(schema: JsonSchema): JsonSchema {
  const { $schema: _s, $id: _i, ...rest } = schema;
  return rest;
}

/**
 * The OpenAPI 3.1 document of the client API, generated from the wire schemas (zod's JSON Schema
 * output, draft 2020-12, which OpenAPI 3.1 uses as is). Bodies are described as the DS reads them
 * (`io: "input"`): requests are strict (`additionalProperties: false`), answers leave room for
 * fields a later version adds.
 */
export function clientOpenApi(serverUrl?: string): JsonSchema {
  const registry = z.registry<{ id: string }>();
  const names = new Map<z.ZodType, string>();
  for (const [id, schema] of Object.entries(components)) {
    registry.add(schema, { id });
    names.set(schema, id);
  }
  const generated = z.toJSONSchema(registry, {
    target: "draft-2020-12",
    io: "input",
    uri: (id) => `#/components/schemas/${id}`,
  }).schemas;
  const schemas = Object.fromEntries(Object.entries(generated).map(([id, s]) => [id, withoutMeta(s as JsonSchema)]));
  const ref = (schema: z.ZodType, where: string) => {
    const id = names.get(schema);
    if (!id) throw new Error(`${where}: schema is not a named component (add it to components in src/wire/openapi.ts)`);
    return { $ref: `#/components/schemas/${id}` };
  };

  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of clientOperations) {
    const path = `/v1${op.path}`;
    (paths[path] ??= {})[op.method] = operation(op, ref);
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "mls-fedgate client API",
      version: CLIENT_API_VERSION,
      description: "Client API of the mls-fedgate MLS Delivery Service (docs/API.md). Generated from src/wire.",
      license: { name: "Apache-2.0", identifier: "Apache-2.0" },
    },
    ...(serverUrl ? { servers: [{ url: serverUrl }] } : {}),
    paths,
    components: {
      schemas,
      securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
    },
  };
}

function operation(op: ClientOperation, ref: (s: z.ZodType, where: string) => { $ref: string }) {
  const where = `${op.method.toUpperCase()} /v1${op.path}`;
  const pathParams = [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
    name: m[1]!,
    in: "path",
    required: true,
    schema: { type: "string", minLength: 1 },
  }));
  const queryParams = (op.query ?? []).map((q) => ({
    name: q.name,
    in: "query",
    required: false,
    description: q.description,
    schema: withoutMeta(z.toJSONSchema(q.schema, { target: "draft-2020-12", io: "input" }) as JsonSchema),
  }));
  const responses: Record<string, unknown> = {};
  for (const [status, answer] of Object.entries(op.responses)) {
    const description = answer === null ? "no content" : "success";
    if (answer === null) responses[status] = { description };
    else if (answer === "event-stream")
      responses[status] = { description: "Server-Sent Events", content: { "text/event-stream": { schema: { type: "string" } } } };
    else responses[status] = { description, content: { "application/json": { schema: ref(answer, where) } } };
  }
  responses.default = {
    description: "an error: status and code from the error table (docs/API.md)",
    content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
  };
  return {
    operationId: op.operationId,
    summary: op.summary,
    ...(op.auth === false ? { security: [] } : { security: [{ bearer: [] }] }),
    ...(pathParams.length + queryParams.length > 0 ? { parameters: [...pathParams, ...queryParams] } : {}),
    ...(op.body
      ? { requestBody: { required: true, content: { "application/json": { schema: ref(op.body, `${where} body`) } } } }
      : {}),
    responses,
  };
}
