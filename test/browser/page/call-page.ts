/**
 * Test page (bundled by the test with esbuild): peer connections on loopback inside one page whose
 * every video frame goes through the SFrame worker (src/client/sframe-worker.ts). Members are
 * workers holding their own key ring; the test drives it through `window.callTest`.
 */
import type { EpochKeys, SframeWorkerReply, SframeWorkerRequest, TransformStats } from "../../../src/client/index.js";

type Name = "alice" | "bob" | "eve";
const LEAF: Record<Name, number | null> = { alice: 0, bob: 1, eve: null };

const workers = new Map<Name, Worker>();
const baseKeys = new Map<number, Uint8Array>();
const links = new Map<string, RTCPeerConnection>();
let nextId = 0;

function worker(name: Name): Worker {
  let w = workers.get(name);
  if (!w) {
    w = new Worker("/worker.js", { type: "module", name });
    post(w, { type: "configure", options: { suite: 0x0004, graceMs: 1000 } });
    workers.set(name, w);
  }
  return w;
}

function post(w: Worker, message: SframeWorkerRequest): void {
  w.postMessage(message);
}

/** The group's epoch keys as every member would export them; alice and bob are members (2 leaves). */
function epochKeys(epoch: number, name: Name): EpochKeys {
  let baseKey = baseKeys.get(epoch);
  if (!baseKey) baseKeys.set(epoch, (baseKey = crypto.getRandomValues(new Uint8Array(16))));
  return { epoch: BigInt(epoch), baseKey, ownLeaf: LEAF[name], leafCount: 2, senders: [0, 1] };
}

function isLoopbackCandidate(line: string): boolean {
  const address = line.split(" ")[4];
  return address === "127.0.0.1" || address === "::1";
}

/** Complete (non-trickle) SDP with every candidate that is not on loopback removed. */
async function loopbackDescription(pc: RTCPeerConnection): Promise<RTCSessionDescriptionInit> {
  if (pc.iceGatheringState !== "complete") {
    await new Promise<void>((resolve) =>
      pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve()),
    );
  }
  const { type, sdp } = pc.localDescription!;
  const lines = sdp.split("\r\n").filter((l) => !l.startsWith("a=candidate:") || isLoopbackCandidate(l));
  return { type, sdp: lines.join("\r\n") };
}

async function negotiate(offerer: RTCPeerConnection, answerer: RTCPeerConnection): Promise<void> {
  await offerer.setLocalDescription(await offerer.createOffer());
  await answerer.setRemoteDescription(await loopbackDescription(offerer));
  await answerer.setLocalDescription(await answerer.createAnswer());
  await offerer.setRemoteDescription(await loopbackDescription(answerer));
}

/** Sends `track` with the sender's worker; receives with the receiver's worker, set before negotiation. */
function sendAndReceive(pc: RTCPeerConnection, track: MediaStreamTrack, stream: MediaStream, me: Name): void {
  const sender = pc.addTrack(track, stream);
  sender.transform = new RTCRtpScriptTransform(worker(me), { role: "send", kind: "video" });
  const transceiver = pc.getTransceivers().find((t) => t.sender === sender)!;
  transceiver.receiver.transform = new RTCRtpScriptTransform(worker(me), { role: "receive", kind: "video" });
}

async function setup(): Promise<void> {
  const media = await navigator.mediaDevices.getUserMedia({ video: true });
  const track = media.getVideoTracks()[0]!;
  // alice <-> bob, both ways.
  const aliceBob = new RTCPeerConnection({ iceServers: [] });
  const bobAlice = new RTCPeerConnection({ iceServers: [] });
  sendAndReceive(aliceBob, track, media, "alice");
  sendAndReceive(bobAlice, track.clone(), media, "bob");
  await negotiate(aliceBob, bobAlice);
  // alice -> eve, a tap without keys: eve offers to receive, alice's addTrack transceiver answers.
  const eveAlice = new RTCPeerConnection({ iceServers: [] });
  const aliceEve = new RTCPeerConnection({ iceServers: [] });
  const tap = eveAlice.addTransceiver("video", { direction: "recvonly" });
  tap.receiver.transform = new RTCRtpScriptTransform(worker("eve"), { role: "receive", kind: "video" });
  const sender = aliceEve.addTrack(track.clone(), media);
  sender.transform = new RTCRtpScriptTransform(worker("alice"), { role: "send", kind: "video" });
  await negotiate(eveAlice, aliceEve);
  links.set("alice->bob", bobAlice);
  links.set("bob->alice", aliceBob);
  links.set("alice->eve", eveAlice);
}

/** Gives `names` the keys of `epoch` (as processing that epoch's commit would). */
function giveKeys(epoch: number, names: Name[]): void {
  for (const name of names) post(worker(name), { type: "keys", keys: epochKeys(epoch, name) });
}

/** framesDecoded of the receiving end of a link (getStats inbound-rtp). */
async function framesDecoded(link: string): Promise<number> {
  const report = await links.get(link)!.getStats();
  let frames = 0;
  report.forEach((s: { type: string; kind?: string; framesDecoded?: number }) => {
    if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded ?? 0;
  });
  return frames;
}

function stats(name: Name): Promise<TransformStats> {
  const w = worker(name);
  const id = ++nextId;
  return new Promise((resolve) => {
    const onMessage = (event: MessageEvent<SframeWorkerReply>) => {
      if (event.data.type !== "stats" || event.data.id !== id) return;
      w.removeEventListener("message", onMessage);
      resolve(event.data.stats);
    };
    w.addEventListener("message", onMessage);
    post(w, { type: "stats", id });
  });
}

function connectionStates(): Record<string, string> {
  return Object.fromEntries([...links].map(([name, pc]) => [name, pc.connectionState]));
}

Object.assign(globalThis, { callTest: { setup, giveKeys, framesDecoded, stats, connectionStates } });
