import { systemClock as wallClock } from "../clock.js";
import { ReplayWindow } from "./replay-window.js";
import { SframeError, U64_MAX } from "./sframe-error.js";
import { decodeSframeHeader } from "./sframe-header.js";
import { MIN_BASE_KEY_BYTES, deriveFrameKey, openFrame, sealFrame, type FrameKey } from "./sframe.js";
import { sframeSuite } from "./sframe-suites.js";

/**
 * The SFrame key state of one call member, independent of MLS (it also runs inside an encoded
 * transform worker, fed with EpochKeys by the page): one base key per epoch, KIDs as in RFC 9605
 * §5.2, a send counter per KID that never repeats, the previous epochs kept for a grace period
 * and then erased, and a replay window per KID on receive.
 */

/** What a member needs from one MLS epoch; CallKeys builds it from the MLS exporter. */
export interface EpochKeys {
  epoch: bigint;
  /** MLS-Exporter("SFrame 1.0 Base Key", "", AEAD.Nk) of that epoch. */
  baseKey: Uint8Array;
  /** This member's leaf index, or null for a receive-only ring. */
  ownLeaf: number | null;
  /** Leaves in the ratchet tree (sets S, the bits of the sender index). */
  leafCount: number;
  /** Leaf indices of the members of the epoch (the only senders accepted). */
  senders: number[];
}

/** Time and timers, injectable so tests can drive the grace period with a fake clock. */
export interface CallClock {
  now(): number;
  /** Runs `fn` after `ms`; returns a function that cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
}

export const systemClock: CallClock = {
  now: () => wallClock.nowMs(),
  setTimer(fn, ms) {
    const timer = setTimeout(fn, ms);
    // In Node, a pending erase must not keep the process alive; browsers have no unref.
    (timer as unknown as { unref?: () => void }).unref?.();
    return () => clearTimeout(timer);
  },
};

export interface KeyRingOptions {
  /** RFC 9605 cipher suite, 0x0001–0x0005. */
  suite: number;
  /** E: low-order epoch bits carried in the KID (1–16, default 4). */
  epochBits?: number;
  /** How long a replaced epoch's keys still decrypt, in ms (0–300000, default 3000). */
  graceMs?: number;
  /** Counters remembered per KID for replay refusal (16–4096, default 128). */
  replayWindow?: number;
  clock?: CallClock;
}

export const KEY_RING_DEFAULTS = { epochBits: 4, graceMs: 3000, replayWindow: 128 } as const;

/**
 * KID contexts a sender may use (0..15). Bounded so that frames naming arbitrary contexts cannot
 * make a receiver derive and cache keys without limit: at most senders × 16 keys per epoch.
 */
export const MAX_CONTEXTS = 16;

export interface OpenedFrame {
  kid: bigint;
  ctr: bigint;
  epoch: bigint;
  /** Leaf index of the sender in that epoch. */
  sender: number;
  context: bigint;
  plaintext: Uint8Array;
}

interface EpochRecord {
  keys: EpochKeys;
  low: bigint;
  senderBits: bigint;
  senders: Set<number>;
  frameKeys: Map<bigint, Promise<FrameKey>>;
  sendCounters: Map<bigint, bigint>;
  windows: Map<bigint, ReplayWindow>;
  expiresAt?: number;
  cancelTimer?: () => void;
}

function integerIn(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new SframeError("bad_input", `${name} must be an integer in ${min}..${max}`);
  }
  return value;
}

/** S of §5.2: the smallest value with leafCount <= 2^S. */
function senderBitsFor(leafCount: number): bigint {
  let s = 0;
  while (1 << s < leafCount) s++;
  return BigInt(s);
}

export class SframeKeyRing {
  readonly suite: number;
  readonly epochBits: number;
  readonly graceMs: number;
  readonly replayWindow: number;
  private readonly clock: CallClock;
  private readonly epochMask: bigint;
  private current: EpochRecord | undefined;
  /** Replaced epochs still within their grace period, oldest first. */
  private previous: EpochRecord[] = [];

  constructor(opts: KeyRingOptions) {
    this.suite = sframeSuite(opts.suite).id;
    this.epochBits = integerIn("epochBits", opts.epochBits ?? KEY_RING_DEFAULTS.epochBits, 1, 16);
    this.graceMs = integerIn("graceMs", opts.graceMs ?? KEY_RING_DEFAULTS.graceMs, 0, 300_000);
    this.replayWindow = integerIn("replayWindow", opts.replayWindow ?? KEY_RING_DEFAULTS.replayWindow, 16, 4096);
    this.clock = opts.clock ?? systemClock;
    this.epochMask = (1n << BigInt(this.epochBits)) - 1n;
  }

  get currentEpoch(): bigint | undefined {
    return this.current?.keys.epoch;
  }

  /** Epochs whose keys are held now (current last). */
  liveEpochs(): bigint[] {
    this.prune();
    return [...this.previous, ...(this.current ? [this.current] : [])].map((r) => r.keys.epoch);
  }

