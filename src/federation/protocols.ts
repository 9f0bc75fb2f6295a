import type { PeerGateway } from "../domain/types.js";

/**
 * The peer-protocol abstraction: the domain talks to one PeerGateway; this one hands each call to
 * the binding the peer is configured with (`protocol: "fedgate" | "mimi"`), so no domain code knows
 * which binding a peer speaks.
 */
export function protocolRouter(
  fedgate: PeerGateway,
  mimi: PeerGateway | undefined,
  speaksMimi: (domain: string) => boolean,
): PeerGateway {
  const pick = (domain: string): PeerGateway => (mimi && speaksMimi(domain) ? mimi : fedgate);
  return {
    claim: (domain, req, rid) => pick(domain).claim(domain, req, rid),
    devices: (domain, user, rid) => pick(domain).devices(domain, user, rid),
    submit: (hub, groupId, sender, body, rid) => pick(hub).submit(hub, groupId, sender, body, rid),
    lease: (hub, groupId, holder, ttlMs, rid) => pick(hub).lease(hub, groupId, holder, ttlMs, rid),
    releaseLease: (hub, groupId, holder, token, rid) => pick(hub).releaseLease(hub, groupId, holder, token, rid),
    group: (hub, groupId, member, rid) => pick(hub).group(hub, groupId, member, rid),
    groupInfo: (hub, groupId, member, rid) => pick(hub).groupInfo(hub, groupId, member, rid),
    messages: (hub, groupId, after, limit, rid) => pick(hub).messages(hub, groupId, after, limit, rid),
    deviceUpdate: (domain, list, rid) => pick(domain).deviceUpdate(domain, list, rid),
    commitLog: (hub, groupId, after, rid) => pick(hub).commitLog(hub, groupId, after, rid),
  };
}
