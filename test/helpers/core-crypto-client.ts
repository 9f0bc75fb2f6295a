/**
 * A core-crypto (openmls) client driving an mls-fedgate DS through the same client API as
 * MlsClient: KeyPackages, claims, groups, commits through core-crypto's MlsTransport, inbox
 * processing, catch-up after stale_epoch, external joins. Test code (core-crypto is GPL-3.0).
 * Environment-neutral: it gets the initialised core-crypto module as a parameter and uses only
 * `fetch` (through FedgateApi), so a browser context can share it; the Node loader is core-crypto.ts.
 */
import type * as CC from "@wireapp/core-crypto/browser";
import { FedgateApi, FedgateError, type ClaimAnswer, type InboxEntry } from "../../src/client/api.js";
import { fromB64u, toB64u } from "../../src/client/b64.js";
import { InboxReader, type MlsEvent } from "../../src/client/inbox-reader.js";
import { unwrapGroupInfo, unwrapKeyPackage, wrapGroupInfo, wrapKeyPackage, wrapWelcome } from "../../src/client/wire-format.js";
import { IDENTITY_SCHEMES, clientOfIdentity, identityFor } from "../../src/mls/identity.js";

export type CoreCryptoModule = typeof CC;

export interface CoreCryptoClientOptions {
  token?: string;
  /** Suite id (core-crypto: 1, 2, 3, 5, 7); default 1. */
  cipherSuite?: number;
}