  /**
   * Makes `keys` the current epoch: sending switches to it at once, the replaced epoch keeps
   * decrypting for graceMs. An epoch sharing its low E bits with the new one is erased now
   * (RFC 9605 §5.2: a KID must name one epoch).
   */
  install(keys: EpochKeys): void {
    if (this.current && keys.epoch <= this.current.keys.epoch) {
      throw new SframeError("bad_input", `epoch ${keys.epoch} does not follow ${this.current.keys.epoch}`);
    }
    const leafCount = integerIn("leafCount", keys.leafCount, 1, 2 ** 31);
    if (keys.ownLeaf !== null) integerIn("ownLeaf", keys.ownLeaf, 0, leafCount - 1);
    const record: EpochRecord = {
      keys: { ...keys, baseKey: keys.baseKey.slice(), senders: [...keys.senders] },
      low: keys.epoch & this.epochMask,
      senderBits: senderBitsFor(leafCount),
      senders: new Set(keys.senders),
      frameKeys: new Map(),
      sendCounters: new Map(),
      windows: new Map(),
    };
    // Fails here rather than on the first frame.
    if (record.keys.baseKey.length < MIN_BASE_KEY_BYTES) {
      throw new SframeError("bad_input", `base key must be at least ${MIN_BASE_KEY_BYTES} bytes`);
    }
    if (this.current) {
      const replaced = this.current;
      replaced.expiresAt = this.clock.now() + this.graceMs;
      replaced.cancelTimer = this.clock.setTimer(() => this.prune(), this.graceMs);
      this.previous.push(replaced);
    }
    for (const r of this.previous.filter((p) => p.low === record.low)) this.erase(r);
    this.current = record;
    this.prune();
  }

  /** The KID this member sends with in the current epoch (context 0 unless asked). */
  senderKid(context = 0n): bigint {
    const record = this.current;
    if (!record || record.keys.ownLeaf === null) throw new SframeError("no_sender_key", "no current epoch to send in");
    return this.kidFor(record, record.keys.ownLeaf, context);
  }

  private kidFor(record: EpochRecord, leaf: number, context: bigint): bigint {
    if (typeof context !== "bigint" || context < 0n || context >= BigInt(MAX_CONTEXTS)) {
      throw new SframeError("bad_input", `context must be a bigint in 0..${MAX_CONTEXTS - 1}`);
    }
    const kid = (context << (record.senderBits + BigInt(this.epochBits))) | (BigInt(leaf) << BigInt(this.epochBits)) | record.low;
    if (kid > U64_MAX) throw new SframeError("bad_input", "KID does not fit 64 bits");
    return kid;
  }

  private frameKey(record: EpochRecord, kid: bigint): Promise<FrameKey> {
    let key = record.frameKeys.get(kid);
    if (!key) {
      key = deriveFrameKey(this.suite, record.keys.baseKey, kid);
      record.frameKeys.set(kid, key);
    }
    return key;
  }

  /** Encrypts with this member's key of the current epoch; each call takes the next CTR of that KID. */
  async encrypt(metadata: Uint8Array, plaintext: Uint8Array, opts: { context?: bigint } = {}): Promise<Uint8Array> {
    const record = this.current;
    if (!record) throw new SframeError("no_sender_key", "no current epoch to send in");
    const kid = this.senderKid(opts.context ?? 0n);
    // The counter is taken before any await, so concurrent calls never share one.
    const ctr = record.sendCounters.get(kid) ?? 0n;
    if (ctr > U64_MAX) throw new SframeError("counter_exhausted", `KID ${kid} has used every counter`);
    record.sendCounters.set(kid, ctr + 1n);
    return sealFrame(await this.frameKey(record, kid), ctr, metadata, plaintext);
  }

  /** Finds the epoch and sender from the KID, refuses replays and unknown senders, checks the tag. */
  async decrypt(metadata: Uint8Array, ciphertext: Uint8Array): Promise<OpenedFrame> {
    this.prune();
    const header = decodeSframeHeader(ciphertext);
    const low = header.kid & this.epochMask;
    const record = [this.current, ...this.previous].find((r) => r?.low === low);
    if (!record) throw new SframeError("unknown_key", `no live epoch for KID ${header.kid}`);
    const e = BigInt(this.epochBits);
    const sender = Number((header.kid >> e) & ((1n << record.senderBits) - 1n));
    const context = header.kid >> (record.senderBits + e);
    if (!record.senders.has(sender))
      throw new SframeError("unknown_key", `leaf ${sender} is not a member of epoch ${record.keys.epoch}`);
    if (sender === record.keys.ownLeaf) throw new SframeError("unknown_key", "a frame under this member's own sending KID");
    if (context >= BigInt(MAX_CONTEXTS)) throw new SframeError("unknown_key", `KID context ${context} is out of range`);
    let window = record.windows.get(header.kid);
    const early = window?.check(header.ctr);
    if (early) throw new SframeError("replayed", `CTR ${header.ctr} of KID ${header.kid} is ${early.replace("_", " ")}`);
    const plaintext = await openFrame(await this.frameKey(record, header.kid), header, metadata, ciphertext);
    if (!record.frameKeys.size) throw new SframeError("unknown_key", `epoch ${record.keys.epoch} was erased`);
    // Recorded only after authentication, so forged frames cannot move the window.
    window = record.windows.get(header.kid) ?? new ReplayWindow(this.replayWindow);
    record.windows.set(header.kid, window);
    if (!window.accept(header.ctr)) throw new SframeError("replayed", `CTR ${header.ctr} of KID ${header.kid} is replayed`);
    return { kid: header.kid, ctr: header.ctr, epoch: record.keys.epoch, sender, context, plaintext };
  }

  /** Drops every key now (leaving the call, removal from the group). */
  clear(): void {
    for (const r of this.previous) this.erase(r);
    if (this.current) this.erase(this.current);
    this.current = undefined;
  }

  private prune(): void {
    const now = this.clock.now();
    for (const r of this.previous.filter((p) => p.expiresAt !== undefined && p.expiresAt <= now)) this.erase(r);
  }

  private erase(record: EpochRecord): void {
    record.cancelTimer?.();
    record.keys.baseKey.fill(0);
    record.frameKeys.clear();
    record.sendCounters.clear();
    record.windows.clear();
    this.previous = this.previous.filter((p) => p !== record);
  }
}
