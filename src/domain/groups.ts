import type { StoredGroupInfo } from "../mls/group-info.js";
import { DsError } from "../errors.js";
import { fromB64u } from "../encoding.js";
import { decodeMlsField } from "../mls/codec.js";
import { welcomeRefs } from "../mls/framing.js";
import { checkGroupInfo } from "../mls/group-info.js";
import { domainOf, type GroupRecord, type Store } from "../store/port.js";
import type { DeliveredMessage, Dispatcher } from "./fanout.js";
import { FollowerSide } from "./follower-side.js";
import {
  actorIn,
  decodeBundle,
  requireMember,
  viewOf,
  wireEntry,
  type CreateGroupRequest,
  type DecodedBundle,
  type GroupLimits,
  type GroupSide,
  type WireLogEntry,
} from "./group-side.js";
import { HubSide } from "./hub-side.js";
import type { ReplicaSync } from "./replica.js";
import type { Clock, CommitBundle, GroupView, PeerGateway } from "./types.js";
import { CLIENT_ID } from "../wire/ids.js";

export { actorIn, viewOf, wireEntry, type CreateGroupRequest, type GroupLimits, type WireLogEntry } from "./group-side.js";

/** Test-only hooks (equivocation tests); never set in production configs. */
export interface GroupHooks {
  /** Rewrites what the outbox sends to a peer: lets a test make the hub equivocate. */
  tamperDelivery?: (peer: string, messages: DeliveredMessage[]) => DeliveredMessage[];
}

/** Bound on Groups.orderedHere (cleared when full: it only saves a read). */
const ORDERED_HERE_MAX = 100_000;

/**
 * Groups for this DS's clients: the client-facing checks, then one call to the group's side —
 * HubSide when this DS orders the group (it decides), FollowerSide when another provider does
 * (it forwards and verifies). See group-side.ts for what each side trusts.
 */
export class Groups {
  /** The side that decides for groups this DS created; the federation routes use it for peers. */
  readonly hub: HubSide;
  private readonly follower: FollowerSide;
  /** Groups this DS orders, as seen in their records: their messages skip the record read. */
  private readonly orderedHere = new Set<string>();

  constructor(
    private readonly domain: string,
    private readonly store: Store,
    private readonly limits: GroupLimits,
    private readonly clock: Clock,
    peers: PeerGateway,
    dispatcher: Dispatcher,
    replica: ReplicaSync,
    private readonly isPeer: (domain: string) => boolean,
  ) {
    this.hub = new HubSide(domain, store, limits, clock, dispatcher, isPeer);
    this.follower = new FollowerSide(store, peers, replica);
  }

  /** One interface, chosen by the group's hub (recorded at first sight, see ReplicaSync). */
  private sideOf(g: GroupRecord): GroupSide {
    return g.hub === this.domain ? this.hub : this.follower;
  }

  private checkGroupId(groupId: string): void {
    const bytes = fromB64u(groupId);
    if (!bytes || bytes.byteLength === 0 || bytes.byteLength > 255) {
      throw new DsError("bad_request", "groupId must be 1..255 bytes, base64url without padding");
    }
  }

  async create(client: string, req: CreateGroupRequest): Promise<GroupView> {
    this.checkGroupId(req.groupId);
    if (!this.limits.allowedSuites.includes(req.cipherSuite)) {
      throw new DsError("unsupported_cipher_suite", `cipher suite ${req.cipherSuite} is not allowed here`, {
        allowed: this.limits.allowedSuites,
      });
    }
    let groupInfo: { epoch: number; groupInfo: string } | undefined;
    if (req.groupInfo) {
      const { message } = decodeMlsField(req.groupInfo, "groupInfo", this.limits.groupInfoBytes);
      const checked = await checkGroupInfo(message, { groupId: req.groupId, epoch: 0, cipherSuite: req.cipherSuite });
      if (checked.leaves.filter((l) => l !== null).join() !== client) {
        throw new DsError("invalid_group_info", "a new group's tree must hold only its creator");
      }
      groupInfo = { epoch: 0, groupInfo: req.groupInfo };
    }
    if (req.replyTo) {
      const parent = await this.store.getGroup(req.replyTo);
      if (!parent || !parent.members.includes(actorIn(parent, client)))
        throw new DsError("unknown_group", "replyTo names no group of yours");
    }
    const record: GroupRecord = {
      groupId: req.groupId,
      hub: this.domain,
      mode: req.mode,
      cipherSuite: req.cipherSuite,
      epoch: 0,
      nextSeq: 1,
      members: [client],
      owner: client,
      createdAt: this.clock.nowMs(),
      ...(req.replyTo ? { replyTo: req.replyTo } : {}),
    };
    if (!(await this.store.createGroup(record, groupInfo))) throw new DsError("group_exists", "a group with this id exists");
    return viewOf(record);
  }

  private async requireKnown(groupId: string): Promise<GroupRecord> {
    this.checkGroupId(groupId);
    const g = await this.store.getGroup(groupId);
    if (!g) throw new DsError("unknown_group", "no such group");
    return g;
  }

  /** The group as its hub knows it; members only. A follower falls back to its replica when the hub is down. */
  async get(client: string, groupId: string): Promise<GroupView> {
    const g = await this.requireKnown(groupId);
    return this.sideOf(g).view(actorIn(g, client), g);
  }

