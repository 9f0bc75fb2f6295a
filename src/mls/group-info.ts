import { ratchetTreeFromExtension, verifyGroupInfoSignature } from "ts-mls/groupInfo.js";
import { getCredentialFromLeafIndex, getSignaturePublicKeyFromLeafIndex } from "ts-mls/ratchetTree.js";
import { toLeafIndex } from "ts-mls/treemath.js";
import { decodeMlsMessage } from "ts-mls";
import type { MLSMessage } from "ts-mls/message.js";
import type { RatchetTree } from "ts-mls/ratchetTree.js";
import { DsError } from "../errors.js";
import { toB64u } from "../encoding.js";
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
 * validation (parent hashes, tree hash) is quadratic and runs off the hot path (see docs/).
 */
export async function checkGroupInfo(
  message: MLSMessage,
  expect: { groupId: string; epoch?: number; cipherSuite?: number },
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
  if (!tree) throw new DsError("invalid_group_info", "GroupInfo must carry the ratchet_tree extension");
  let signerKey: Uint8Array;
  try {
    signerKey = getSignaturePublicKeyFromLeafIndex(tree, toLeafIndex(gi.signer));
  } catch {
    throw new DsError("invalid_group_info", `GroupInfo signer ${gi.signer} is not a leaf of the tree`);
  }
  const impl = await suiteImpl(suite).catch(() => {
    throw new DsError("unsupported_cipher_suite", `cipher suite ${suite} is not available on this DS`);
  });
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

/** Leaf identities of a stored (already checked) GroupInfo. */
export function storedLeaves(groupInfo: string): (string | null)[] | undefined {
  const bytes = Buffer.from(groupInfo, "base64url");
  const decoded = decodeMlsMessage(bytes, 0)?.[0];
  if (decoded?.wireformat !== "mls_group_info") return undefined;
  const tree = ratchetTreeFromExtension(decoded.groupInfo);
  return tree ? leafIdentities(tree) : undefined;
}
