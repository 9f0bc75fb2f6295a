import type { Logger } from "pino";
import { domainOf, type DeviceList, type Store } from "../store/port.js";
import type { PeerGateway } from "./types.js";

/**
 * Device-change notices: every client sharing a group with the user gets a `device_update` inbox
 * entry; each peer hosting such clients gets one `device-updates` call (it notifies its own clients).
 */
export class DeviceNotifier {
  constructor(
    private readonly domain: string,
    private readonly store: Store,
    private readonly peers: PeerGateway,
    private readonly log: Logger,
  ) {}

  private async audience(list: DeviceList, extra: string[]): Promise<Set<string>> {
    const clients = new Set<string>();
    const devices = [...list.devices.map((d) => d.client), ...extra];
    for (const device of devices) {
      for (const groupId of await this.store.groupsOf(device)) {
        const g = await this.store.getGroup(groupId);
        // The index still lists a group its member left until it has read its feed to the end.
        if (g?.members.includes(device)) g.members.forEach((m) => clients.add(m));
      }
    }
    return clients;
  }

  /** A local user's devices changed (`changed` is the device added or removed). */
  async localChange(list: DeviceList, changed: string): Promise<void> {
    const audience = await this.audience(list, [changed]);
    await this.notifyLocal(list, audience);
    const remote = new Set([...audience].map(domainOf).filter((d) => d !== this.domain));
    await Promise.all(
      [...remote].map((peer) =>
        this.peers.deviceUpdate(peer, list).catch((err: unknown) => this.log.warn({ err, peer }, "device update not delivered")),
      ),
    );
  }

  /** A peer told us one of its users' devices changed. */
  async remoteChange(list: DeviceList): Promise<number> {
    const audience = await this.audience(list, []);
    return this.notifyLocal(list, audience);
  }

  private async notifyLocal(list: DeviceList, audience: Set<string>): Promise<number> {
    // Local clients only (the user's own other devices included); peers notify theirs.
    const local = [...audience].filter((c) => domainOf(c) === this.domain && !c.endsWith("/*"));
    const body = { user: list.user, version: list.version, devices: list.devices };
    const item = { kind: "notice" as const, id: `du:${list.user}:${list.version}`, type: "device_update" as const, body };
    await Promise.all(local.map((c) => this.store.appendInbox(c, [item])));
    return local.length;
  }
}
