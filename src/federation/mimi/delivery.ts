import type { DeliveredMessage } from "../../domain/fanout.js";
import { DsError } from "../../errors.js";
import { decodeMlsStrict } from "../../mls/codec.js";
import { mlsParts, treeOfGroupInfo } from "../../mls/mimi-parts.js";
import { storedTree } from "../../mls/group-info.js";
import type { Clock } from "../../domain/types.js";
import type { Store } from "../../store/port.js";
import type { MimiClient } from "./client.js";
import { encodeNotifyBody, mlsOf, type FanoutMessage, type RatchetTreeOption } from "./codec.js";
import { fromB64, unwrapMls } from "./envelope.js";
import { roomUri } from "./ids.js";

/** The outbox's way to a MIMI peer: the batch, per room, as concatenated FanoutMessages to `notify`. */
export class MimiDelivery {
  constructor(
    private readonly domain: string,
    private readonly client: MimiClient,
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  handles(peer: string): boolean {
    return this.client.speaksMimi(peer);
  }

  async deliver(peer: string, messages: DeliveredMessage[]): Promise<void> {
    const byRoom = new Map<string, DeliveredMessage[]>();
    for (const m of messages) byRoom.set(m.groupId, [...(byRoom.get(m.groupId) ?? []), m]);
    for (const [groupId, list] of byRoom) {
      const fanout: FanoutMessage[] = [];
      for (const m of list) fanout.push(await this.fanoutOf(m));
      const res = await this.client.post(peer, "notify", roomUri(this.domain, groupId), encodeNotifyBody(fanout));
      if (res.status !== 201) throw new DsError("peer_error", `${peer} answered notify with ${res.status}, not 201`, { peer });
    }
  }

  private async fanoutOf(m: DeliveredMessage): Promise<FanoutMessage> {
    const bytes = fromB64(m.message);
    const message = { value: decodeMlsStrict(bytes, Number.MAX_SAFE_INTEGER), bytes };
    const timestamp = BigInt(this.clock.nowMs());
    switch (m.kind) {
      case "application":
        return { timestamp, message, kind: "application" };
      case "proposal":
        return { timestamp, message, kind: "proposal", moreProposals: [] };
      case "commit":
        return { timestamp, message, kind: "commit", externalProposals: [] };
      case "welcome":
        return { timestamp, message, kind: "welcome", ratchetTreeOption: await this.treeFor(m.groupId, m.epoch) };
    }
  }

  /** The tree of the Welcome's epoch from the stored GroupInfo (or the tree stored beside it) when it is that epoch's; else it travels out of band (in the Welcome). */
  private async treeFor(groupId: string, epoch: number): Promise<RatchetTreeOption> {
    const stored = await this.store.getGroupInfo(groupId);
    if (stored && stored.epoch === epoch) {
      const [gi] = mlsParts.groupInfo.decode(unwrapMls("group_info", fromB64(stored.groupInfo)), 0) ?? [];
      const tree = gi && (treeOfGroupInfo(gi) ?? storedTree(stored));
      if (tree) return { representation: "full", ratchetTree: mlsOf("ratchetTree", tree) };
    }
    return { representation: "outOfBand", treeSignature: new Uint8Array() };
  }
}
