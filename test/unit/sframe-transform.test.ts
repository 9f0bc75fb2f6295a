import {
  SframeError,
  SframeKeyRing,
  SframeTransformHost,
  clearByteCount,
  decodeSframeHeader,
  installSframeWorker,
  protectFrame,
  unprotectFrame,
  type EpochKeys,
  type EncodedFrameType,
  type ScriptTransformer,
  type SframeWorkerReply,
  type SframeWorkerRequest,
} from "../../src/client/index.js";

const keys = (epoch: number, ownLeaf: number | null): EpochKeys => ({
  epoch: BigInt(epoch),
  baseKey: new Uint8Array(16).fill(epoch),
  ownLeaf,
  leafCount: 2,
  senders: [0, 1],
});

/** A VP8-like frame: a recognisable payload header then payload bytes. */
function encodedFrame(type: EncodedFrameType, n: number): { data: ArrayBuffer; type?: EncodedFrameType } {
  const bytes = new Uint8Array(200).map((_, i) => (i * 7 + n) & 0xff);
  return { data: bytes.buffer, ...(type ? { type } : {}) };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof SframeError) return e.code;
    throw e;
  }
  throw new Error("expected a refusal");
}

/** Runs frames through one host's transform the way an RTCRtpScriptTransformer would. */
async function throughTransform(
  host: SframeTransformHost,
  options: ScriptTransformer["options"],
  frames: { data: ArrayBuffer; type?: EncodedFrameType }[],
) {
  const out: { data: ArrayBuffer; type?: EncodedFrameType }[] = [];
  const readable = new ReadableStream({
    start(controller) {
      for (const f of frames) controller.enqueue(f);
      controller.close();
    },
  });
  const writable = new WritableStream<{ data: ArrayBuffer; type?: EncodedFrameType }>({ write: (f) => void out.push(f) });
  await host.run({ readable, writable, options });
  return out;
}

describe("the clear-bytes rule for WebRTC frames", () => {
  it("leaves 10 bytes of a VP8 key frame, 3 of a delta frame and 1 of an audio frame in clear", () => {
    expect(clearByteCount("video", "key")).toBe(10);
    expect(clearByteCount("video", "delta")).toBe(3);
    expect(clearByteCount("audio", undefined)).toBe(1);
  });

  it.each([
    ["a VP8 key frame", "video", "key", 10],
    ["a VP8 delta frame", "video", "delta", 3],
    ["an audio frame", "audio", undefined, 1],
  ] as const)(
    "keeps the prefix of %s verbatim, then an SFrame header, and authenticates the prefix",
    async (_name, kind, type, clear) => {
      const alice = new SframeKeyRing({ suite: 1 });
      const bob = new SframeKeyRing({ suite: 1 });
      alice.install(keys(1, 0));
      bob.install(keys(1, 1));
      const data = new Uint8Array(encodedFrame(type, 1).data);
      const wire = await protectFrame(alice, kind, type, data);
      expect(wire.subarray(0, clear)).toEqual(data.subarray(0, clear));
      expect(decodeSframeHeader(wire.subarray(clear)).kid).toBe(kind === "audio" ? 0x21n : 0x01n);
      expect(Buffer.from(wire).includes(Buffer.from(data.subarray(clear, clear + 16)))).toBe(false);
      const tampered = wire.slice();
      tampered[0]! ^= 0x80;
      expect(await codeOf(unprotectFrame(bob, kind, type, tampered))).toBe("auth_failed");
      expect((await unprotectFrame(bob, kind, type, wire)).data).toEqual(data);
    },
  );

  it("refuses an audio frame spliced into a video stream", async () => {
    const alice = new SframeKeyRing({ suite: 4 });
    const bob = new SframeKeyRing({ suite: 4 });
    alice.install(keys(1, 0));
    bob.install(keys(1, 1));
    const audio = await protectFrame(alice, "audio", undefined, new Uint8Array([1, 2, 3, 4]));
    expect(await codeOf(unprotectFrame(bob, "video", "delta", audio))).toBe("unknown_key");
  });
});

