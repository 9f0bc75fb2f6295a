import { DsError } from "../errors.js";
import { fromB64u } from "../encoding.js";
import { keyPackageRefOf, validateKeyPackage, type KeyPackagePolicy, type ValidKeyPackage } from "../mls/key-package.js";
import { identitiesFor } from "../mls/identity.js";
import { domainOf, userOf, type DeviceList, type Store, type StoredKeyPackage } from "../store/port.js";
import type { DeviceRevocations } from "./revocations.js";
import type { Clock, PeerGateway } from "./types.js";
import type { UploadAnswer } from "../wire/client-api.js";
import type { ClaimAnswer } from "../wire/shapes.js";

export interface ClaimRequest {
  user: string;
  requester: string;
  cipherSuites: number[];
  versions: string[];
}

export type { ClaimAnswer, UploadAnswer };

const REMOTE_REF_TTL_S = 30 * 24 * 3600;

/** KeyPackages and devices: validation on upload, atomic claims with suite negotiation, proxying for remote users. */
export class KeyDirectory {
  constructor(
    private readonly domain: string,
    private readonly store: Store,
    private readonly policy: KeyPackagePolicy & {
      perClient: number;
      perUpload: number;
      lastResortBySlot: boolean;
      lowWater: number;
    },
    private readonly clock: Clock,
    private readonly peers: PeerGateway,
    private readonly onDevicesChanged: (list: DeviceList, changed: string) => Promise<void>,
    private readonly revocations: DeviceRevocations,
  ) {}

  async touchDevice(client: string): Promise<void> {
    const r = await this.store.registerDevice(client);
    if (r.added) await this.onDevicesChanged(await this.store.listDevices(userOf(client)), client);
  }

  /**
   * Validates and stores KeyPackages. With `virtual`, a device uploads for its user's virtual
   * client `user@domain/*` (single-client mode): the credential must name the virtual client.
   */
  async upload(device: string, keyPackages: string[], lastResort: string | undefined, virtual = false): Promise<UploadAnswer> {
    const client = virtual ? `${userOf(device)}/*` : device;
    const items = [...keyPackages.map((kp) => ({ kp, lr: false })), ...(lastResort ? [{ kp: lastResort, lr: true }] : [])];
    if (items.length === 0) throw new DsError("bad_request", "no KeyPackages in the upload");
    if (items.length > this.policy.perUpload) {
      throw new DsError("payload_too_large", `at most ${this.policy.perUpload} KeyPackages per upload`);
    }
    const now = this.clock.nowSeconds();
    const answer: UploadAnswer = { accepted: [], rejected: [] };
    const valid: { index: number; kp: ValidKeyPackage }[] = [];
    await Promise.all(
      items.map(async ({ kp, lr }, index) => {
        try {
          const bytes = fromB64u(kp);
          if (!bytes) throw new DsError("invalid_mls", "KeyPackage is not base64url without padding");
          const checked = await validateKeyPackage(bytes, client, this.policy, now);
          if (lr && !checked.lastResort && !this.policy.lastResortBySlot) {
            throw new DsError("invalid_key_package", "lastResort KeyPackage lacks the last_resort extension");
          }
          // With keyPackages.lastResortBySlot the upload slot marks it (core-crypto cannot add the extension).
          valid.push({ index, kp: lr ? { ...checked, lastResort: true } : checked });
        } catch (e) {
          if (!(e instanceof DsError)) throw e;
          answer.rejected.push({ index, code: e.code, message: e.message });
        }
      }),
    );
    valid.sort((a, b) => a.index - b.index);
    if (valid.length === 0) {
      // Nothing accepted: change nothing (a rejected virtual upload must not register user/*).
      answer.rejected.sort((a, b) => a.index - b.index);
      return answer;
    }
    await this.touchDevice(device);
    if (virtual) await this.touchDevice(client);
    const stored: StoredKeyPackage[] = valid.map((v) => v.kp);
    const result = await this.store.putKeyPackages(client, stored, this.policy.perClient);
    const over = new Set(result.overLimit);
    for (const { index, kp } of valid) {
      if (over.has(kp.ref)) {
        answer.rejected.push({
          index,
          code: "key_package_limit",
          message: `at most ${this.policy.perClient} KeyPackages per client`,
        });
      } else {
        answer.accepted.push({ ref: kp.ref, cipherSuite: kp.cipherSuite, notAfter: kp.notAfter, lastResort: kp.lastResort });
      }
    }
    answer.rejected.sort((a, b) => a.index - b.index);
    return answer;
  }

  list(client: string) {
    return this.store.listKeyPackages(client);
  }

  async remove(client: string, ref: string): Promise<void> {
    if (!(await this.store.deleteKeyPackage(client, ref)))
      throw new DsError("unknown_key_package", "no such KeyPackage of yours");
  }

