import {
  mlsParts,
  type Capabilities,
  type Credential,
  type KeyPackage,
  type RequiredCapabilities,
} from "../../mls/mimi-parts.js";
import { MimiCodecError, Writer, codeOf, decodeStrict } from "./wire.js";
import {
  DEFAULT_MIMI_LIMITS,
  KEY_MATERIAL_CLIENT_CODES,
  KEY_MATERIAL_USER_CODES,
  KEY_MAX,
  MAX_CLIENTS,
  MAX_SUITES,
  URI_MAX,
  protocol,
  uri,
  type KeyMaterialUserCode,
  type MimiLimits,
  type Mls,
} from "./codec-common.js";

/** keyMaterial bodies (draft-ietf-mimi-protocol-06 §Fetch Key Material). */
// ---------------------------------------------------------------- keyMaterial

export interface KeyMaterialRequestTBS {
  requestingUser: string;
  targetUser: string;
  roomId: string;
  acceptableCiphersuites: number[];
  requiredCapabilities: Mls<RequiredCapabilities>;
  requesterSignatureKey: Uint8Array;
  requesterCredential: Mls<Credential>;
}

export interface KeyMaterialRequest extends KeyMaterialRequestTBS {
  signature: Uint8Array;
}

function writeKeyMaterialTBS(w: Writer, v: KeyMaterialRequestTBS): Writer {
  return w
    .u8(1)
    .text(v.requestingUser)
    .text(v.targetUser)
    .text(v.roomId)
    .vector(v.acceptableCiphersuites, (x, s) => x.u16(s))
    .raw(v.requiredCapabilities.bytes)
    .opaque(v.requesterSignatureKey)
    .raw(v.requesterCredential.bytes);
}

export function encodeKeyMaterialRequestTBS(v: KeyMaterialRequestTBS): Uint8Array {
  return writeKeyMaterialTBS(new Writer(), v).bytes();
}

export function encodeKeyMaterialRequest(v: KeyMaterialRequest): Uint8Array {
  return writeKeyMaterialTBS(new Writer(), v).opaque(v.signature).bytes();
}

export function decodeKeyMaterialRequest(bytes: Uint8Array): KeyMaterialRequest {
  return decodeStrict(
    bytes,
    "KeyMaterialRequest",
    (r) => {
      protocol(r);
      const v: KeyMaterialRequest = {
        requestingUser: uri(r, "requestingUser"),
        targetUser: uri(r, "targetUser"),
        roomId: uri(r, "roomId"),
        acceptableCiphersuites: r.vector("acceptableCiphersuites", 2 * MAX_SUITES, MAX_SUITES, (x) => x.u16("CipherSuite")),
        requiredCapabilities: r.mls("requiredCapabilities", mlsParts.requiredCapabilities, 4096),
        requesterSignatureKey: r.opaque("requesterSignatureKey", KEY_MAX),
        requesterCredential: r.mls("requesterCredential", mlsParts.credential, KEY_MAX),
        signature: r.opaque("key_material_request_signature", KEY_MAX),
      };
      if (v.acceptableCiphersuites.length === 0) throw new MimiCodecError("acceptableCiphersuites is empty");
      return v;
    },
    encodeKeyMaterialRequest,
  );
}

export type ClientKeyMaterial =
  | { clientStatus: "success"; clientUri: string; keyPackage: Mls<KeyPackage> }
  | { clientStatus: "keyMaterialExhausted"; clientUri: string }
  | { clientStatus: "nothingCompatible"; clientUri: string; clientCapabilities?: Mls<Capabilities> };

export interface KeyMaterialResponse {
  userStatus: KeyMaterialUserCode;
  userUri: string;
  clients: ClientKeyMaterial[];
}

export function encodeKeyMaterialResponse(v: KeyMaterialResponse): Uint8Array {
  return new Writer()
    .u8(1)
    .u8(codeOf(KEY_MATERIAL_USER_CODES, v.userStatus))
    .text(v.userUri)
    .vector(v.clients, (w, c) => {
      w.u8(codeOf(KEY_MATERIAL_CLIENT_CODES, c.clientStatus)).text(c.clientUri);
      if (c.clientStatus === "success") w.raw(c.keyPackage.bytes);
      if (c.clientStatus === "nothingCompatible") w.optional(c.clientCapabilities, (x, caps) => x.raw(caps.bytes));
    })
    .bytes();
}

export function decodeKeyMaterialResponse(bytes: Uint8Array, limits: MimiLimits = DEFAULT_MIMI_LIMITS): KeyMaterialResponse {
  return decodeStrict(
    bytes,
    "KeyMaterialResponse",
    (r) => {
      protocol(r);
      const userStatus = r.enumOf("userStatus", KEY_MATERIAL_USER_CODES);
      const userUri = uri(r, "userUri");
      const clients = r.vector("clients", MAX_CLIENTS * (limits.keyPackageBytes + URI_MAX + 8), MAX_CLIENTS, (x) => {
        const clientStatus = x.enumOf("clientStatus", KEY_MATERIAL_CLIENT_CODES);
        const clientUri = uri(x, "clientUri");
        if (clientStatus === "success") {
          return { clientStatus, clientUri, keyPackage: x.mls("keyPackage", mlsParts.keyPackage, limits.keyPackageBytes) };
        }
        if (clientStatus === "nothingCompatible") {
          const caps = x.optional("clientCapabilities", (y) => y.mls("clientCapabilities", mlsParts.capabilities, 4096));
          return { clientStatus, clientUri, ...(caps ? { clientCapabilities: caps } : {}) };
        }
        return { clientStatus, clientUri };
      });
      const listed = userStatus === "success" || userStatus === "partialSuccess" || userStatus === "noCompatibleMaterial";
      if (!listed && clients.length > 0) throw new MimiCodecError(`clients must be empty when userStatus is ${userStatus}`);
      return { userStatus, userUri, clients };
    },
    encodeKeyMaterialResponse,
  );
}
