import type { Logger } from "pino";
import type { AppContext } from "../../context.js";
import type { DeliveredMessage } from "../../domain/fanout.js";
import type { GroupView } from "../../domain/types.js";
import { DsError } from "../../errors.js";
import { sha256Hex } from "../../encoding.js";
import { readFraming, welcomeRefs } from "../../mls/framing.js";
import { storedLeaves, type StoredGroupInfo } from "../../mls/group-info.js";
import { suiteId } from "../../mls/suites.js";
import { domainOf, type GroupRecord } from "../../store/port.js";
import { decodeNotifyBody, type FanoutMessage, type MimiLimits } from "./codec.js";
import { b64u } from "./envelope.js";
import { sentKey } from "./gateway.js";
import { roomOfUri } from "./ids.js";

/** How long seen notify bodies and fanned-out messages are remembered (duplicate suppression). */
const SEEN_TTL_S = 7 * 24 * 3600;
/** Local members a follower asks as, at most, when refreshing a room's roster from the hub. */
const MAX_ASKERS = 5;

/**
 * The follower side of MIMI: `notify` from a hub. MIMI fan-out has no sequence numbers, so the
 * follower numbers what it receives (per room, in arrival order) and keeps the same replica log
 * and inboxes as for a fedgate hub. Byte-identical bodies are answered 201 and processed once;
 * each MLS message is also deduplicated by its hash (a retried body may carry a new timestamp).
 */
export class MimiFollower {
  private chains = new Map<string, Promise<unknown>>();

  constructor(
    private readonly ctx: AppContext,
    private readonly limits: MimiLimits,
    private readonly log: Logger,
  ) {}

  async notify(peer: string, room: string, body: Uint8Array): Promise<void> {
    const { hub, groupId } = roomOfUri(room);
    if (hub !== peer) throw new DsError("forbidden", `${peer} is not the hub of ${room}`);
    const bodyKey = `mimi-notify:${peer}:${sha256Hex(body)}`;
    if (await this.ctx.store.resolveRef(bodyKey)) return;
    const messages = decodeNotifyBody(body, this.limits);
    // Every message must belong to the room before any is stored: a refused body changes nothing.
    for (const m of messages) {
      if (m.kind !== "welcome" && readFraming(m.message.value).groupId !== groupId) {
        throw new DsError("bad_request", "a FanoutMessage belongs to another room");
      }
    }
    const local = await this.ctx.store.getGroup(groupId);
    if (local && local.hub !== peer) throw new DsError("forbidden", `${groupId} is ordered by ${local.hub}, not ${peer}`);
    await this.serial(groupId, async () => {
      for (const m of messages) await this.one(peer, groupId, m);
    });
    await this.ctx.store.rememberRefs([{ ref: bodyKey, client: "seen" }], SEEN_TTL_S);
  }

  private serial(groupId: string, work: () => Promise<void>): Promise<void> {
    const next = (this.chains.get(groupId) ?? Promise.resolve()).then(work, work);
    const tail = next.catch(() => undefined);
    this.chains.set(groupId, tail);
    void tail.then(() => {
      if (this.chains.get(groupId) === tail) this.chains.delete(groupId);
    });
    return next;
  }

