import { decodeMlsMessage, encodeMlsMessage } from "ts-mls";
import { decodeVarLenData, determineLength, varLenDataEncoder } from "ts-mls/codec/variableLength.js";
import { encode, type BufferEncoder } from "ts-mls/codec/tlsEncoder.js";
import type { Decoder } from "ts-mls/codec/tlsDecoder.js";
import { capabilitiesEncoder, decodeCapabilities, type Capabilities } from "ts-mls/capabilities.js";
import { credentialEncoder, decodeCredential, type Credential } from "ts-mls/credential.js";
import { decodeExtension, extensionEncoder, type Extension } from "ts-mls/extension.js";
import { decodeExternalSender, externalSenderEncoder, type ExternalSender } from "ts-mls/externalSender.js";
import { decodeGroupInfo, groupInfoEncoder, ratchetTreeFromExtension, type GroupInfo } from "ts-mls/groupInfo.js";
import { decodeHpkeCiphertext, hpkeCiphertextEncoder, type HPKECiphertext } from "ts-mls/hpkeCiphertext.js";
import { decodeKeyPackage, keyPackageEncoder, type KeyPackage } from "ts-mls/keyPackage.js";
import { decodeRatchetTree, ratchetTreeEncoder, type RatchetTree } from "ts-mls/ratchetTree.js";
import {
  decodeRequiredCapabilities,
  requiredCapabilitiesEncoder,
  type RequiredCapabilities,
} from "ts-mls/requiredCapabilities.js";
import { decodeWelcome, welcomeEncoder, type Welcome } from "ts-mls/welcome.js";
import { signWithLabel, verifyWithLabel } from "ts-mls/crypto/signature.js";
import { decryptWithLabel, encryptWithLabel } from "ts-mls/crypto/hpke.js";
import type { MLSMessage } from "ts-mls/message.js";
import { suiteImpl, type SuiteId } from "./suites.js";

/**
 * The MLS structures that MIMI bodies embed (draft-ietf-mimi-protocol-06), with ts-mls's own
 * codecs: the MIMI codec (src/federation/mimi/) never hand-writes an MLS structure.
 */
export type { Capabilities, Credential, Extension, ExternalSender, GroupInfo, HPKECiphertext, KeyPackage, MLSMessage };
export type { RatchetTree, RequiredCapabilities, Welcome };

export interface MlsPartCodec<T> {
  decode: Decoder<T>;
  encode: (value: T) => Uint8Array;
}

function part<T>(decode: Decoder<T>, encoder: BufferEncoder<T>): MlsPartCodec<T> {
  return { decode, encode: encode(encoder) };
}

export const mlsParts = {
  mlsMessage: { decode: decodeMlsMessage, encode: encodeMlsMessage } as MlsPartCodec<MLSMessage>,
  keyPackage: part(decodeKeyPackage, keyPackageEncoder),
  welcome: part(decodeWelcome, welcomeEncoder),
  groupInfo: part(decodeGroupInfo, groupInfoEncoder),
  credential: part(decodeCredential, credentialEncoder),
  capabilities: part(decodeCapabilities, capabilitiesEncoder),
  requiredCapabilities: part(decodeRequiredCapabilities, requiredCapabilitiesEncoder),
  extension: part(decodeExtension, extensionEncoder),
  ratchetTree: part(decodeRatchetTree, ratchetTreeEncoder),
  externalSender: part(decodeExternalSender, externalSenderEncoder),
  hpkeCiphertext: part(decodeHpkeCiphertext, hpkeCiphertextEncoder),
};

/** MLS variable-length vector header (RFC 9420 §2.1.2): the body length and the header's size. */
export function readVarLength(bytes: Uint8Array, offset: number): { length: number; headerSize: number } {
  const { length, lengthFieldSize } = determineLength(bytes, offset);
  return { length, headerSize: lengthFieldSize };
}

export const encodeVarBytes = encode(varLenDataEncoder);
export const decodeVarBytes = decodeVarLenData;

export function treeOfGroupInfo(gi: GroupInfo): RatchetTree | undefined {
  return ratchetTreeFromExtension(gi);
}

/** SignWithLabel / VerifyWithLabel (RFC 9420 §5.1.2) with the suite's signature scheme. */
export async function mimiSign(suite: SuiteId, signKey: Uint8Array, label: string, content: Uint8Array): Promise<Uint8Array> {
  return signWithLabel(signKey, label, content, (await suiteImpl(suite)).signature);
}

export async function mimiVerify(
  suite: SuiteId,
  publicKey: Uint8Array,
  label: string,
  content: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  try {
    return await verifyWithLabel(publicKey, label, content, signature, (await suiteImpl(suite)).signature);
  } catch {
    return false;
  }
}

export async function mimiSignatureKeyPair(suite: SuiteId): Promise<{ publicKey: Uint8Array; signKey: Uint8Array }> {
  return (await suiteImpl(suite)).signature.keygen();
}

/** EncryptWithLabel (RFC 9420 §5.1.3) to a serialized HPKE public key. */
export async function mimiEncrypt(
  suite: SuiteId,
  publicKey: Uint8Array,
  label: string,
  context: Uint8Array,
  plaintext: Uint8Array,
): Promise<HPKECiphertext> {
  const { hpke } = await suiteImpl(suite);
  const { ct, enc } = await encryptWithLabel(await hpke.importPublicKey(publicKey), label, context, plaintext, hpke);
  return { kemOutput: enc, ciphertext: ct };
}

export async function mimiHpkeKeyPair(suite: SuiteId): Promise<{ publicKey: Uint8Array; decrypt: DecryptFn }> {
  const { hpke } = await suiteImpl(suite);
  const pair = await hpke.generateKeyPair();
  return {
    publicKey: await hpke.exportPublicKey(pair.publicKey),
    decrypt: (label, context, ct) => decryptWithLabel(pair.privateKey, label, context, ct.kemOutput, ct.ciphertext, hpke),
  };
}

export type DecryptFn = (label: string, context: Uint8Array, ct: HPKECiphertext) => Promise<Uint8Array>;

export { decodeMlsMessage };
