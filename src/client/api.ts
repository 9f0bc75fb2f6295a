/**
 * Typed client for the mls-fedgate client API (browser and Node: only `fetch`).
 * Every error answer becomes a FedgateError carrying the DS's code and details. Answer types are
 * inferred from the wire schemas the DS itself parses with (src/wire, type-only: no zod in the bundle).
 */
import type {
  ClaimAnswer,
  CommitAnswer,
  CommitBundle,
  CommitLogAnswer,
  CreateGroupBody,
  DevTokenAnswer,
  DeviceListWire,
  GroupInfoAnswer,
  GroupView,
  InboxEntry,
  InboxPage,
  KeyPackageList,
  LeaseAnswer,
  LogMessage,
  MessageAnswer,
  MessagesPage,
  PeerInfo,
  TreeAnswer,
  UploadAnswer,
} from "../wire/index.js";

import { createParser, type EventSourceMessage } from "eventsource-parser";

export class FedgateError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(`${code}: ${message}`);
    this.name = "FedgateError";
  }
}

export type { ClaimAnswer, CommitBundle, GroupView, InboxEntry, LogMessage };

export class FedgateApi {
  private token?: string;

  constructor(
    readonly baseUrl: string,
    readonly client: string,
    token?: string,
  ) {
    this.token = token;
  }

  /** Dev mode only: fetch a token for this client from the DS itself. */
  async login(): Promise<this> {
    if (!this.token) {
      const { token } = await this.request<DevTokenAnswer>("POST", "/v1/dev/token", { client: this.client }, false);
      this.token = token;
    }
    return this;
  }

  /** The bearer token in use (to persist it); undefined before login. */
  get currentToken(): string | undefined {
    return this.token;
  }

  /** Replaces the token (a refreshed one from the identity provider, or undefined to sign out). */
  setToken(token: string | undefined): void {
    this.token = token;
  }

  private url(path: string): string {
    return this.baseUrl.replace(/\/$/, "") + path;
  }

  private headers(auth: boolean, extra: Record<string, string> = {}): Record<string, string> {
    const headers: Record<string, string> = { accept: "application/json", ...extra };
    if (auth) {
      if (!this.token) throw new Error("not logged in: pass a token or call login() in dev mode");
      headers.authorization = `Bearer ${this.token}`;
    }
    return headers;
  }

