/** Why an SFrame operation was refused; `code` is stable, the message is for humans. */
export type SframeErrorCode =
  | "unknown_suite" // not one of RFC 9605's suites 0x0001–0x0005
  | "bad_input" // a KID/CTR outside 0..2^64-1, a base key too short, a malformed option
  | "bad_header" // truncated header, non-minimal KID/CTR encoding
  | "auth_failed" // tag mismatch: wrong key, tampered frame or metadata
  | "unknown_key" // no key for this KID (unknown or erased epoch, not a member)
  | "replayed" // CTR already accepted for this KID, or older than the replay window
  | "counter_exhausted" // the sender's CTR for a key would wrap
  | "no_sender_key"; // this member cannot send (not in the group, or removed)

export class SframeError extends Error {
  constructor(
    readonly code: SframeErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
    this.name = "SframeError";
  }
}

export const U64_MAX = (1n << 64n) - 1n;

export function checkU64(name: string, value: bigint): void {
  if (typeof value !== "bigint" || value < 0n || value > U64_MAX) {
    throw new SframeError("bad_input", `${name} must be a bigint in 0..2^64-1`);
  }
}
