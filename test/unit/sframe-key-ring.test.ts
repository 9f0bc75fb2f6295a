import { SframeError, SframeKeyRing, decodeSframeHeader, encodeSframeHeader, type EpochKeys } from "../../src/client/index.js";
import { FakeClock } from "../helpers/fake-clock.js";

const meta = new TextEncoder().encode("clear bytes");
const frame = (n: number) => new TextEncoder().encode(`frame ${n}`);
const key = (seed: number) => new Uint8Array(16).fill(seed);

function epoch(n: number, ownLeaf: number | null, senders = [0, 1, 2], leafCount = 3): EpochKeys {
  return { epoch: BigInt(n), baseKey: key(n), ownLeaf, leafCount, senders };
}

async function refusal(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    if (e instanceof SframeError) return e.code;
    throw e;
  }
  throw new Error("expected a refusal");
}

describe("SframeKeyRing KIDs (RFC 9605 §5.2)", () => {
  it("builds KID = (context << (S+E)) | (leaf << E) | (epoch mod 2^E), the RFC's example values", () => {
    const kidOf = (leaf: number, e: number, leafCount: number, context = 0n) => {
      const ring = new SframeKeyRing({ suite: 4, epochBits: 4 });
      ring.install({ epoch: BigInt(e), baseKey: key(1), ownLeaf: leaf, leafCount, senders: [leaf] });
      return ring.senderKid(context);
    };
    // Figure 10 of RFC 9605 (E=4, S=6, 64 members).
    expect(kidOf(3, 14, 64)).toBe(0x3en);
    expect(kidOf(7, 14, 64)).toBe(0x7en);
    expect(kidOf(20, 14, 64)).toBe(0x14en);
    expect(kidOf(5, 15, 64)).toBe(0x5fn);
    expect(kidOf(2, 16, 64, 2n)).toBe(0x820n);
    expect(kidOf(2, 16, 64, 3n)).toBe(0xc20n);
    expect(kidOf(33, 17, 64)).toBe(0x211n);
  });

  it("lets a member decrypt a frame and name its sender's leaf and epoch", async () => {
    const alice = new SframeKeyRing({ suite: 1 });
    const bob = new SframeKeyRing({ suite: 1 });
    alice.install(epoch(5, 0));
    bob.install(epoch(5, 1));
    const ct = await alice.encrypt(meta, frame(1));
    const out = await bob.decrypt(meta, ct);
    expect(out).toMatchObject({ epoch: 5n, sender: 0, ctr: 0n, kid: 0x05n, context: 0n, plaintext: frame(1) });
  });

  it("routes a sender's second context to its own KID and counter", async () => {
    const alice = new SframeKeyRing({ suite: 4 });
    const bob = new SframeKeyRing({ suite: 4 });
    alice.install(epoch(1, 2));
    bob.install(epoch(1, 0));
    const video = await alice.encrypt(meta, frame(1));
    const audio = await alice.encrypt(meta, frame(2), { context: 1n });
    expect(await bob.decrypt(meta, video)).toMatchObject({ sender: 2, context: 0n, ctr: 0n });
    expect(await bob.decrypt(meta, audio)).toMatchObject({ sender: 2, context: 1n, ctr: 0n });
  });
});

describe("SframeKeyRing counters never repeat for a key", () => {
  it("hands out consecutive CTRs, also to concurrent calls", async () => {
    const alice = new SframeKeyRing({ suite: 4 });
    alice.install(epoch(1, 0));
    const frames = await Promise.all(Array.from({ length: 20 }, (_, i) => alice.encrypt(meta, frame(i))));
    const ctrs = frames.map((f) => decodeSframeHeader(f).ctr);
    expect(new Set(ctrs).size).toBe(20);
    expect([...ctrs].sort((a, b) => Number(a - b))).toEqual(Array.from({ length: 20 }, (_, i) => BigInt(i)));
  });

  it("refuses to install an epoch that is not newer, which would restart counters under a used key", async () => {
    const alice = new SframeKeyRing({ suite: 4 });
    alice.install(epoch(3, 0));
    await alice.encrypt(meta, frame(0));
    expect(await refusal(() => alice.install(epoch(3, 0)))).toBe("bad_input");
    expect(await refusal(() => alice.install(epoch(2, 0)))).toBe("bad_input");
    const next = await alice.encrypt(meta, frame(1));
    expect(decodeSframeHeader(next)).toMatchObject({ kid: 0x03n, ctr: 1n });
  });

  it("starts a new epoch's KID at CTR 0 (a new key), and cannot send without a leaf", async () => {
    const alice = new SframeKeyRing({ suite: 4 });
    alice.install(epoch(1, 0));
    await alice.encrypt(meta, frame(0));
    alice.install(epoch(2, 0));
    expect(decodeSframeHeader(await alice.encrypt(meta, frame(1)))).toMatchObject({ kid: 0x02n, ctr: 0n });
    const listener = new SframeKeyRing({ suite: 4 });
    listener.install(epoch(2, null));
    expect(await refusal(listener.encrypt(meta, frame(0)))).toBe("no_sender_key");
  });
});

