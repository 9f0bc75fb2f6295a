import { randomBytes } from "node:crypto";
import { encodeMlsMessage } from "ts-mls";

/**
 * A PrivateMessage-framed commit: the exact wire structure of a real one (RFC 9420 §6.3, encoded
 * by ts-mls) with the framing the DS reads — group id, epoch, content type — and random bytes where
 * a real one has its encrypted sender data and content. The DS cannot open those either (it holds
 * no epoch secrets), so for the ordering step this is indistinguishable from a member's commit.
 * `ciphertextBytes` defaults to the size of a real PrivateMessage commit of a small group.
 */
export function commitFramed(groupId: Uint8Array, epoch: number, ciphertextBytes = 700): Uint8Array {
  return encodeMlsMessage({
    version: "mls10",
    wireformat: "mls_private_message",
    privateMessage: {
      groupId,
      epoch: BigInt(epoch),
      contentType: "commit",
      authenticatedData: new Uint8Array(),
      encryptedSenderData: randomBytes(28),
      ciphertext: randomBytes(ciphertextBytes),
    },
  });
}
