import { FedgateError } from "../src/client/index.js";

const domainOf = (user: string) => user.slice(user.indexOf("@") + 1).replace(/\/.*$/, "");

/** What went wrong, in words a person can act on; `subject` is the user or group the action was about. */
export function describeError(e: unknown, subject = ""): string {
  if (!(e instanceof FedgateError)) {
    if (e instanceof TypeError) return "Your provider cannot be reached. Check the connection and try again.";
    return `Something went wrong: ${(e as Error).message}`;
  }
  const said = e.message.slice(e.code.length + 2); // FedgateError messages read "<code>: <message>"
  switch (e.code) {
    case "peer_unreachable":
      return `The provider ${subject ? domainOf(subject) : "of that user"} cannot be reached right now. Try again later.`;
    case "peer_unknown":
      return `Your provider does not federate with ${subject ? domainOf(subject) : "that provider"}.`;
    case "no_key_package":
      return `${subject || "That user"} has no device that can be added right now (no KeyPackage left). Ask them to sign in.`;
    case "unknown_user":
      return `There is no user ${subject || "by that name"}.`;
    case "not_a_member":
      return "You are not a member of this group (any more).";
    case "no_common_cipher_suite":
      return `${subject || "That user"}'s devices support no cipher suite in common with yours.`;
    case "rate_limited":
      return "Too many requests: wait a moment and try again.";
    case "unauthenticated":
      return "Your session has expired. Sign in again.";
    case "forbidden":
      return `Not allowed: ${said}`;
    case "bad_request":
      return `That was not accepted: ${said}`;
    default:
      return `The server refused: ${said}`;
  }
}