describe("SframeTransformHost (the worker's frame pipeline)", () => {
  it("encrypts on send and decrypts on receive, frame by frame, keeping frame types", async () => {
    const alice = new SframeTransformHost({ suite: 4 });
    const bob = new SframeTransformHost({ suite: 4 });
    alice.handleMessage({ type: "keys", keys: keys(1, 0) });
    bob.handleMessage({ type: "keys", keys: keys(1, 1) });
    const original = [encodedFrame("key", 1), encodedFrame("delta", 2), encodedFrame("delta", 3)];
    const copies = original.map((f) => ({ ...f, data: f.data.slice(0) }));
    const sent = await throughTransform(alice, { role: "send", kind: "video" }, copies);
    expect(sent).toHaveLength(3);
    expect(sent.every((f, i) => f.data.byteLength > original[i]!.data.byteLength)).toBe(true);
    const received = await throughTransform(bob, { role: "receive", kind: "video" }, sent);
    expect(received.map((f) => [f.type, new Uint8Array(f.data)])).toEqual(original.map((f) => [f.type, new Uint8Array(f.data)]));
    expect(alice.stats).toMatchObject({ encrypted: 3, dropped: {} });
    expect(bob.stats).toMatchObject({ decrypted: 3, dropped: {}, kidsSeen: ["1"] });
  });

  it("drops instead of passing on: a sender without keys sends nothing, a receiver without keys decodes nothing", async () => {
    const keyless = new SframeTransformHost({ suite: 4 });
    expect(await throughTransform(keyless, { role: "send", kind: "video" }, [encodedFrame("key", 1)])).toEqual([]);
    expect(keyless.stats.dropped).toEqual({ no_sender_key: 1 });

    const alice = new SframeTransformHost({ suite: 4 });
    alice.handleMessage({ type: "keys", keys: keys(1, 0) });
    const sent = await throughTransform(alice, { role: "send", kind: "video" }, [
      encodedFrame("key", 1),
      encodedFrame("delta", 2),
    ]);
    const tap = new SframeTransformHost({ suite: 4 });
    expect(await throughTransform(tap, { role: "receive", kind: "video" }, sent)).toEqual([]);
    // The tap sees SFrame ciphertext under alice's KID and cannot open it.
    expect(tap.stats).toMatchObject({ decrypted: 0, dropped: { unknown_key: 2 }, kidsSeen: ["1"] });
  });

  it("stops decoding a member who does not get the next epoch's keys", async () => {
    const alice = new SframeTransformHost({ suite: 4 });
    const bob = new SframeTransformHost({ suite: 4 });
    alice.handleMessage({ type: "keys", keys: keys(1, 0) });
    bob.handleMessage({ type: "keys", keys: keys(1, 1) });
    const before = await throughTransform(alice, { role: "send", kind: "video" }, [encodedFrame("key", 1)]);
    alice.handleMessage({ type: "keys", keys: keys(2, 0) });
    const after = await throughTransform(alice, { role: "send", kind: "video" }, [encodedFrame("key", 2)]);
    expect(await throughTransform(bob, { role: "receive", kind: "video" }, [...before, ...after])).toHaveLength(1);
    expect(bob.stats).toMatchObject({ decrypted: 1, dropped: { unknown_key: 1 }, kidsSeen: ["1", "2"] });
  });

  it("answers stats and takes keys through the worker's message port", async () => {
    const replies: SframeWorkerReply[] = [];
    const scope: Parameters<typeof installSframeWorker>[0] = {
      onmessage: null,
      onrtctransform: null,
      postMessage: (m) => void replies.push(m),
    };
    const host = installSframeWorker(scope);
    const post = (data: SframeWorkerRequest) => scope.onmessage!({ data });
    post({ type: "configure", options: { suite: 2, epochBits: 2 } });
    post({ type: "keys", keys: keys(5, 1) });
    expect(host.keyRing.suite).toBe(2);
    expect(host.keyRing.senderKid()).toBe(0x05n); // (1 << 2) | (5 mod 4)
    post({ type: "stats", id: 7 });
    expect(replies).toEqual([{ type: "stats", id: 7, stats: { encrypted: 0, decrypted: 0, dropped: {}, kidsSeen: [] } }]);
    post({ type: "keys", keys: null });
    expect(host.keyRing.currentEpoch).toBeUndefined();
  });
});
