import type { Router } from "express";
import { clientRoutes } from "../../src/http/client-routes.js";
import { clientOpenApi } from "../../src/wire/openapi.js";
import { deviceList, devTokenAnswer, inboxPage, keyPackageList } from "../../src/wire/index.js";
import { startProvider, type Provider } from "../helpers/providers.js";

/** `METHOD /v1/path/{param}` for every route the express router of /v1 serves. */
function routerOperations(router: Router): string[] {
  const ops: string[] = [];
  for (const layer of router.stack) {
    const route = layer.route as { path: unknown; methods?: Record<string, boolean> } | undefined;
    if (!route) continue;
    if (typeof route.path !== "string") throw new Error(`route with a non-string path: ${String(route.path)}`);
    const path = "/v1" + route.path.replace(/:(\w+)/g, "{$1}");
    for (const [method, on] of Object.entries(route.methods ?? {})) if (on) ops.push(`${method.toUpperCase()} ${path}`);
  }
  return ops.sort();
}

function documentOperations(doc: Record<string, unknown>): string[] {
  const paths = doc.paths as Record<string, Record<string, unknown>>;
  return Object.entries(paths)
    .flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`))
    .sort();
}

describe("the client API's OpenAPI document", () => {
  let a: Provider;
  beforeAll(async () => {
    a = await startProvider("a.example");
  });
  afterAll(async () => {
    await a.ds.close();
  });

  it("describes exactly the routes the /v1 router serves, each with its schemas", () => {
    const served = routerOperations(clientRoutes(a.ds.ctx));
    expect(served.length).toBeGreaterThan(15);
    expect(documentOperations(clientOpenApi())).toEqual(served);
  });

  it("is OpenAPI 3.1 whose every $ref resolves and whose bodies are strict", () => {
    const doc = clientOpenApi();
    expect(doc.openapi).toBe("3.1.0");
    const schemas = (doc.components as { schemas: Record<string, Record<string, unknown>> }).schemas;
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThan(20);
    for (const r of refs) expect(Object.keys(schemas)).toContain(r);
    expect(schemas.CommitBundle!.additionalProperties).toBe(false);
    expect(schemas.GroupView!.additionalProperties).toBeUndefined();
    const create = (doc.paths as Record<string, Record<string, { requestBody?: unknown; security?: unknown[] }>>)["/v1/groups"]!
      .post!;
    expect(create.requestBody).toEqual({
      required: true,
      content: { "application/json": { schema: { $ref: "#/components/schemas/CreateGroupBody" } } },
    });
  });

  it("is served at GET /openapi.json", async () => {
    const res = await fetch(`${a.url}/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/application\/json/);
    expect(await res.json()).toEqual(clientOpenApi());
  });

  it("matches what the DS answers", async () => {
    const { token } = devTokenAnswer.parse(
      await (
        await fetch(`${a.url}/v1/dev/token`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ client: "alice@a.example/phone" }),
        })
      ).json(),
    );
    const get = async (path: string) => {
      const res = await fetch(`${a.url}/v1${path}`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      return res.json();
    };
    expect(
      deviceList
        .strict()
        .parse(await get("/users/alice@a.example/devices"))
        .devices.map((d) => d.client),
    ).toEqual(["alice@a.example/phone"]);
    expect(keyPackageList.strict().parse(await get("/key-packages"))).toEqual({ keyPackages: [] });
    expect(inboxPage.strict().parse(await get("/inbox"))).toEqual({ messages: [], next: 0 });
  });
});
