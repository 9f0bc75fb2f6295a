import type { AppContext } from "../../context.js";
import { DsError } from "../../errors.js";
import { consume } from "../../http/middleware.js";
import { mimiVerify, mlsParts, type KeyPackage, type RequiredCapabilities } from "../../mls/mimi-parts.js";
import { domainOf, userOf } from "../../store/port.js";
import {
  decodeKeyMaterialRequest,
  encodeKeyMaterialRequestTBS,
  type ClientKeyMaterial,
  type KeyMaterialResponse,
} from "./codec.js";
import { basicIdentity, clientOfCredential, fromB64, unwrapMls } from "./envelope.js";
import { clientUri, userOfUri } from "./ids.js";

/** Does a KeyPackage's leaf advertise everything the requester's RequiredCapabilities name? */
function satisfies(kp: KeyPackage, req: RequiredCapabilities): boolean {
  const caps = kp.leafNode.capabilities;
  const num = (v: unknown) => (typeof v === "number" ? v : NaN);
  return (
    req.extensionTypes.every((t) => caps.extensions.map(num).includes(t)) &&
    req.proposalTypes.every((t) => caps.proposals.map(num).includes(t)) &&
    req.credentialTypes.every((t) => caps.credentials.includes(t))
  );
}

/** The target side of keyMaterial: a claim for a local user, answered with MIMI's user and client codes. */
export async function keyMaterial(
  ctx: AppContext,
  peer: string,
  targetUser: string,
  body: Uint8Array,
): Promise<KeyMaterialResponse> {
  const req = decodeKeyMaterialRequest(body);
  if (req.targetUser !== targetUser) throw new DsError("bad_request", "targetUser differs from the request path");
  const requestingUser = userOfUri(req.requestingUser);
  if (domainOf(requestingUser) !== peer) throw new DsError("forbidden", `${peer} cannot request for ${requestingUser}`);
  const requester = clientOfCredential(req.requesterCredential.value) ?? basicIdentity(req.requesterCredential.value);
  if (!requester || (requester !== requestingUser && userOf(requester) !== requestingUser))
    throw new DsError("forbidden", "requesterCredential does not name the requesting user or one of its clients");
  // The first acceptable suite names the signature scheme of the request (the draft leaves this open).
  const suite = req.acceptableCiphersuites[0]!;
  const signed = await mimiVerify(
    suite,
    req.requesterSignatureKey,
    "KeyMaterialRequestTBS",
    encodeKeyMaterialRequestTBS(req),
    req.signature,
  );
  if (!signed)
    throw new DsError("unauthenticated", "key_material_request_signature does not verify", { reason: "bad_request_signature" });
  const user = userOfUri(targetUser);
  const none = (userStatus: KeyMaterialResponse["userStatus"], clients: ClientKeyMaterial[] = []): KeyMaterialResponse => ({
    userStatus,
    userUri: targetUser,
    clients,
  });
  if (domainOf(user) !== ctx.config.domain) return none("userUnknown");
  await consume(ctx.limiters.claims, `${requester}>${user}`);
  const devices = async (status: "keyMaterialExhausted" | "nothingCompatible") =>
    (await ctx.store.listDevices(user)).devices.map((d): ClientKeyMaterial => ({
      clientStatus: status,
      clientUri: clientUri(d.client),
    }));
  let answer;
  try {
    answer = await ctx.keys.claimLocal({ user, requester, cipherSuites: req.acceptableCiphersuites, versions: ["mls10"] });
  } catch (e) {
    if (!(e instanceof DsError)) throw e;
    if (e.code === "unknown_user") return none("userUnknown");
    if (e.code === "no_key_package") return none("noCompatibleMaterial", await devices("keyMaterialExhausted"));
    if (e.code === "no_common_cipher_suite") return none("noCompatibleMaterial", await devices("nothingCompatible"));
    throw e;
  }
  const clients: ClientKeyMaterial[] = [];
  for (const b of answer.bundles) {
    const bytes = unwrapMls("key_package", fromB64(b.keyPackage));
    const [kp] = mlsParts.keyPackage.decode(bytes, 0) ?? [];
    if (!kp) throw new DsError("internal", "stored KeyPackage does not decode");
    // Claimed before this check (the claim is atomic); a KeyPackage that lacks a required capability is reported, not served.
    clients.push(
      satisfies(kp, req.requiredCapabilities.value)
        ? { clientStatus: "success", clientUri: clientUri(b.client), keyPackage: { value: kp, bytes } }
        : { clientStatus: "nothingCompatible", clientUri: clientUri(b.client) },
    );
  }
  for (const m of answer.missing) {
    clients.push({
      clientStatus: m.reason === "exhausted" ? "keyMaterialExhausted" : "nothingCompatible",
      clientUri: clientUri(m.client),
    });
  }
  const served = clients.filter((c) => c.clientStatus === "success").length;
  return none(served === clients.length ? "success" : served > 0 ? "partialSuccess" : "noCompatibleMaterial", clients);
}
