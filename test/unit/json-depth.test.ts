import { jsonDeeperThan, parseJsonBody } from "../../src/http/body.js";
import { DsError } from "../../src/errors.js";

const bytes = (s: string) => Buffer.from(s, "utf8");

describe("the JSON depth scan", () => {
  it("counts arrays and objects, and stops at the limit", () => {
    expect(jsonDeeperThan(bytes("[[[]]]"), 3)).toBe(false);
    expect(jsonDeeperThan(bytes("[[[[]]]]"), 3)).toBe(true);
    expect(jsonDeeperThan(bytes('{"a": {"b": [1, {"c": []}]}}'), 5)).toBe(false);
    expect(jsonDeeperThan(bytes('{"a": {"b": [1, {"c": [[]]}]}}'), 5)).toBe(true);
    // Siblings do not add up.
    expect(jsonDeeperThan(bytes("[[], [], [[]], []]"), 3)).toBe(false);
  });

  it("ignores brackets inside strings, escaped quotes and backslashes included", () => {
    expect(jsonDeeperThan(bytes(JSON.stringify(["[[[[[[[[", "{{{{"])), 1)).toBe(false);
    expect(jsonDeeperThan(bytes(JSON.stringify(['a"[[[[', "b\\", "[[[["])), 1)).toBe(false);
    expect(jsonDeeperThan(bytes(JSON.stringify(['\\"[[[[']) + "[[[]]]"), 2)).toBe(true);
  });

  it("scans a 1 MiB nesting bomb without parsing it, and parseJsonBody refuses it as json_too_deep", () => {
    const bomb = bytes("[".repeat(512 * 1024) + "]".repeat(512 * 1024));
    expect(jsonDeeperThan(bomb, 32)).toBe(true);
    let error: unknown;
    try {
      parseJsonBody(bomb, 32);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DsError);
    expect(error).toMatchObject({ code: "bad_request", details: { reason: "json_too_deep" } });
  });

  it("parses strict JSON (an object or array) and refuses the rest with bad_request", () => {
    expect(parseJsonBody(bytes(' {"a": [1, "x"]}'), 8)).toEqual({ a: [1, "x"] });
    for (const text of ["null", "1", '"s"', "{not json", "[1,"]) {
      expect(() => parseJsonBody(bytes(text), 8)).toThrow(DsError);
    }
  });
});