  async submitCommit(client: string, groupId: string, bundle: CommitBundle): Promise<{ seq: number; epoch: number }> {
    const g = await this.requireKnown(groupId);
    const decoded = decodeBundle(bundle, groupId, this.limits.messageBytes);
    await this.checkClientBundle(bundle, decoded);
    return this.sideOf(g).submitCommit(actorIn(g, client), g, bundle, decoded);
  }

  /** What this DS checks for its own client's commit, on either side. */
  private async checkClientBundle(bundle: CommitBundle, decoded: DecodedBundle): Promise<void> {
    for (const c of [...(bundle.added ?? []), ...(bundle.removed ?? [])]) {
      if (!CLIENT_ID.test(c)) throw new DsError("bad_request", `${JSON.stringify(c)} is not a client id (user@domain/device)`);
    }
    const unreachable = (bundle.added ?? []).map(domainOf).find((d) => d !== this.domain && !this.isPeer(d));
    if (unreachable)
      throw new DsError("peer_unknown", `${unreachable} is not a peer of ${this.domain}: its clients cannot be added`);
    if (decoded.welcome) {
      // Route the Welcome by what the DS can check: each KeyPackageRef must belong to an added client.
      const added = new Set(bundle.added ?? []);
      const welcomed = new Set<string>();
      for (const ref of welcomeRefs(decoded.welcome.message)) {
        const owner = await this.store.resolveRef(ref);
        if (!owner || !added.has(owner)) {
          throw new DsError("invalid_welcome", `the Welcome names KeyPackage ${ref}, which belongs to no added client`);
        }
        welcomed.add(owner);
      }
      // Every client stated as added must be able to join: the Welcome must be encrypted to it.
      const unwelcomed = [...added].filter((c) => !welcomed.has(c));
      if (unwelcomed.length > 0) throw new DsError("invalid_welcome", `the Welcome is not encrypted to ${unwelcomed.join(", ")}`);
    } else if ((bundle.added ?? []).length > 0 && decoded.framing.senderType !== "new_member_commit") {
      throw new DsError("invalid_welcome", "a commit that adds clients needs their Welcome");
    }
  }

  /**
   * A group ordered here takes its messages without a read of the group first (HubSide
   * submitMessageAsDevice): which side orders a group never changes once it exists (its hub is
   * fixed at first sight), and the store checks everything else in the accept.
   */
  async submitMessage(client: string, groupId: string, text: string): Promise<{ seq: number }> {
    this.checkGroupId(groupId);
    if (this.orderedHere.has(groupId)) {
      const accepted = await this.hub.submitMessageAsDevice(client, groupId, text);
      if (accepted) return accepted;
      this.orderedHere.delete(groupId);
    }
    const g = await this.requireKnown(groupId);
    if (this.sideOf(g) === this.hub) this.rememberOrderedHere(groupId);
    return this.sideOf(g).submitMessage(actorIn(g, client), g, text);
  }

  private rememberOrderedHere(groupId: string): void {
    if (this.orderedHere.size >= ORDERED_HERE_MAX) this.orderedHere.clear();
    this.orderedHere.add(groupId);
  }

  async acquireLease(client: string, groupId: string, ttlMs: number) {
    const g = await this.requireKnown(groupId);
    if (!Number.isInteger(ttlMs) || ttlMs <= 0 || ttlMs > this.limits.leaseMaxTtlMs) {
      throw new DsError("bad_request", `ttlMs must be an integer in 1..${this.limits.leaseMaxTtlMs}`);
    }
    return this.sideOf(g).acquireLease(actorIn(g, client), g, ttlMs);
  }

  async releaseLease(client: string, groupId: string, token: string): Promise<void> {
    const g = await this.requireKnown(groupId);
    return this.sideOf(g).releaseLease(actorIn(g, client), g, token);
  }

  /**
   * Catch-up: the log entries addressed to (or sent by) the client after `after`. `next` is the
   * last seq examined (continue from there); `more` says a full page was read.
   */
  async messages(
    client: string,
    groupId: string,
    after: number,
    limit: number,
  ): Promise<{ messages: WireLogEntry[]; next: number; more: boolean }> {
    const known = await this.requireKnown(groupId);
    const page = Math.min(Math.max(1, limit), this.limits.logPageSize);
    const g = await this.sideOf(known).forLogRead(client, known);
    const actor = actorIn(g, client);
    requireMember(g, actor);
    const entries = await this.store.readLog(groupId, after, page);
    return {
      messages: entries.filter((e) => e.recipients.includes(actor) || e.sender === actor).map(wireEntry),
      next: entries.at(-1)?.seq ?? after,
      more: entries.length === page,
    };
  }

  async groupInfo(client: string, groupId: string): Promise<StoredGroupInfo> {
    const g = await this.requireKnown(groupId);
    return this.sideOf(g).groupInfo(client, g);
  }

  async commitLog(client: string, groupId: string, afterEpoch: number) {
    const g = await this.requireKnown(groupId);
    requireMember(g, actorIn(g, client));
    return this.store.commitLog(groupId, afterEpoch);
  }
}
