import { storedTree } from "./group-info.js";
import { encodeNode, filteredDirectPathAndCopathResolution } from "ts-mls/ratchetTree.js";
import { toLeafIndex } from "ts-mls/treemath.js";
import { DsError } from "../errors.js";
import { toB64u } from "../encoding.js";
import { decodeMlsField } from "./codec.js";
import { suiteId, suiteImpl } from "./suites.js";
import { validateRatchetTree } from "ts-mls/clientState.js";
import { defaultLifetimeConfig } from "ts-mls/lifetimeConfig.js";
import { defaultAuthenticationService } from "ts-mls/authenticationService.js";

export interface TreeNodeView {
  index: number;
  /** base64url TLS-encoded Node (RFC 9420 §7.8), or null for a blank node. */
  node: string | null;
}

/**
 * The public ratchet tree from the latest GroupInfo (seed 002 metadata assistance). With `leaf`,
 * only what that member needs (draft "part of the tree"): its filtered direct path, the copath
 * resolutions, and every leaf — so large groups need not download every parent node.
 */
export function treeView(stored: { groupInfo: string; ratchetTree?: string }, epoch: number, leaf?: number) {
  const tree = storedTree(stored);
  if (!tree) throw new DsError("not_found", "the stored GroupInfo carries no ratchet tree");
  const view = (index: number): TreeNodeView => {
    const n = tree[index];
    return { index, node: n ? toB64u(encodeNode(n)) : null };
  };
  const leafCount = Math.ceil(tree.length / 2);
  if (leaf === undefined) return { epoch, nodeCount: tree.length, nodes: tree.map((_, i) => view(i)) };
  if (leaf >= leafCount || !tree[2 * leaf]) throw new DsError("not_found", `leaf ${leaf} is blank or outside the tree`);
  const path = filteredDirectPathAndCopathResolution(toLeafIndex(leaf), tree);
  const leaves = Array.from({ length: leafCount }, (_, i) => view(2 * i));
  return {
    epoch,
    nodeCount: tree.length,
    leaf,
    directPath: path.map((p) => ({ ...view(p.nodeIndex), copathResolution: p.resolution.map((i) => view(i)) })),
    leaves,
  };
}

/**
 * Full ratchet-tree validation (leaf signatures, key uniqueness, parent hashes, tree hash).
 * Quadratic in the group size, so the DS runs it only when asked (`/tree?verify=true`), never on
 * the commit path; the commit path checks the GroupInfo signature only (see docs/).
 */
export async function verifyTree(stored: {
  groupInfo: string;
  ratchetTree?: string;
}): Promise<{ valid: boolean; error?: string; ms: number }> {
  const started = performance.now();
  const { message } = decodeMlsField(stored.groupInfo, "groupInfo", Number.MAX_SAFE_INTEGER);
  if (message.wireformat !== "mls_group_info") throw new DsError("internal", "stored GroupInfo is not a GroupInfo");
  const gi = message.groupInfo;
  const tree = storedTree(stored);
  if (!tree) throw new DsError("not_found", "the stored GroupInfo carries no ratchet tree");
  const suite = suiteId(String(gi.groupContext.cipherSuite));
  if (suite === undefined) throw new DsError("internal", "stored GroupInfo has an unknown suite");
  const err = await validateRatchetTree(
    tree,
    gi.groupContext,
    defaultLifetimeConfig,
    defaultAuthenticationService,
    gi.groupContext.treeHash,
    await suiteImpl(suite),
  );
  return {
    valid: err === undefined,
    ...(err ? { error: err.message } : {}),
    ms: Math.round((performance.now() - started) * 100) / 100,
  };
}
