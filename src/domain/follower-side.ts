import { DsError } from "../errors.js";
import type { GroupRecord, Store } from "../store/port.js";
import { actorIn, requireMember, viewOf, type Accepted, type DecodedBundle, type GroupSide } from "./group-side.js";
import type { ReplicaSync } from "./replica.js";
import type { CommitBundle, GroupView, PeerGateway } from "./types.js";

/**
 * The side of a group another provider orders: every request goes to the group's hub — the one
 * recorded at first sight, never one a peer names later — and every answer is checked before it
 * reaches a client (the gateway checks shapes; this side checks the answer is about this group).
 */
export class FollowerSide implements GroupSide {
  constructor(
    private readonly store: Store,
    private readonly peers: PeerGateway,
    private readonly replica: ReplicaSync,
  ) {}

  async view(actor: string, g: GroupRecord, requestId?: string): Promise<GroupView> {
    let view: GroupView;
    try {
      view = await this.peers.group(g.hub, g.groupId, actor, requestId);
    } catch (e) {
      // The hub is down: answer from the replica, which every delivery refreshes.
      if (!(e instanceof DsError) || e.code !== "peer_unreachable") throw e;
      requireMember(g, actor);
      return viewOf(g);
    }
    if (view.groupId !== g.groupId || view.hub !== g.hub)
      throw new DsError("peer_error", `${g.hub} answered with a view of another group or hub`, { peer: g.hub });
    return view;
  }

  async submitCommit(
    actor: string,
    g: GroupRecord,
    bundle: CommitBundle,
    _decoded: DecodedBundle,
    requestId?: string,
  ): Promise<Accepted> {
    return this.peers.submit(g.hub, g.groupId, actor, { kind: "commit", bundle }, requestId);
  }

  async submitMessage(actor: string, g: GroupRecord, text: string, requestId?: string): Promise<{ seq: number }> {
    const answer = await this.peers.submit(g.hub, g.groupId, actor, { kind: "message", message: text }, requestId);
    return { seq: answer.seq };
  }

  acquireLease(actor: string, g: GroupRecord, ttlMs: number, requestId?: string) {
    return this.peers.lease(g.hub, g.groupId, actor, ttlMs, requestId);
  }

  releaseLease(actor: string, g: GroupRecord, token: string, requestId?: string): Promise<void> {
    return this.peers.releaseLease(g.hub, g.groupId, actor, token, requestId);
  }

  async forLogRead(actor: string, g: GroupRecord, requestId?: string): Promise<GroupRecord> {
    // Only a member (by the replica's view) makes this DS call the hub.
    requireMember(g, actor);
    // Pull what the hub has beyond our replica first, so catch-up after stale_epoch sees the winner.
    await this.replica.syncReplica(g.hub, g.groupId, requestId);
    return (await this.store.getGroup(g.groupId)) ?? g;
  }

  groupInfo(client: string, g: GroupRecord, requestId?: string): Promise<{ epoch: number; groupInfo: string }> {
    return this.peers.groupInfo(g.hub, g.groupId, actorIn(g, client), requestId);
  }
}
