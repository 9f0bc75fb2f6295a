import { SframeError } from "./sframe-error.js";
import { decodeSframeHeader } from "./sframe-header.js";
import { SframeKeyRing, type EpochKeys, type KeyRingOptions, type OpenedFrame } from "./sframe-key-ring.js";
import { concat } from "./sframe-suites.js";

/**
 * SFrame for WebRTC encoded frames (RFC 9605 applied per frame), for an RTCRtpScriptTransform
 * worker. No Node and no DOM-window API: the frame logic is tested in Node with web streams.
 *
 * Chromium reads the codec payload header before the receive transform runs, so the first bytes
 * of a frame stay in clear and are bound into SFrame as authenticated metadata:
 * wire frame = clear bytes || SFrame header || ciphertext || tag.
 */

export type MediaKind = "audio" | "video";
/** RTCEncodedVideoFrame.type; audio frames have none. */
export type EncodedFrameType = "key" | "delta" | "empty" | undefined;

/** Clear prefix: the VP8 payload header of a key frame (10 bytes) or delta frame (3), the Opus TOC byte (1). */
export const CLEAR_BYTES = { videoKey: 10, videoDelta: 3, audio: 1 } as const;

/** Each kind is its own KID context, so audio and video of one sender have separate counters and replay windows. */
export const MEDIA_CONTEXT: Record<MediaKind, bigint> = { video: 0n, audio: 1n };

export function clearByteCount(kind: MediaKind, type: EncodedFrameType): number {
  if (kind === "audio") return CLEAR_BYTES.audio;
  return type === "key" ? CLEAR_BYTES.videoKey : CLEAR_BYTES.videoDelta;
}

/** Encrypts one encoded frame; the clear prefix is authenticated, the rest encrypted. */
export async function protectFrame(
  ring: SframeKeyRing,
  kind: MediaKind,
  type: EncodedFrameType,
  data: Uint8Array,
): Promise<Uint8Array> {
  const clear = Math.min(clearByteCount(kind, type), data.length);
  const metadata = data.subarray(0, clear);
  return concat(metadata, await ring.encrypt(metadata, data.subarray(clear), { context: MEDIA_CONTEXT[kind] }));
}

/** Decrypts one frame made by protectFrame; refuses a frame of the other media kind. */
export async function unprotectFrame(
  ring: SframeKeyRing,
  kind: MediaKind,
  type: EncodedFrameType,
  data: Uint8Array,
): Promise<{ data: Uint8Array; frame: OpenedFrame }> {
  const clear = Math.min(clearByteCount(kind, type), data.length);
  const metadata = data.subarray(0, clear);
  const frame = await ring.decrypt(metadata, data.subarray(clear));
  if (frame.context !== MEDIA_CONTEXT[kind])
    throw new SframeError("unknown_key", `a ${kind} stream carried a frame of context ${frame.context}`);
  return { data: concat(metadata, frame.plaintext), frame };
}

/** What `new RTCRtpScriptTransform(worker, options)` passes; `role` says which way the frames go. */
export interface SframeTransformOptions {
  role: "send" | "receive";
  kind: MediaKind;
}

interface EncodedFrame {
  data: ArrayBuffer;
  type?: EncodedFrameType;
}

/** The worker-side RTCRtpScriptTransformer (not in TypeScript's DOM lib). */
export interface ScriptTransformer {
  readable: ReadableStream<EncodedFrame>;
  writable: WritableStream<EncodedFrame>;
  options: SframeTransformOptions;
}

export interface TransformStats {
  encrypted: number;
  decrypted: number;
  /** Frames dropped, by SframeError code (or "error"). */
  dropped: Record<string, number>;
  /** KIDs seen in received frames (hex), decrypted or not. */
  kidsSeen: string[];
}

/** Messages the page posts to the worker. */
export type SframeWorkerRequest =
  | { type: "configure"; options: Omit<KeyRingOptions, "clock"> }
  | { type: "keys"; keys: EpochKeys | null }
  | { type: "stats"; id: number };