describe("SframeKeyRing replay window", () => {
  let alice: SframeKeyRing;
  let bob: SframeKeyRing;
  beforeEach(() => {
    alice = new SframeKeyRing({ suite: 2, replayWindow: 16 });
    bob = new SframeKeyRing({ suite: 2, replayWindow: 16 });
    alice.install(epoch(1, 0));
    bob.install(epoch(1, 1));
  });

  it("refuses the same frame twice but accepts frames out of order inside the window", async () => {
    const frames = await Promise.all([0, 1, 2, 3].map((i) => alice.encrypt(meta, frame(i))));
    await bob.decrypt(meta, frames[2]!);
    await bob.decrypt(meta, frames[0]!);
    expect(await refusal(bob.decrypt(meta, frames[2]!))).toBe("replayed");
    await bob.decrypt(meta, frames[3]!);
    await bob.decrypt(meta, frames[1]!);
    expect(await refusal(bob.decrypt(meta, frames[1]!))).toBe("replayed");
  });

  it("refuses a frame older than the window", async () => {
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 20; i++) frames.push(await alice.encrypt(meta, frame(i)));
    await bob.decrypt(meta, frames[19]!);
    expect(await refusal(bob.decrypt(meta, frames[2]!))).toBe("replayed");
    expect((await bob.decrypt(meta, frames[4]!)).ctr).toBe(4n);
  });

  it("does not let a forged frame move the window", async () => {
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 40; i++) frames.push(await alice.encrypt(meta, frame(i)));
    const forged = frames[39]!.slice();
    forged[forged.length - 1]! ^= 1;
    expect(await refusal(bob.decrypt(meta, forged))).toBe("auth_failed");
    expect((await bob.decrypt(meta, frames[0]!)).ctr).toBe(0n);
  });

  it("refuses frames under an unknown leaf, under its own KID, and for an unknown epoch", async () => {
    const stranger = new SframeKeyRing({ suite: 2 });
    stranger.install(epoch(1, 3, [3], 4));
    expect(await refusal(bob.decrypt(meta, await stranger.encrypt(meta, frame(0))))).toBe("unknown_key");
    const bobTwin = new SframeKeyRing({ suite: 2 });
    bobTwin.install(epoch(1, 1));
    expect(await refusal(bob.decrypt(meta, await bobTwin.encrypt(meta, frame(0))))).toBe("unknown_key");
    const later = new SframeKeyRing({ suite: 2 });
    later.install(epoch(2, 0));
    expect(await refusal(bob.decrypt(meta, await later.encrypt(meta, frame(0))))).toBe("unknown_key");
  });
});

describe("SframeKeyRing grace period", () => {
  it("keeps the replaced epoch for graceMs, then erases it even with no traffic", async () => {
    const clock = new FakeClock();
    const alice = new SframeKeyRing({ suite: 4, graceMs: 2000, clock });
    const bob = new SframeKeyRing({ suite: 4, graceMs: 2000, clock });
    alice.install(epoch(1, 0));
    bob.install(epoch(1, 1));
    const late = [await alice.encrypt(meta, frame(0)), await alice.encrypt(meta, frame(1))];
    bob.install(epoch(2, 1));
    expect(bob.liveEpochs()).toEqual([1n, 2n]);
    clock.advance(1999);
    expect((await bob.decrypt(meta, late[0]!)).epoch).toBe(1n);
    clock.advance(1);
    expect(bob.liveEpochs()).toEqual([2n]);
    expect(clock.pendingTimers()).toBe(0);
    expect(await refusal(bob.decrypt(meta, late[1]!))).toBe("unknown_key");
  });

  it("erases an epoch at once when a newer one has the same low E bits", async () => {
    const clock = new FakeClock();
    const alice = new SframeKeyRing({ suite: 4, epochBits: 1, graceMs: 60_000, clock });
    const bob = new SframeKeyRing({ suite: 4, epochBits: 1, graceMs: 60_000, clock });
    alice.install(epoch(1, 0));
    bob.install(epoch(1, 1));
    const old = await alice.encrypt(meta, frame(0));
    bob.install(epoch(2, 1));
    bob.install(epoch(3, 1));
    expect(bob.liveEpochs()).toEqual([2n, 3n]);
    // KID low bit 1 now names epoch 3: epoch 1's frame does not authenticate under epoch 3's key.
    expect(await refusal(bob.decrypt(meta, old))).toBe("auth_failed");
  });
});

describe("SframeKeyRing input bounds", () => {
  it("bounds KID contexts, so frames naming arbitrary contexts cannot grow a receiver's key cache", async () => {
    const alice = new SframeKeyRing({ suite: 4 });
    const bob = new SframeKeyRing({ suite: 4 });
    alice.install(epoch(1, 0));
    bob.install(epoch(1, 1));
    expect(await refusal(alice.encrypt(meta, frame(0), { context: 16n }))).toBe("bad_input");
    // A header naming context 16 of leaf 0 (S = 2, E = 4): refused before any key is derived.
    const kid = (16n << 6n) | (0n << 4n) | 1n;
    const forged = new Uint8Array([...encodeSframeHeader(kid, 0n), ...new Uint8Array(32)]);
    expect(await refusal(bob.decrypt(meta, forged))).toBe("unknown_key");
    expect(await bob.decrypt(meta, await alice.encrypt(meta, frame(1), { context: 15n }))).toMatchObject({ context: 15n });
  });

  it("validates its options", () => {
    expect(() => new SframeKeyRing({ suite: 9 })).toThrow(SframeError);
    expect(() => new SframeKeyRing({ suite: 4, epochBits: 0 })).toThrow(SframeError);
    expect(() => new SframeKeyRing({ suite: 4, graceMs: -1 })).toThrow(SframeError);
    expect(() => new SframeKeyRing({ suite: 4, replayWindow: 1.5 })).toThrow(SframeError);
  });
});
