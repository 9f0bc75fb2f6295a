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
    claim: (domain, req) => pick(domain).claim(domain, req),
    devices: (domain, user) => pick(domain).devices(domain, user),
    submit: (hub, groupId, sender, body) => pick(hub).submit(hub, groupId, sender, body),
    lease: (hub, groupId, holder, ttlMs) => pick(hub).lease(hub, groupId, holder, ttlMs),
    releaseLease: (hub, groupId, holder, token) => pick(hub).releaseLease(hub, groupId, holder, token),
    group: (hub, groupId, member) => pick(hub).group(hub, groupId, member),
    groupInfo: (hub, groupId, member) => pick(hub).groupInfo(hub, groupId, member),
    messages: (hub, groupId, after, limit) => pick(hub).messages(hub, groupId, after, limit),
    deviceUpdate: (domain, list) => pick(domain).deviceUpdate(domain, list),
    commitLog: (hub, groupId, after) => pick(hub).commitLog(hub, groupId, after),
  };
}