const MAX_COMMIT_ATTEMPTS = 8;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** What the next commit bundle states to the DS (core-crypto's transport knows only MLS bytes). */
interface CommitMeta {
  groupId: string;
  added?: string[];
  removed?: string[];
  leaseToken?: string;
  answer?: { seq: number; epoch: number };
  rejected?: FedgateError;
}

/** core-crypto errors nest (`CoreCryptoError.Mls` → `.inner` → `MlsError.X{…}`): the whole chain as text. */
export function ccErrorText(e: unknown): string {
  const parts: string[] = [];
  const walk = (v: unknown, depth: number): void => {
    if (depth > 6 || v === null || v === undefined) return;
    if (typeof v === "string") {
      if (v && !parts.includes(v)) parts.push(v);
      return;
    }
    if (typeof v !== "object") return;
    const o = v as Record<string, unknown>;
    walk(o.tag, depth + 1);
    walk(o.message, depth + 1);
    for (const val of Object.values(o)) walk(val, depth + 1);
  };
  walk(e, 0);
  return parts.join(" / ") || String(e);
}

export class CoreCryptoClient {
  private lastSeq = new Map<string, number>();
  private pending?: CommitMeta;
  readonly implementation = "core-crypto";
  /** DS refusals this client's transport passed to core-crypto (`code: message`), oldest first. */
  readonly rejections: string[] = [];
  private readonly inbox: InboxReader;

  private constructor(
    readonly cc: CoreCryptoModule,
    readonly api: FedgateApi,
    readonly core: CC.CoreCrypto,
    readonly clientId: CC.ClientId,
    private readonly credential: CC.CredentialRef,
    readonly cipherSuite: number,
  ) {
    this.inbox = new InboxReader(api, (entry) => this.handle(entry));
  }

  get id(): string {
    return this.api.client;
  }

  get user(): string {
    return this.id.slice(0, this.id.indexOf("/"));
  }

  static async connect(
    cc: CoreCryptoModule,
    baseUrl: string,
    client: string,
    opts: CoreCryptoClientOptions = {},
  ): Promise<CoreCryptoClient> {
    // core-crypto's identity is always Wire's qualified client id: the DS must accept the `wire` scheme.
    const clientId = wireClientId(cc, client);
    const api = new FedgateApi(baseUrl, client, opts.token);
    if (!opts.token) await api.login();
    const suite = opts.cipherSuite ?? 1;
    const core = cc.CoreCrypto.new(await cc.Database.inMemory());
    // The transport is given to core-crypto before the client object exists.
    const holder: { client?: CoreCryptoClient } = {};
    const transport: CC.MlsTransport = {
      sendCommitBundle: (bundle) => holder.client!.sendCommitBundle(bundle),
      prepareForTransport: async () => {
        throw new Error("history sharing is not used");
      },
    };
    const credential = await core.transaction(async (ctx) => {
      await ctx.mlsInit(clientId, transport);
      return ctx.addCredential(cc.Credential.basic(cc.cipherSuiteFromU16(suite), clientId));
    });
    holder.client = new CoreCryptoClient(cc, api, core, clientId, credential, suite);
    return holder.client;
  }

  private conv(groupId: string): CC.ConversationId {
    return new this.cc.ConversationId(fromB64u(groupId));
  }

  /** core-crypto's MlsTransport: the commit bundle goes to the DS; a refusal aborts the operation (state unchanged). */
  private async sendCommitBundle(bundle: CC.CommitBundle): Promise<void> {
    const meta = this.pending;
    if (!meta) throw new Error("core-crypto committed outside an operation of this client");
    try {
      meta.answer = await this.api.commit(meta.groupId, {
        commit: toB64u(bundle.commit),
        ...(bundle.welcome ? { welcome: toB64u(asMlsMessage(3, bundle.welcome.serialize())) } : {}),
        groupInfo: toB64u(asMlsMessage(4, bundle.groupInfo.payload)),
        ...(meta.added?.length ? { added: meta.added } : {}),
        ...(meta.removed?.length ? { removed: meta.removed } : {}),
        ...(meta.leaseToken ? { leaseToken: meta.leaseToken } : {}),
      });
    } catch (e) {
      if (!(e instanceof FedgateError)) throw e;
      meta.rejected = e;
      this.rejections.push(`${e.code}: ${e.message}`);
      throw new this.cc.MlsTransportError.MessageRejected({ reason: `${e.code}: ${e.message}` });
    }
  }

  /** Runs a committing operation; on `stale_epoch` catches up from the DS and runs it again. */
  private async commit(
    groupId: string,
    meta: Omit<CommitMeta, "groupId" | "answer" | "rejected">,
    op: (ctx: CC.CoreCryptoContext) => Promise<unknown>,
  ): Promise<{ seq: number; epoch: number; attempts: number }> {
    for (let attempt = 1; ; attempt++) {
      const pending: CommitMeta = { groupId, ...meta };
      this.pending = pending;
      try {
        await this.core.transaction(op);
      } catch (e) {
        const rejected = pending.rejected;
        if (!rejected) throw new Error(`core-crypto: ${ccErrorText(e)}`, { cause: e });
        if (rejected.code !== "stale_epoch" || attempt >= MAX_COMMIT_ATTEMPTS) throw rejected;
        await this.catchUp(groupId);
        continue;
      } finally {
        this.pending = undefined;
      }
      if (!pending.answer) throw new Error("core-crypto finished a commit without sending it");
      this.lastSeq.set(groupId, Math.max(this.lastSeq.get(groupId) ?? 0, pending.answer.seq));
      return { ...pending.answer, attempts: attempt };
    }
  }

  /**
   * Uploads `count` KeyPackages and, if asked, one more in the `lastResort` slot: core-crypto
   * cannot add the last_resort extension, so the DS must accept it by slot (keyPackages.lastResortBySlot).
   */
  async publishKeyPackages(count: number, opts: { lastResort?: boolean; lifetimeSeconds?: number } = {}) {
    const lifetimeMs = opts.lifetimeSeconds === undefined ? undefined : opts.lifetimeSeconds * 1000;
    const packages = await this.core.transaction(async (ctx) => {
      const out: string[] = [];
      for (let i = 0; i < count + (opts.lastResort ? 1 : 0); i++) {
        const kp = await ctx.generateKeyPackage(this.credential, lifetimeMs);
        out.push(toB64u(wrapKeyPackage(kp.serialize())));
      }
      return out;
    });
    const lastResort = opts.lastResort ? packages.pop() : undefined;
    return this.api.uploadKeyPackages(packages, lastResort);
  }

  async createGroup(opts: { groupId?: string; mode?: "ordered" | "send-group" } = {}): Promise<string> {
    const groupId = opts.groupId ?? toB64u(crypto.getRandomValues(new Uint8Array(16)));
    await this.core.transaction((ctx) => ctx.createConversation(this.conv(groupId), this.credential));
    await this.api.createGroup({ groupId, cipherSuite: this.cipherSuite, mode: opts.mode ?? "ordered" });
    this.lastSeq.set(groupId, 0);
    return groupId;
  }

  claimUsers(users: string[]): Promise<ClaimAnswer[]> {
    return Promise.all(users.map((u) => this.api.claim(u, [this.cipherSuite])));
  }

  async addUsers(groupId: string, users: string[], opts: { leaseToken?: string } = {}) {
    const claims = await this.claimUsers(users);
    const bundles = claims.flatMap((c) => c.bundles);
    await this.addKeyPackages(groupId, bundles, opts);
    return { added: bundles.map((b) => b.client), missing: claims.flatMap((c) => c.missing) };
  }

  addKeyPackages(groupId: string, bundles: ClaimAnswer["bundles"], opts: { leaseToken?: string } = {}) {
    return this.commit(groupId, { added: bundles.map((b) => b.client), ...opts }, (ctx) =>
      ctx.addClientsToConversation(
        this.conv(groupId),
        bundles.map((b) => new this.cc.KeyPackage(unwrapKeyPackage(fromB64u(b.keyPackage)))),
      ),
    );
  }

  removeClients(groupId: string, clients: string[], opts: { leaseToken?: string } = {}) {
    const ids = clients.map((c) => wireClientId(this.cc, c));
    return this.commit(groupId, { removed: clients, ...opts }, (ctx) =>
      ctx.removeClientsFromConversation(this.conv(groupId), ids),
    );
  }

  update(groupId: string, opts: { leaseToken?: string } = {}) {
    return this.commit(groupId, opts, (ctx) => ctx.updateKeyingMaterial(this.conv(groupId)));
  }

  /** External join from the DS's stored GroupInfo (whoever wrote it). */
  async joinExternal(groupId: string): Promise<{ seq: number; epoch: number }> {
    const { groupInfo } = await this.api.groupInfo(groupId);
    const info = new this.cc.GroupInfo(unwrapGroupInfo(fromB64u(groupInfo)));
    const answer = await this.commit(groupId, {}, (ctx) => ctx.joinByExternalCommit(info, this.credential));
    return { seq: answer.seq, epoch: answer.epoch };
  }

  async send(groupId: string, text: string): Promise<{ seq: number }> {
    const message = await this.core.transaction((ctx) => ctx.encryptMessage(this.conv(groupId), utf8.encode(text)));
    return this.api.send(groupId, toB64u(message));
  }

  async epoch(groupId: string): Promise<number> {
    return Number(await this.core.transaction((ctx) => ctx.conversationEpoch(this.conv(groupId))));
  }

  /** Client ids of the group's members as core-crypto sees them (mapped back from Wire ids). */
  async members(groupId: string): Promise<string[]> {
    const ids = await this.core.transaction((ctx) => ctx.getClientIds(this.conv(groupId)));
    return ids.map((id) => clientOfIdentity(id.copyBytes(), IDENTITY_SCHEMES)?.client ?? "?").sort();
  }

  groupIds(): string[] {
    return [...this.lastSeq.keys()];
  }

  sync(opts: { waitMs?: number } = {}): Promise<MlsEvent[]> {
    return this.inbox.sync(opts);
  }

  syncUntil(want: (events: MlsEvent[]) => boolean, timeoutMs = 10_000): Promise<MlsEvent[]> {
    return this.inbox.syncUntil(want, timeoutMs);
  }

  /** Processes the group's log entries this client has not seen (after `stale_epoch`). */
  catchUp(groupId: string): Promise<MlsEvent[]> {
    return this.inbox.catchUp(groupId, this.lastSeq.get(groupId) ?? 0);
  }

  private async handle(entry: InboxEntry): Promise<MlsEvent[]> {
    const { groupId, seq, message } = entry;
    if (entry.kind === "device_update") {
      return [
        {
          kind: "device_update",
          user: String(entry.user),
          version: Number(entry.version),
          devices: entry.devices as { client: string }[],
        },
      ];
    }
    if (!groupId || seq === undefined || !message) return [];
    const sender = entry.sender ?? "";
    try {
      if (entry.kind === "welcome") {
        if (this.lastSeq.has(groupId)) return [];
        await this.core.transaction((ctx) => ctx.processWelcomeMessage(new this.cc.Welcome(fromB64u(message))));
        this.lastSeq.set(groupId, seq);
        return [{ kind: "joined", groupId, sender }];
      }
      const last = this.lastSeq.get(groupId);
      if (last === undefined || seq <= last || sender === this.id) return [];
      const result = await this.core.transaction((ctx) => ctx.decryptMessage(this.conv(groupId), fromB64u(message)));
      this.lastSeq.set(groupId, seq);
      if (result.tag === "Text") {
        return [{ kind: "message", groupId, sender, text: fromUtf8.decode(result.inner.plaintext), seq }];
      }
      if (result.tag === "Proposal") return [{ kind: "proposal", groupId, sender, seq }];
      if (!result.inner.isActive) {
        this.lastSeq.delete(groupId);
        return [{ kind: "removed", groupId, sender }];
      }
      return [{ kind: "commit", groupId, sender, epoch: await this.epoch(groupId), seq }];
    } catch (e) {
      return [{ kind: "error", groupId, seq, error: ccErrorText(e) }];
    }
  }
}

/** core-crypto's ClientId for client id `<uuid>@<domain>/<hex>` (Wire identity `<uuid>:<hex>@<domain>`). */
function wireClientId(cc: CoreCryptoModule, client: string): CC.ClientId {
  const wireId = identityFor(client, "wire");
  if (!wireId) throw new Error(`${client} is not <uuid>@<domain>/<hex>: core-crypto cannot name it`);
  const m = /^([^:]+):([0-9a-f]+)@(.+)$/.exec(wireId)!;
  const id = new cc.ClientId(new cc.Uuid(m[1]!), new cc.DeviceId(BigInt(`0x${m[2]}`)), m[3]!);
  if (fromUtf8.decode(id.copyBytes()) !== wireId) throw new Error(`core-crypto spells ${client} differently`);
  return id;
}

/**
 * core-crypto 10.3 hands out a commit bundle's Welcome and GroupInfo as MLSMessages already
 * (`00 01 00 03` / `00 01 00 04`; a bare one would start with its suite or version): wrap only a bare one.
 */
function asMlsMessage(wireFormat: 3 | 4, bytes: Uint8Array): Uint8Array {
  if (bytes[0] === 0 && bytes[1] === 1 && bytes[2] === 0 && bytes[3] === wireFormat) return bytes;
  return wireFormat === 3 ? wrapWelcome(bytes) : wrapGroupInfo(bytes);
}