  /** A claim from a local client: served here, or proxied to the user's provider (server fan-out). */
  async claim(req: ClaimRequest): Promise<ClaimAnswer> {
    if (domainOf(req.user) === this.domain) return this.claimLocal(req);
    const answer = await this.peers.claim(domainOf(req.user), req);
    // The peer answers for its own user only, in a suite we asked for: a bundle naming anybody else
    // would let it route a later Welcome (by KeyPackageRef) to a client of its choosing.
    if (answer.user !== req.user || !req.cipherSuites.includes(answer.cipherSuite)) {
      throw new DsError(
        "peer_error",
        `${domainOf(req.user)} answered a claim for ${req.user} with another user's or suite's KeyPackages`,
        {
          peer: domainOf(req.user),
        },
      );
    }
    // Remember which client each remote KeyPackage belongs to, so Welcomes can be routed by ref —
    // only after checking that the peer's KeyPackage really is that client's (credential, identity key).
    await this.store.rememberRefs(
      await Promise.all(
        answer.bundles.map(async (b) => {
          if (userOf(b.client) !== req.user) {
            throw new DsError("peer_error", `peer answered a claim for ${req.user} with ${b.client}'s KeyPackage`);
          }
          return { ref: await keyPackageRefOf(b.keyPackage, answer.cipherSuite, b), client: b.client };
        }),
      ),
      REMOTE_REF_TTL_S,
    );
    return answer;
  }

  async claimLocal(req: ClaimRequest): Promise<ClaimAnswer> {
    if (!req.versions.includes("mls10")) {
      throw new DsError("no_common_cipher_suite", "no common protocol version", {
        requester: { versions: req.versions },
        target: { versions: ["mls10"] },
      });
    }
    const suites = req.cipherSuites.filter((s) => this.policy.allowedSuites.includes(s));
    const outcome = await this.store.claim(req.user, suites, this.clock.nowSeconds());
    switch (outcome.kind) {
      case "unknown_user":
        throw new DsError("unknown_user", `${req.user} has no devices here`);
      case "no_key_package":
        throw new DsError("no_key_package", `${req.user} has no usable KeyPackage`);
      case "no_common_suite":
        throw new DsError("no_common_cipher_suite", `no cipher suite in common with ${req.user}`, {
          requester: { cipherSuites: req.cipherSuites },
          target: {
            cipherSuites: outcome.available.filter((s) => this.policy.allowedSuites.includes(s)),
            allowed: this.policy.allowedSuites,
          },
        });
      case "ok":
        // Best effort: the KeyPackages are already claimed, so a failed notice must not lose them
        // (clients also check their pool when they sign in).
        await this.reportLowPools(outcome.cipherSuite, outcome.bundles).catch(() => undefined);
        return {
          user: req.user,
          version: "mls10",
          cipherSuite: outcome.cipherSuite,
          bundles: outcome.bundles.map((b) => ({
            client: b.client,
            keyPackage: b.keyPackage,
            identityKey: b.identityKey,
            lastResort: b.lastResort,
          })),
          missing: outcome.missing,
        };
    }
  }

  /**
   * A device whose pool a claim left at `lowWater` or fewer KeyPackages gets a `key_packages_low`
   * notice in its inbox, so an online client replenishes before it runs on its last-resort package.
   */
  private async reportLowPools(
    cipherSuite: number,
    bundles: { client: string; keyPackage: string; identityKey: string; lastResort: boolean }[],
  ) {
    await Promise.all(
      bundles
        .filter((b) => !b.lastResort && !b.client.endsWith("/*"))
        .map(async (b) => {
          const remaining = (await this.store.listKeyPackages(b.client)).filter((k) => !k.lastResort).length;
          if (remaining > this.policy.lowWater) return;
          // The claimed package's ref makes the notice id unique per claim (inbox ids dedupe forever).
          const ref = await keyPackageRefOf(b.keyPackage, cipherSuite, b);
          const body = { remaining, lowWater: this.policy.lowWater };
          await this.store.appendInbox(b.client, [{ kind: "notice", id: `kpl:${ref}`, type: "key_packages_low", body }]);
        }),
    );
  }

  async devices(user: string): Promise<DeviceList> {
    if (domainOf(user) !== this.domain) return this.peers.devices(domainOf(user), user);
    const list = await this.store.listDevices(user);
    if (list.devices.length === 0 && list.version === 0) throw new DsError("unknown_user", `${user} has no devices here`);
    // The credential identities each device may use here, so a client of any implementation can name it.
    return {
      ...list,
      devices: list.devices.map((d) => ({ ...d, identities: identitiesFor(d.client, this.policy.identitySchemes) })),
    };
  }

  async removeDevice(requester: string, client: string): Promise<void> {
    if (userOf(requester) !== userOf(client)) throw new DsError("forbidden", "a user may only remove its own devices");
    const before = await this.store.listDevices(userOf(client));
    if (!before.devices.some((d) => d.client === client)) throw new DsError("not_found", `${client} is not a device of yours`);
    // Revoked first: from here on no replica accepts the device's current tokens, so it cannot
    // re-register itself between its removal and the revocation.
    await this.revocations.revoke(client);
    const r = await this.store.removeDevice(client);
    if (!r.removed) throw new DsError("not_found", `${client} is not a device of yours`);
    await this.onDevicesChanged(await this.store.listDevices(userOf(client)), client);
  }
}
