import type { MediaKind } from "../../src/client/index.js";

/** How long a description waits for ICE gathering before it is sent with what it has. */
const GATHER_TIMEOUT_MS = 3000;

/**
 * A page served from a loopback address is a local demo or test: every participant runs on this
 * machine, so only loopback candidates are sent or accepted and no packet leaves the host.
 */
export const loopbackOnly = (hostname = location.hostname): boolean =>
  hostname === "localhost" || hostname === "[::1]" || hostname === "::1" || /^127(\.\d{1,3}){3}$/.test(hostname);

function isLoopbackCandidate(line: string): boolean {
  const address = line.split(" ")[4];
  return address === "127.0.0.1" || address === "::1";
}

/** An SDP with the candidates this page may use (all of them, or loopback only). */
export function usableCandidates(sdp: string, onlyLoopback = loopbackOnly()): string {
  if (!onlyLoopback) return sdp;
  return sdp
    .split("\r\n")
    .filter((l) => !l.startsWith("a=candidate:") || isLoopbackCandidate(l))
    .join("\r\n");
}

/**
 * The WebRTC link to one other participant: our camera and microphone out, theirs in, every
 * frame through the call's SFrame worker both ways. Candidates travel inside the descriptions
 * (no trickle), so a link costs two signalling messages.
 */
export class PeerLink {
  readonly pc = new RTCPeerConnection({ iceServers: [] });
  readonly stream = new MediaStream();

  constructor(
    readonly remote: string,
    media: MediaStream,
    worker: Worker,
    onTrack: (link: PeerLink) => void,
    onFailed: (link: PeerLink) => void,
  ) {
    for (const track of media.getTracks()) {
      const kind = track.kind as MediaKind;
      const sender = this.pc.addTrack(track, media);
      sender.transform = new RTCRtpScriptTransform(worker, { role: "send", kind });
      // Chromium bypasses a receive transform set in ontrack: set it now, before any remote description.
      const transceiver = this.pc.getTransceivers().find((t) => t.sender === sender)!;
      transceiver.receiver.transform = new RTCRtpScriptTransform(worker, { role: "receive", kind });
    }
    this.pc.addEventListener("track", (ev) => {
      this.stream.addTrack(ev.track);
      onTrack(this);
    });
    this.pc.addEventListener("connectionstatechange", () => {
      if (this.pc.connectionState === "failed") onFailed(this);
    });
  }

  get offering(): boolean {
    return this.pc.signalingState === "have-local-offer";
  }

  async offer(): Promise<string> {
    await this.pc.setLocalDescription();
    return this.localSdp();
  }

  async answer(offerSdp: string): Promise<string> {
    await this.pc.setRemoteDescription({ type: "offer", sdp: usableCandidates(offerSdp) });
    await this.pc.setLocalDescription();
    return this.localSdp();
  }

  async accept(answerSdp: string): Promise<void> {
    await this.pc.setRemoteDescription({ type: "answer", sdp: usableCandidates(answerSdp) });
  }

  close(): void {
    this.pc.close();
    for (const track of this.stream.getTracks()) track.stop();
  }

  /** The local description once gathering is complete (or timed out), with usable candidates only. */
  private async localSdp(): Promise<string> {
    if (this.pc.iceGatheringState !== "complete") {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, GATHER_TIMEOUT_MS);
        this.pc.addEventListener("icegatheringstatechange", () => {
          if (this.pc.iceGatheringState === "complete") resolve(clearTimeout(timer));
        });
      });
    }
    return usableCandidates(this.pc.localDescription!.sdp);
  }
}
