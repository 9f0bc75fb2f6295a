import type { StoredGroupInfo } from "../mls/group-info.js";
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

  async view(actor: string, g: GroupRecord): Promise<GroupView> {
    let view: GroupView;
    try {
      view = await this.peers.group(g.hub, g.groupId, actor);
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

  async submitCommit(actor: string, g: GroupRecord, bundle: CommitBundle, _decoded: DecodedBundle): Promise<Accepted> {
    return this.peers.submit(g.hub, g.groupId, actor, { kind: "commit", bundle });
  }

  async submitMessage(actor: string, g: GroupRecord, text: string): Promise<{ seq: number }> {
    const answer = await this.peers.submit(g.hub, g.groupId, actor, { kind: "message", message: text });
    return { seq: answer.seq };
  }

  acquireLease(actor: string, g: GroupRecord, ttlMs: number) {
    return this.peers.lease(g.hub, g.groupId, actor, ttlMs);
  }

  releaseLease(actor: string, g: GroupRecord, token: string): Promise<void> {
    return this.peers.releaseLease(g.hub, g.groupId, actor, token);
  }

  async forLogRead(client: string, g: GroupRecord): Promise<GroupRecord> {
    // Only a member (by the replica's view) makes this DS call the hub.
    requireMember(g, actorIn(g, client));
    // Pull what the hub has beyond our replica first, so catch-up after stale_epoch sees the winner;
    // a reader the hub's answer leaves out is refused before that answer is stored.
    const admitted = await this.replica.syncReplica(g.hub, g.groupId, (members) =>
      members.includes(actorIn({ ...g, members }, client)),
    );
    if (!admitted) throw new DsError("not_a_member", "you are not a member of this group");
    return (await this.store.getGroup(g.groupId)) ?? g;
  }

  groupInfo(client: string, g: GroupRecord): Promise<StoredGroupInfo> {
    return this.peers.groupInfo(g.hub, g.groupId, actorIn(g, client));
  }
}