  async request<T>(method: string, path: string, body?: unknown, auth = true): Promise<T> {
    const headers = this.headers(auth, body === undefined ? {} : { "content-type": "application/json" });
    const res = await fetch(this.url(path), {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (res.status === 204) return undefined as T;
    if (!res.ok) throw await errorOf(res);
    const text = await res.text();
    try {
      return (text ? JSON.parse(text) : undefined) as T;
    } catch {
      throw new FedgateError(res.status, "bad_response", `non-JSON answer (${res.status})`);
    }
  }

  /**
   * Opens `GET /v1/inbox/stream` with the bearer token in a header — what a browser's EventSource
   * cannot do — and yields the entries as they arrive. Ends when the server ends the stream; throws
   * FedgateError on an error answer; stops at once when `signal` aborts; `onOpen` hears the connection.
   */
  async *stream(after: number, signal?: AbortSignal, onOpen?: () => void): AsyncGenerator<InboxEntry> {
    const res = await fetch(this.url(`/v1/inbox/stream?after=${after}`), {
      headers: this.headers(true, { accept: "text/event-stream" }),
      ...(signal ? { signal } : {}),
    });
    if (!res.ok) throw await errorOf(res);
    if (!res.body) throw new FedgateError(res.status, "bad_response", "the stream has no body");
    onOpen?.();
    yield* readEvents(res.body, signal);
  }

  uploadKeyPackages(keyPackages: string[], lastResort?: string, virtual?: boolean) {
    return this.request<UploadAnswer>("POST", "/v1/key-packages", {
      keyPackages,
      ...(lastResort ? { lastResort } : {}),
      ...(virtual ? { virtual } : {}),
    });
  }
  listKeyPackages() {
    return this.request<KeyPackageList>("GET", "/v1/key-packages");
  }
  deleteKeyPackage(ref: string) {
    return this.request<void>("DELETE", `/v1/key-packages/${encodeURIComponent(ref)}`);
  }
  claim(user: string, cipherSuites: number[], versions: string[] = ["mls10"]) {
    return this.request<ClaimAnswer>("POST", "/v1/key-packages/claim", { user, cipherSuites, versions });
  }
  devices(user: string) {
    return this.request<DeviceListWire>("GET", `/v1/users/${encodeURIComponent(user)}/devices`);
  }
  removeDevice(client: string) {
    return this.request<void>("DELETE", `/v1/devices/${encodeURIComponent(client)}`);
  }
  peer(domain: string) {
    return this.request<PeerInfo>("GET", `/v1/peers/${encodeURIComponent(domain)}`);
  }
  createGroup(body: CreateGroupBody) {
    return this.request<GroupView>("POST", "/v1/groups", body);
  }
  group(groupId: string) {
    return this.request<GroupView>("GET", `/v1/groups/${groupId}`);
  }
  commit(groupId: string, bundle: CommitBundle) {
    return this.request<CommitAnswer>("POST", `/v1/groups/${groupId}/commits`, bundle);
  }
  send(groupId: string, message: string) {
    return this.request<MessageAnswer>("POST", `/v1/groups/${groupId}/messages`, { message });
  }
  messages(groupId: string, after = 0, limit?: number) {
    const q = `after=${after}${limit ? `&limit=${limit}` : ""}`;
    return this.request<MessagesPage>("GET", `/v1/groups/${groupId}/messages?${q}`);
  }
  lease(groupId: string, ttlMs: number) {
    return this.request<LeaseAnswer>("POST", `/v1/groups/${groupId}/lease`, { ttlMs });
  }
  releaseLease(groupId: string, token: string) {
    return this.request<void>("DELETE", `/v1/groups/${groupId}/lease/${encodeURIComponent(token)}`);
  }
  groupInfo(groupId: string) {
    return this.request<GroupInfoAnswer>("GET", `/v1/groups/${groupId}/group-info`);
  }
  tree(groupId: string, leaf?: number) {
    return this.request<TreeAnswer>("GET", `/v1/groups/${groupId}/tree${leaf === undefined ? "" : `?leaf=${leaf}`}`);
  }
  commitLog(groupId: string, afterEpoch?: number) {
    return this.request<CommitLogAnswer>(
      "GET",
      `/v1/groups/${groupId}/commit-log${afterEpoch === undefined ? "" : `?after=${afterEpoch}`}`,
    );
  }
  /** `ack`: drop entries up to this cursor first (what ack() does), in the same round trip. */
  inbox(after = 0, opts: { limit?: number; waitMs?: number; ack?: number } = {}) {
    const q = [
      `after=${after}`,
      opts.limit ? `limit=${opts.limit}` : "",
      opts.waitMs ? `waitMs=${opts.waitMs}` : "",
      opts.ack !== undefined ? `ack=${opts.ack}` : "",
    ]
      .filter(Boolean)
      .join("&");
    return this.request<InboxPage>("GET", `/v1/inbox?${q}`);
  }
  ack(upTo: number) {
    return this.request<void>("POST", "/v1/inbox/ack", { upTo });
  }
}

/** An error answer → FedgateError with the DS's code, message and details. */
async function errorOf(res: Response): Promise<FedgateError> {
  let json: unknown;
  try {
    json = JSON.parse(await res.text());
  } catch {
    return new FedgateError(res.status, "bad_response", `non-JSON answer (${res.status})`);
  }
  const err = (json as { error?: Record<string, unknown> } | undefined)?.error ?? {};
  const {
    code = "unknown",
    message = res.statusText,
    ...details
  } = err as Record<string, unknown> & {
    code?: string;
    message?: string;
  };
  return new FedgateError(res.status, String(code), String(message), details);
}

/** Server-Sent Events (eventsource-parser) → the JSON inbox entries they carry. */
async function* readEvents(body: ReadableStream<Uint8Array>, signal?: AbortSignal): AsyncGenerator<InboxEntry> {
  const pending: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (e) => pending.push(e) });
  const text = new TextDecoder();
  const reader = body.getReader();
  const cancel = () => void reader.cancel().catch(() => undefined);
  signal?.addEventListener("abort", cancel, { once: true });
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      parser.feed(text.decode(value, { stream: true }));
      while (pending.length > 0) yield JSON.parse(pending.shift()!.data) as InboxEntry;
    }
  } finally {
    signal?.removeEventListener("abort", cancel);
    cancel();
  }
}
