import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import {
  clientId,
  commitBundle,
  deliverBody,
  discoveryDocument,
  fedSubmitBody,
  groupView,
  isClientId,
} from "../../src/wire/index.js";

const SRC = join(process.cwd(), "src");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

function importsOf(file: string): string[] {
  return [...readFileSync(file, "utf8").matchAll(/^\s*(?:import|export)[^;]*?from\s+"([^"]+)"/gm)].map((m) => m[1]!);
}

describe("wire shapes (src/wire)", () => {
  it("import nothing but zod and each other, so the browser SDK can use them", () => {
    const files = sources(join(SRC, "wire"));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      for (const spec of importsOf(file)) {
        const ok = spec === "zod" || (spec.startsWith("./") && !spec.includes(".."));
        if (!ok) throw new Error(`${relative(SRC, file)} imports ${spec}`);
      }
    }
  });

  it("are the only place the client id syntax is written down", () => {
    const offenders = sources(SRC)
      .filter((f) => !f.startsWith(join(SRC, "wire")))
      .filter((f) => readFileSync(f, "utf8").includes("[^\\s/@]+@"));
    expect(offenders.map((f) => relative(SRC, f))).toEqual([]);
  });

  it("accept client ids and refuse what is not one", () => {
    for (const ok of ["alice@a.example/phone", "bob@b.example/*", "c@x/1"]) expect(isClientId(ok)).toBe(true);
    for (const bad of ["alice@a.example", "alice@A.example/phone", "a b@x/1", "a@x/p/q", "@x/1"])
      expect(clientId.safeParse(bad).success).toBe(false);
    expect(clientId.safeParse(`a@x/${"d".repeat(600)}`).success).toBe(false);
  });

  it("keep requests strict and peer answers tolerant of added fields", () => {
    expect(commitBundle.safeParse({ commit: "AA", extra: 1 }).success).toBe(false);
    expect(fedSubmitBody.safeParse({ sender: "a@x/1", kind: "message", message: "AA", extra: 1 }).success).toBe(false);
    const view = { groupId: "g", hub: "x", epoch: 0, mode: "ordered", cipherSuite: 1, members: ["a@x/1"], owner: "a@x/1" };
    expect(groupView.parse({ ...view, extra: 1 })).toEqual(view);
    expect(deliverBody.safeParse({ groups: { g: view }, messages: [] }).success).toBe(true);
    expect(deliverBody.safeParse({ groups: { g: { ...view, extra: 1 } }, messages: [] }).success).toBe(false);
    const doc = {
      domain: "x",
      federationApi: "1",
      protocolVersions: ["mls10"],
      cipherSuites: [1],
      jwks: { keys: [] },
      limits: {},
    };
    expect(discoveryDocument.parse({ ...doc, future: true })).toEqual(doc);
  });
});
