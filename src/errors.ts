/** The one error model of the DS: a stable machine-readable code, a human message and details. */
export const errorStatus = {
  bad_request: 400,
  invalid_mls: 400,
  invalid_key_package: 400,
  invalid_group_info: 400,
  invalid_welcome: 400,
  roster_mismatch: 400,
  credential_mismatch: 400,
  unsupported_cipher_suite: 400,
  key_package_limit: 409,
  no_common_cipher_suite: 409,
  no_key_package: 404,
  unknown_user: 404,
  unknown_group: 404,
  unknown_key_package: 404,
  group_exists: 409,
  not_a_member: 403,
  stale_epoch: 409,
  group_locked: 423,
  not_designated_sender: 403,
  payload_too_large: 413,
  request_timeout: 408,
  rate_limited: 429,
  stream_limit: 429,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  peer_unreachable: 502,
  peer_unknown: 404,
  peer_error: 502,
  replayed_request: 401,
  unavailable: 503,
  store_reset: 503,
  internal: 500,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof errorStatus;

export class DsError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "DsError";
    this.status = errorStatus[code];
  }

  toBody(): { error: Record<string, unknown> } {
    return { error: { code: this.code, message: this.message, ...this.details } };
  }
}

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === "string" && Object.hasOwn(errorStatus, code);
}
