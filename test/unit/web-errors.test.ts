import { FedgateError } from "../../src/client/index.js";
import { describeError } from "../../web/errors.js";

describe("the messenger's error sentences", () => {
  it.each([
    ["peer_unreachable", 502, "bob@b.example", "The provider b.example cannot be reached right now. Try again later."],
    [
      "no_key_package",
      404,
      "bob@b.example",
      "bob@b.example has no device that can be added right now (no KeyPackage left). Ask them to sign in.",
    ],
    ["not_a_member", 403, "", "You are not a member of this group (any more)."],
    ["peer_unknown", 404, "zed@c.example", "Your provider does not federate with c.example."],
    ["unknown_user", 404, "nobody@b.example", "There is no user nobody@b.example."],
    ["unauthenticated", 401, "", "Your session has expired. Sign in again."],
  ])("says %s (%i) in words", (code, status, subject, sentence) => {
    expect(describeError(new FedgateError(status, code, "detail from the DS"), subject)).toBe(sentence);
  });

  it("falls back to the DS's message for codes without a sentence, and names a network failure", () => {
    expect(describeError(new FedgateError(423, "group_locked", "the group is leased"))).toBe(
      "The server refused: the group is leased",
    );
    expect(describeError(new TypeError("Failed to fetch"))).toBe(
      "Your provider cannot be reached. Check the connection and try again.",
    );
  });
});
