import { SframeError } from "./sframe-error.js";
import { SframeKeyRing, type EpochKeys, type KeyRingOptions, type OpenedFrame } from "./sframe-key-ring.js";
import { sframeSuite } from "./sframe-suites.js";

/** RFC 9605 §5.2 exporter label. */
export const SFRAME_EXPORTER_LABEL = "SFrame 1.0 Base Key";

/** One MLS epoch of a group as a call needs it, captured when the epoch began. */
export interface EpochSnapshot {
  groupId: string;
  epoch: bigint;
  ownLeaf: number;
  /** Client id per leaf index (null for a blank leaf). */
  members: (string | null)[];
  /** MLS-Exporter of this epoch (not of whatever epoch is current when it runs). */
  exportSecret(label: string, context: Uint8Array, length: number): Promise<Uint8Array>;
}

export type GroupEpochEvent = { kind: "epoch"; snapshot: EpochSnapshot } | { kind: "removed"; groupId: string };

/** What CallKeys needs from an MLS client; MlsClient provides it. */
export interface EpochSource {
  epochSnapshot(groupId: string): EpochSnapshot;
  onEpochChange(listener: (event: GroupEpochEvent) => void): () => void;
}

export type CallKeysOptions = Partial<KeyRingOptions>;

export interface CallFrame extends OpenedFrame {
  /** Client id of the sender (from the MLS tree of the frame's epoch). */
  senderClient: string;
}

/** Default suite for calls: AES-128-GCM, hardware-accelerated everywhere. */
export const DEFAULT_CALL_SUITE = 0x0004;

/**
 * SFrame keys of a call in one MLS group (RFC 9605 §5.2): every epoch's base key comes from the
 * MLS exporter, each member sends under KID (leaf << E) | (epoch mod 2^E), and every commit the
 * client processes — its own or another member's — rotates the keys. A member removed from the
 * group loses its keys at once.
 */
export class CallKeys {
  readonly ring: SframeKeyRing;
  private members = new Map<bigint, (string | null)[]>();
  private pending: Promise<void> = Promise.resolve();
  private keyListeners = new Set<(keys: EpochKeys | null) => void>();
  private unsubscribe: () => void;
  private lastError: unknown;

  private constructor(
    private readonly source: EpochSource,
    readonly groupId: string,
    opts: CallKeysOptions,
  ) {
    this.ring = new SframeKeyRing({ ...opts, suite: opts.suite ?? DEFAULT_CALL_SUITE });
    this.unsubscribe = source.onEpochChange((event) => {
      if (event.kind === "removed" && event.groupId === groupId) this.removed();
      else if (event.kind === "epoch" && event.snapshot.groupId === groupId) this.rotate(event.snapshot);
    });
  }

  /**
   * Binds to `groupId` of `source` (an MlsClient) and derives the current epoch's keys.
   * `onKeys` hears every epoch's keys from the first (the current epoch) on: how a page feeds an
   * encoded-transform worker, which must also get the keys of the epoch the call starts in.
   */
  static async create(
    source: EpochSource,
    groupId: string,
    opts: CallKeysOptions = {},
    onKeys?: (keys: EpochKeys | null) => void,
  ): Promise<CallKeys> {
    const keys = new CallKeys(source, groupId, opts);
    if (onKeys) keys.onKeys(onKeys);
    keys.rotate(source.epochSnapshot(groupId));
    await keys.settled();
    return keys;
  }

  get suite(): number {
    return this.ring.suite;
  }

  get currentEpoch(): bigint | undefined {
    return this.ring.currentEpoch;
  }

  /** Resolves once every epoch change seen so far is installed; rejects if one failed. */
  async settled(): Promise<void> {
    await this.pending;
    if (this.lastError) throw this.lastError;
  }

  /** The KID this member sends under now. */
  async senderKid(context = 0n): Promise<bigint> {
    await this.pending;
    return this.ring.senderKid(context);
  }

  /**
   * Called with each epoch's keys as they are installed (and null when the member is removed):
   * how a page hands keys to an encoded-transform worker that holds its own SframeKeyRing.
   */
  onKeys(listener: (keys: EpochKeys | null) => void): () => void {
    this.keyListeners.add(listener);
    return () => this.keyListeners.delete(listener);
  }

  async encrypt(metadata: Uint8Array, plaintext: Uint8Array, opts: { context?: bigint } = {}): Promise<Uint8Array> {
    await this.pending;
    return this.ring.encrypt(metadata, plaintext, opts);
  }

  async decrypt(metadata: Uint8Array, ciphertext: Uint8Array): Promise<CallFrame> {
    await this.pending;
    const frame = await this.ring.decrypt(metadata, ciphertext);
    const senderClient = this.members.get(frame.epoch)?.[frame.sender];
    if (!senderClient) throw new SframeError("unknown_key", `no member at leaf ${frame.sender}`);
    return { ...frame, senderClient };
  }

  /** Stops following the group and erases every key. */
  close(): void {
    this.unsubscribe();
    this.ring.clear();
    this.members.clear();
  }

  private rotate(snapshot: EpochSnapshot): void {
    // Chained: epochs install in the order the client processed them, even though the exporter is async.
    this.pending = this.pending.then(async () => {
      try {
        if (this.ring.currentEpoch !== undefined && snapshot.epoch <= this.ring.currentEpoch) return;
        const baseKey = await snapshot.exportSecret(SFRAME_EXPORTER_LABEL, new Uint8Array(0), sframeSuite(this.ring.suite).nk);
        const keys: EpochKeys = {
          epoch: snapshot.epoch,
          baseKey,
          ownLeaf: snapshot.ownLeaf,
          leafCount: snapshot.members.length,
          senders: snapshot.members.flatMap((m, leaf) => (m === null ? [] : [leaf])),
        };
        this.ring.install(keys);
        this.lastError = undefined;
        this.members.set(snapshot.epoch, snapshot.members);
        for (const e of [...this.members.keys()]) if (!this.ring.liveEpochs().includes(e)) this.members.delete(e);
        for (const listener of this.keyListeners) listener({ ...keys, baseKey: baseKey.slice() });
        baseKey.fill(0);
      } catch (e) {
        this.lastError = e;
      }
    });
  }

  private removed(): void {
    this.pending = this.pending.then(() => {
      this.ring.clear();
      this.members.clear();
      for (const listener of this.keyListeners) listener(null);
    });
  }
}