export type SframeWorkerReply = { type: "stats"; id: number; stats: TransformStats };

const MAX_KIDS_REPORTED = 32;

/**
 * The state of one call member in its worker: one key ring shared by every transform of the page
 * (one worker per call, so a KID's counter is never used by two rings) and frame counters.
 * Frames that cannot be protected or opened are dropped: plaintext never leaves, garbage never
 * reaches the decoder.
 */
export class SframeTransformHost {
  private ring: SframeKeyRing;
  readonly stats: TransformStats = { encrypted: 0, decrypted: 0, dropped: {}, kidsSeen: [] };

  constructor(options: Omit<KeyRingOptions, "clock"> = { suite: 0x0004 }) {
    this.ring = new SframeKeyRing(options);
  }

  get keyRing(): SframeKeyRing {
    return this.ring;
  }

  handleMessage(message: SframeWorkerRequest): SframeWorkerReply | undefined {
    switch (message.type) {
      case "configure":
        this.ring.clear();
        this.ring = new SframeKeyRing(message.options);
        return undefined;
      case "keys":
        if (message.keys) this.ring.install(message.keys);
        else this.ring.clear();
        return undefined;
      case "stats":
        return { type: "stats", id: message.id, stats: structuredClone(this.stats) };
    }
  }

  /** Pipes a transformer's frames through SFrame until its streams close. */
  run(transformer: ScriptTransformer): Promise<void> {
    const { role, kind } = transformer.options;
    const transform = new TransformStream<EncodedFrame, EncodedFrame>({
      transform: async (frame, controller) => {
        const data = new Uint8Array(frame.data);
        try {
          const out = role === "send" ? await this.protect(kind, frame.type, data) : await this.unprotect(kind, frame.type, data);
          frame.data = out.buffer as ArrayBuffer;
          controller.enqueue(frame);
        } catch (e) {
          const code = e instanceof SframeError ? e.code : "error";
          this.stats.dropped[code] = (this.stats.dropped[code] ?? 0) + 1;
        }
      },
    });
    return transformer.readable.pipeThrough(transform).pipeTo(transformer.writable);
  }

  private async protect(kind: MediaKind, type: EncodedFrameType, data: Uint8Array): Promise<Uint8Array> {
    const out = await protectFrame(this.ring, kind, type, data);
    this.stats.encrypted++;
    return out;
  }

  private async unprotect(kind: MediaKind, type: EncodedFrameType, data: Uint8Array): Promise<Uint8Array> {
    this.noteKid(data.subarray(Math.min(clearByteCount(kind, type), data.length)));
    const { data: out } = await unprotectFrame(this.ring, kind, type, data);
    this.stats.decrypted++;
    return out;
  }

  private noteKid(sframeBytes: Uint8Array): void {
    try {
      const kid = decodeSframeHeader(sframeBytes).kid.toString(16);
      if (!this.stats.kidsSeen.includes(kid) && this.stats.kidsSeen.length < MAX_KIDS_REPORTED) this.stats.kidsSeen.push(kid);
    } catch {
      // Not an SFrame header: counted as a drop by the decrypt that follows.
    }
  }
}

/** The parts of a dedicated worker's global scope the transform uses. */
export interface TransformWorkerScope {
  onmessage: ((event: { data: SframeWorkerRequest }) => void) | null;
  onrtctransform?: ((event: { transformer: ScriptTransformer }) => void) | null;
  postMessage(message: SframeWorkerReply): void;
}

/** Makes a dedicated worker an SFrame transform worker: `installSframeWorker(self)`. */
export function installSframeWorker(scope: TransformWorkerScope, host = new SframeTransformHost()): SframeTransformHost {
  scope.onmessage = (event) => {
    const reply = host.handleMessage(event.data);
    if (reply) scope.postMessage(reply);
  };
  scope.onrtctransform = (event) => {
    void host.run(event.transformer).catch(() => undefined);
  };
  return host;
}