  private async one(hub: string, groupId: string, m: FanoutMessage): Promise<void> {
    const { store, config } = this.ctx;
    const sha256 = sha256Hex(m.message.bytes);
    const seenKey = `mimi-fanout:${groupId}:${sha256}`;
    if (await store.resolveRef(seenKey)) return;
    const g = await store.getGroup(groupId);
    const sender = (await store.resolveRef(sentKey(sha256))) ?? `mimi@${hub}`;
    const members = new Set(g?.members ?? []);
    const view: GroupView = g
      ? viewOfReplica(g)
      : { groupId, hub, epoch: 0, mode: "ordered", cipherSuite: 0, members: [], owner: "" };
    let recipients: string[];
    let epoch: number;
    if (m.kind === "welcome") {
      if (m.message.value.wireformat !== "mls_welcome") return;
      const owners = await Promise.all(welcomeRefs(m.message.value).map((ref) => store.resolveRef(ref)));
      recipients = [...new Set(owners.filter((o): o is string => !!o && domainOf(o) === config.domain))];
      if (recipients.length === 0) return;
      for (const r of recipients) members.add(r);
      view.cipherSuite = suiteId(String(m.message.value.welcome.cipherSuite)) ?? view.cipherSuite;
      epoch = view.epoch;
    } else {
      const framing = readFraming(m.message.value);
      if (framing.groupId !== groupId) throw new DsError("bad_request", "a FanoutMessage belongs to another room");
      if (!g) return; // Nothing of this room reached us yet: no local member can use it.
      epoch = framing.epoch;
      recipients = [...members].filter((c) => c !== sender);
      if (m.kind === "commit") {
        view.epoch = Math.max(view.epoch, framing.epoch + 1);
        if (domainOf(sender) === config.domain) members.add(sender); // our client's external join
      }
    }
    view.members = [...members];
    const delivered: DeliveredMessage = {
      groupId,
      seq: 0, // numbered by the store, atomically (replicas on one store must not collide)
      kind: m.kind,
      epoch,
      sender,
      message: b64u(m.message.bytes),
      sha256,
      recipients,
    };
    const refused = await this.ctx.replica.deliverNumberedHere(hub, groupId, view, [delivered]);
    if (refused.length > 0) throw new DsError(refused[0]!.code, refused[0]!.message);
    await store.rememberRefs([{ ref: seenKey, client: "stored" }], SEEN_TTL_S);
    // A Welcome says nothing readable about the epoch, a commit nothing about the roster: ask the hub.
    if (m.kind === "commit" || m.kind === "welcome") await this.refreshMembers(hub, groupId);
  }

  /**
   * After a commit, the local members are those in the hub's GroupInfo tree: MIMI conveys no
   * roster, and PrivateMessage commits or Remove proposals by leaf index say nothing readable.
   */
  private async refreshMembers(hub: string, groupId: string): Promise<void> {
    const g = await this.ctx.store.getGroup(groupId);
    if (!g) return;
    const local = g.members.filter((c) => domainOf(c) === this.ctx.config.domain && !c.endsWith("/*"));
    let refused = 0;
    // Ask as each local member in turn (at most MAX_ASKERS): the first may be the one just removed.
    for (const asker of local.slice(0, MAX_ASKERS)) {
      let info: StoredGroupInfo;
      try {
        info = await this.ctx.peers.groupInfo(hub, groupId, asker);
      } catch (err) {
        if (err instanceof DsError && err.code === "not_a_member") {
          refused += 1;
          continue;
        }
        this.log.warn({ err, groupId, hub }, "MIMI follower could not refresh the room's members from the hub's GroupInfo");
        return;
      }
      if (info.epoch < g.epoch) return;
      const present = new Set((storedLeaves(info) ?? []).filter((l): l is string => !!l));
      const members = g.members.filter((c) => present.has(c) || present.has(`${c.slice(0, c.indexOf("/"))}/*`));
      for (const l of present) if (domainOf(l) === this.ctx.config.domain && !members.includes(l)) members.push(l);
      await this.ctx.store.putReplicaEntries({ ...viewOfReplica(g), createdAt: g.createdAt, members, epoch: info.epoch }, []);
      return;
    }
    // The hub refused every local member: none of them is in the room any more.
    if (refused > 0 && refused === local.length) {
      await this.ctx.store.putReplicaEntries({ ...viewOfReplica(g), createdAt: g.createdAt, members: [] }, []);
    }
  }
}

function viewOfReplica(g: GroupRecord): GroupView {
  return {
    groupId: g.groupId,
    hub: g.hub,
    epoch: g.epoch,
    mode: g.mode,
    cipherSuite: g.cipherSuite,
    members: [...g.members],
    owner: g.owner,
  };
}
