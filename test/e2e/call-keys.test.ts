import {
  CallKeys,
  MlsClient,
  SFRAME_EXPORTER_LABEL,
  SframeError,
  SframeKeyRing,
  type EpochKeys,
} from "../../src/client/index.js";
import { FakeClock } from "../helpers/fake-clock.js";
import { startProvider, stopAll, type Provider } from "../helpers/providers.js";

const meta = new TextEncoder().encode("vp8");
const frame = (text: string) => new TextEncoder().encode(text);

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof SframeError) return e.code;
    throw e;
  }
  throw new Error("expected a refusal");
}

describe("CallKeys: SFrame keys from a real MLS group (RFC 9605 §5.2)", () => {
  let a: Provider;
  let alice: MlsClient;
  let bob: MlsClient;
  let carol: MlsClient;
  let groupId: string;
  const clock = new FakeClock();
  const calls: CallKeys[] = [];
  const open = async (client: MlsClient) => {
    const keys = await CallKeys.create(client, groupId, { suite: 1, graceMs: 3000, clock });
    calls.push(keys);
    return keys;
  };

  beforeAll(async () => {
    a = await startProvider("a.example");
    [alice, bob, carol] = (await Promise.all(
      ["alice@a.example/phone", "bob@a.example/laptop", "carol@a.example/tablet"].map((c) => MlsClient.connect(a.url, c)),
    )) as [MlsClient, MlsClient, MlsClient];
    await Promise.all([bob, carol].map((c) => c.publishKeyPackages(2)));
    groupId = await alice.createGroup();
    await alice.addUsers(groupId, ["bob@a.example", "carol@a.example"]);
    await Promise.all([
      bob.syncUntil((e) => e.some((x) => x.kind === "joined")),
      carol.syncUntil((e) => e.some((x) => x.kind === "joined")),
    ]);
  });
  afterAll(async () => {
    for (const c of calls) c.close();
    await stopAll([a]);
  });

  it("gives every member the same epoch base key and a KID per leaf, so each decrypts the others", async () => {
    const [ka, kb, kc] = [await open(alice), await open(bob), await open(carol)];
    expect([ka.currentEpoch, kb.currentEpoch, kc.currentEpoch]).toEqual([1n, 1n, 1n]);
    expect([await ka.senderKid(), await kb.senderKid(), await kc.senderKid()]).toEqual([0x01n, 0x11n, 0x21n]);
    const fromAlice = await ka.encrypt(meta, frame("alice 1"));
    const fromBob = await kb.encrypt(meta, frame("bob 1"));
    expect(await kb.decrypt(meta, fromAlice)).toMatchObject({
      senderClient: "alice@a.example/phone",
      sender: 0,
      epoch: 1n,
      plaintext: frame("alice 1"),
    });
    expect(await kc.decrypt(meta, fromAlice)).toMatchObject({ senderClient: "alice@a.example/phone" });
    expect(await ka.decrypt(meta, fromBob)).toMatchObject({ senderClient: "bob@a.example/laptop", sender: 1 });
    // The exporter really is the source: a ring fed another base key for epoch 1 cannot open the frame.
    const outsider = new SframeKeyRing({ suite: 1 });
    outsider.install({ epoch: 1n, baseKey: new Uint8Array(48).fill(7), ownLeaf: null, leafCount: 3, senders: [0, 1, 2] });
    expect(await refusal(outsider.decrypt(meta, fromAlice))).toBe("auth_failed");
  });

  it("hands a worker the current epoch's keys at creation (onKeys given to create), then each new epoch", async () => {
    const heard: (EpochKeys | null)[] = [];
    const keys = await CallKeys.create(carol, groupId, { suite: 1, graceMs: 3000, clock }, (k) => heard.push(k));
    expect(heard).toHaveLength(1);
    const worker = new SframeKeyRing({ suite: 1, clock });
    worker.install(heard[0]!);
    // The worker's ring, fed only through the listener, opens alice's frames like CallKeys does.
    const [ka] = calls as [CallKeys];
    const { plaintext } = await worker.decrypt(meta, await ka.encrypt(meta, frame("to the worker")));
    expect(plaintext).toEqual(frame("to the worker"));
    keys.close();
  });

  it("rotates on the committer's own commit and on every member's processed commit", async () => {
    const [ka, kb, kc] = calls as [CallKeys, CallKeys, CallKeys];
    const bobKeys: (EpochKeys | null)[] = [];
    kb.onKeys((k) => bobKeys.push(k));
    await bob.update(groupId);
    expect(await kb.senderKid()).toBe(0x12n);
    expect(bobKeys.map((k) => k?.epoch)).toEqual([2n]);
    await Promise.all([
      alice.syncUntil((e) => e.some((x) => x.kind === "commit")),
      carol.syncUntil((e) => e.some((x) => x.kind === "commit")),
    ]);
    expect(await ka.senderKid()).toBe(0x02n);
    const ct = await kc.encrypt(meta, frame("carol at epoch 2"));
    expect(await ka.decrypt(meta, ct)).toMatchObject({ epoch: 2n, senderClient: "carol@a.example/tablet" });
    expect(await kb.decrypt(meta, ct)).toMatchObject({ epoch: 2n });
    clock.advance(3000);
    expect([ka.ring.liveEpochs(), kb.ring.liveEpochs(), kc.ring.liveEpochs()]).toEqual([[2n], [2n], [2n]]);
  });

  it("locks a removed member out of the new epoch while the others keep decrypting each other", async () => {
    const [ka, kb, kc] = calls as [CallKeys, CallKeys, CallKeys];
    // Carol keeps a copy of every key she is given, as a misbehaving client could.
    const carolHoard = new SframeKeyRing({ suite: 1, graceMs: 300_000, clock });
    const snap = carol.epochSnapshot(groupId);
    const baseKey = await snap.exportSecret(SFRAME_EXPORTER_LABEL, new Uint8Array(0), 48);
    carolHoard.install({ epoch: snap.epoch, baseKey, ownLeaf: snap.ownLeaf, leafCount: 3, senders: [0, 1, 2] });
    const beforeRemoval = await ka.encrypt(meta, frame("alice at epoch 2"));
    await alice.removeClients(groupId, ["carol@a.example/tablet"]);
    await bob.syncUntil((e) => e.some((x) => x.kind === "commit"));
    await carol.syncUntil((e) => e.some((x) => x.kind === "removed"));
    expect([ka.currentEpoch, kb.currentEpoch, kc.currentEpoch]).toEqual([3n, 3n, undefined]);

    const afterRemoval = await ka.encrypt(meta, frame("alice at epoch 3"));
    expect(await kb.decrypt(meta, afterRemoval)).toMatchObject({ epoch: 3n, plaintext: frame("alice at epoch 3") });
    expect(await ka.decrypt(meta, await kb.encrypt(meta, frame("bob at epoch 3")))).toMatchObject({ epoch: 3n });
    expect(await refusal(kc.decrypt(meta, afterRemoval))).toBe("unknown_key");
    expect(await refusal(kc.encrypt(meta, frame("carol after removal")))).toBe("no_sender_key");
    expect(await refusal(carolHoard.decrypt(meta, afterRemoval))).toBe("unknown_key");

    // Bob still opens alice's epoch-2 frame within the grace period, not after it.
    expect(kb.ring.liveEpochs()).toEqual([2n, 3n]);
    clock.advance(2999);
    expect(await kb.decrypt(meta, beforeRemoval)).toMatchObject({ epoch: 2n });
    clock.advance(1);
    expect(await refusal(kb.decrypt(meta, await carolHoard.encrypt(meta, frame("x"))))).toBe("unknown_key");
    expect(kb.ring.liveEpochs()).toEqual([3n]);
  });

  it("follows a commit race: the loser catches up and commits again, and both end on the same keys", async () => {
    const [ka, kb] = calls as [CallKeys, CallKeys];
    const [ra, rb] = await Promise.all([alice.update(groupId), bob.update(groupId)]);
    expect([ra.attempts, rb.attempts].sort()).toEqual([1, 2]);
    await Promise.all([alice.syncUntil(() => alice.epoch(groupId) === 5), bob.syncUntil(() => bob.epoch(groupId) === 5)]);
    await Promise.all([ka.settled(), kb.settled()]);
    expect([ka.currentEpoch, kb.currentEpoch]).toEqual([5n, 5n]);
    expect(await kb.decrypt(meta, await ka.encrypt(meta, frame("alice at 5")))).toMatchObject({
      epoch: 5n,
      senderClient: "alice@a.example/phone",
    });
    expect(await ka.decrypt(meta, await kb.encrypt(meta, frame("bob at 5")))).toMatchObject({
      epoch: 5n,
      senderClient: "bob@a.example/laptop",
    });
  });
});
