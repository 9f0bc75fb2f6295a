import { ratchetTreeFromExtension, verifyGroupInfoSignature } from "ts-mls/groupInfo.js";
import { decodeRatchetTree, encodeRatchetTree } from "ts-mls/ratchetTree.js";
import { treeHashRoot } from "ts-mls/treeHash.js";
import { getCredentialFromLeafIndex, getSignaturePublicKeyFromLeafIndex } from "ts-mls/ratchetTree.js";
import { toLeafIndex } from "ts-mls/treemath.js";
import { decodeMlsMessage } from "ts-mls";
import type { MLSMessage } from "ts-mls/message.js";
import type { RatchetTree } from "ts-mls/ratchetTree.js";
import { DsError } from "../errors.js";
import { bytesEqual, toB64u } from "../encoding.js";
import { suiteId, suiteImpl } from "./suites.js";
import { IDENTITY_SCHEMES, clientOfIdentity } from "./identity.js";

export interface CheckedGroupInfo {
  groupId: string;
  epoch: number;
  cipherSuite: number;
  /** Client ids of the leaves, by leaf index (see leafIdentities). */
  leaves: (string | null)[];
}

/**
 * What the DS checks of an uploaded GroupInfo on the commit path: it is a GroupInfo of this group,
 * at the expected epoch, carries the ratchet tree, and is signed by the leaf it names. Full tree
 * validation (parent hashes) is quadratic and runs off the hot path (see docs/).
 *
 * `separateTree` is a tree sent beside a GroupInfo without the ratchet_tree extension (MIMI's
 * `RatchetTreeOption.full`): it is bound to the signed GroupInfo by the tree hash in its
 * GroupContext (linear), then used like an embedded one.
 */
export async function checkGroupInfo(
  message: MLSMessage,
  expect: { groupId: string; epoch?: number; cipherSuite?: number },
  separateTree?: RatchetTree,
): Promise<CheckedGroupInfo> {
  if (message.wireformat !== "mls_group_info") {
    throw new DsError("invalid_group_info", `expected a GroupInfo, got ${message.wireformat}`);
  }
  const gi = message.groupInfo;
  const groupId = toB64u(gi.groupContext.groupId);
  const epoch = Number(gi.groupContext.epoch);
  const suite = suiteId(String(gi.groupContext.cipherSuite));
  if (groupId !== expect.groupId) throw new DsError("invalid_group_info", "GroupInfo is for another group");
  if (expect.epoch !== undefined && epoch !== expect.epoch) {
    throw new DsError("invalid_group_info", `GroupInfo epoch ${epoch}, expected ${expect.epoch}`);
  }
  if (suite === undefined || (expect.cipherSuite !== undefined && suite !== expect.cipherSuite)) {
    throw new DsError("invalid_group_info", "GroupInfo cipher suite differs from the group's");
  }
  let tree;
  try {
    tree = ratchetTreeFromExtension(gi);
  } catch (e) {
    throw new DsError("invalid_group_info", `ratchet_tree extension does not decode: ${(e as Error).message}`);
  }
  if (tree && separateTree) throw new DsError("invalid_group_info", "the tree is both embedded and sent separately");
  tree ??= separateTree;
  if (!tree) throw new DsError("invalid_group_info", "GroupInfo must carry the ratchet_tree extension");
  const impl = await suiteImpl(suite).catch(() => {
    throw new DsError("unsupported_cipher_suite", `cipher suite ${suite} is not available on this DS`);
  });
  if (separateTree && !bytesEqual(await treeHashRoot(separateTree, impl.hash), gi.groupContext.treeHash)) {
    throw new DsError("invalid_group_info", "the ratchet tree does not match the GroupInfo's tree hash");
  }
  let signerKey: Uint8Array;
  try {
    signerKey = getSignaturePublicKeyFromLeafIndex(tree, toLeafIndex(gi.signer));
  } catch {
    throw new DsError("invalid_group_info", `GroupInfo signer ${gi.signer} is not a leaf of the tree`);
  }
  if (!(await verifyGroupInfoSignature(gi, signerKey, impl.signature))) {
    throw new DsError("invalid_group_info", "GroupInfo signature does not verify");
  }
  return { groupId, epoch, cipherSuite: suite, leaves: leafIdentities(tree) };
}

/**
 * Client ids of a tree's leaves by leaf index, read from their basic credentials under every
 * identity scheme the DS knows (identity.ts); null for blank leaves and credentials that name no client.
 */
export function leafIdentities(tree: RatchetTree): (string | null)[] {
  const leaves: (string | null)[] = [];
  for (let i = 0; 2 * i < tree.length; i++) {
    if (!tree[2 * i]) {
      leaves.push(null);
      continue;
    }
    const cred = getCredentialFromLeafIndex(tree, toLeafIndex(i));
    leaves.push(cred.credentialType === "basic" ? (clientOfIdentity(cred.identity, IDENTITY_SCHEMES)?.client ?? null) : null);
  }
  return leaves;
}

/** A stored GroupInfo (base64url MLSMessage) and, when it does not embed its tree, the tree stored beside it. */
export interface StoredGroupInfo {
  epoch: number;
  groupInfo: string;
  /** base64url TLS-encoded RatchetTree, present only when the GroupInfo lacks the ratchet_tree extension. */
  ratchetTree?: string;
}

/** The tree of a stored (already checked) GroupInfo: its extension, else the tree stored beside it. */
export function storedTree(stored: { groupInfo: string; ratchetTree?: string }): RatchetTree | undefined {
  const decoded = decodeMlsMessage(Buffer.from(stored.groupInfo, "base64url"), 0)?.[0];
  if (decoded?.wireformat !== "mls_group_info") return undefined;
  const embedded = ratchetTreeFromExtension(decoded.groupInfo);
  if (embedded || stored.ratchetTree === undefined) return embedded;
  return decodeRatchetTree(Buffer.from(stored.ratchetTree, "base64url"), 0)?.[0];
}

/** base64url of a tree, as stored beside a GroupInfo. */
export const ratchetTreeB64 = (tree: RatchetTree): string => toB64u(encodeRatchetTree(tree));

/** Leaf identities of a stored (already checked) GroupInfo. */
export function storedLeaves(stored: { groupInfo: string; ratchetTree?: string }): (string | null)[] | undefined {
  const tree = storedTree(stored);
  return tree ? leafIdentities(tree) : undefined;
}

/** A tree sent beside a GroupInfo (base64url), bounded like a GroupInfo; must decode completely. */
export function decodeTree(b64: string, maxBytes: number): RatchetTree {
  const bytes = Buffer.from(b64, "base64url");
  if (bytes.byteLength > maxBytes) throw new DsError("payload_too_large", `ratchet tree exceeds ${maxBytes} bytes`);
  let decoded: [RatchetTree, number] | undefined;
  try {
    decoded = decodeRatchetTree(bytes, 0);
  } catch {
    decoded = undefined;
  }
  if (!decoded || decoded[1] !== bytes.byteLength) throw new DsError("invalid_group_info", "the ratchet tree does not decode");
  return decoded[0];
}
