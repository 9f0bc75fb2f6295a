import type { StoredGroupInfo } from "../mls/group-info.js";
import {
  userOf,
  type GroupRecord,
  type LeaseOutcome,
  type LeaseRecord,
  type LogEntry,
  type Submission,
  type SubmitOutcome,
} from "../store/port.js";

/**
 * The ordering rules as pure functions: (group, request, now) → decision. They are the
 * specification: the memory store applies them under its single thread, and the Lua scripts of
 * the Redis store (store/lua/submit.ts, group.ts) are tested against them with the same generated
 * cases (test/store-contract/lua-vs-spec.property.test.ts).
 */
export type SubmitDecision =
  | Exclude<SubmitOutcome, { ok: true }>
  | {
      ok: true;
      group: GroupRecord;
      entries: LogEntry[];
      answer: { seq: number; epoch: number };
      groupInfo?: StoredGroupInfo;
      commitLog?: { epoch: number; seq: number; sender: string; sha256: string };
    };

/**
 * Whom a device acts as in a group: itself when it is a member, else its user's virtual client
 * `user/*` when that is a member (single-client mode, docs/DEVICES-AND-SEND-GROUPS.md), else itself.
 */
export function resolveActor(members: readonly string[], client: string): string {
  if (members.includes(client)) return client;
  const virtual = `${userOf(client)}/*`;
  return members.includes(virtual) ? virtual : client;
}

/** A submission with `resolveActor` set, as the member (or virtual client) it is from. */
export function asActor(group: GroupRecord, sub: Submission): Submission {
  if (sub.kind === "commit" || !sub.resolveActor) return sub;
  const { resolveActor: _flag, ...rest } = sub;
  return { ...rest, sender: resolveActor(group.members, sub.sender) };
}

/**
 * Who may submit at all. Checked before anything else — also before a retry is answered from the
 * dedupe record, so a non-member re-posting a member's exact bytes learns nothing and causes nothing.
 */
export function senderRefusal(group: GroupRecord, sub: Submission): { ok: false; code: "not_a_member" } | undefined {
  const isMember = group.members.includes(sub.sender);
  if (sub.kind === "commit" && sub.external === true) {
    // A new device of a user already in the group may join itself (issue 4); strangers may not.
    const sameUser = group.members.some((m) => userOf(m) === userOf(sub.sender));
    if (!sameUser && !isMember) return { ok: false, code: "not_a_member" };
  } else if (!isMember) {
    return { ok: false, code: "not_a_member" };
  }
  return undefined;
}

export function decideSubmit(
  group: GroupRecord,
  sub: Submission,
  nowMs: number,
  winnerAt: (epoch: number) => string | undefined,
): SubmitDecision {
  const refusal = senderRefusal(group, sub);
  if (refusal) return refusal;
  const external = sub.kind === "commit" && sub.external === true;
  if (group.mode === "send-group" && sub.kind !== "proposal" && sub.sender !== group.owner) {
    return { ok: false, code: "not_designated_sender" };
  }

  const others = group.members.filter((m) => m !== sub.sender);
  if (sub.kind !== "commit") {
    if (sub.epoch > group.epoch) return { ok: false, code: "stale_epoch", expectedEpoch: group.epoch };
    const recipients = group.mode === "send-group" && sub.kind === "proposal" ? [group.owner] : others;
    const entry: LogEntry = {
      seq: group.nextSeq,
      kind: sub.kind,
      epoch: sub.epoch,
      sender: sub.sender,
      message: sub.message,
      sha256: sub.sha256,
      recipients,
    };
    return {
      ok: true,
      group: { ...group, nextSeq: group.nextSeq + 1 },
      entries: [entry],
      answer: { seq: entry.seq, epoch: group.epoch },
    };
  }

  if (sub.epoch !== group.epoch) {
    const winner = winnerAt(sub.epoch);
    return { ok: false, code: "stale_epoch", expectedEpoch: group.epoch, ...(winner ? { winner } : {}) };
  }
  const lease = group.lease && group.lease.expiresAt > nowMs ? group.lease : undefined;
  if (group.mode === "ordered" && lease && lease.token !== sub.leaseToken) {
    return { ok: false, code: "group_locked", leaseExpiresAt: lease.expiresAt };
  }

  const newEpoch = group.epoch + 1;
  const commit: LogEntry = {
    seq: group.nextSeq,
    kind: "commit",
    epoch: group.epoch,
    sender: sub.sender,
    message: sub.message,
    sha256: sub.sha256,
    recipients: others,
  };
  const entries = [commit];
  const removed = new Set(sub.removed);
  const members = group.members.filter((m) => !removed.has(m));
  for (const c of [...sub.added, ...(external ? [sub.sender] : [])]) if (!members.includes(c)) members.push(c);
  if (sub.welcome) {
    entries.push({
      seq: group.nextSeq + 1,
      kind: "welcome",
      epoch: newEpoch,
      sender: sub.sender,
      message: sub.welcome.message,
      sha256: sub.welcome.sha256,
      recipients: [...sub.added],
    });
  }
  return {
    ok: true,
    group: {
      ...group,
      epoch: newEpoch,
      nextSeq: group.nextSeq + entries.length,
      members,
      ...(lease ? { lease } : { lease: undefined }),
    },
    entries,
    answer: { seq: commit.seq, epoch: newEpoch },
    ...(sub.groupInfo
      ? { groupInfo: { epoch: newEpoch, groupInfo: sub.groupInfo, ...(sub.ratchetTree ? { ratchetTree: sub.ratchetTree } : {}) } }
      : {}),
    commitLog: { epoch: group.epoch, seq: commit.seq, sender: sub.sender, sha256: sub.sha256 },
  };
}

/** A lease request: a live lease of another holder blocks; its holder renews it and keeps its token. */
export type LeaseDecision =
  Exclude<LeaseOutcome, { ok: true }> | { ok: true; lease: LeaseRecord; outcome: Extract<LeaseOutcome, { ok: true }> };

export function decideLease(group: GroupRecord, holder: string, ttlMs: number, token: string, nowMs: number): LeaseDecision {
  if (!group.members.includes(holder)) return { ok: false, code: "not_a_member" };
  const live = group.lease && group.lease.expiresAt > nowMs ? group.lease : undefined;
  if (live && live.holder !== holder) return { ok: false, code: "group_locked", leaseExpiresAt: live.expiresAt };
  // A retried acquire must not invalidate the token the client already holds.
  const lease = live ? { ...live, expiresAt: nowMs + ttlMs } : { token, holder, expiresAt: nowMs + ttlMs };
  return { ok: true, lease, outcome: { ok: true, token: lease.token, expiresAt: lease.expiresAt } };
}

/** Only the token's holder releases (compare-and-delete); true if the lease was dropped. */
export function decideRelease(group: GroupRecord, token: string): boolean {
  return group.lease !== undefined && group.lease.token === token;
}
