import { CallKeys, DEFAULT_CALL_SUITE, type MlsClient, type SframeWorkerRequest } from "../../src/client/index.js";
import { h } from "../dom.js";
import { PeerLink } from "./link.js";
import { encodeSignal, type CallSignal, type CallSignalBody } from "./signal.js";

/** SFrame grace period of a call: frames in flight under the previous epoch still open for this long. */
const CALL_GRACE_MS = 3000;

const randomCallId = () =>
  btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(12))))
    .replace(/\+/g, "-")
    .replace(/\//g, "_");

/**
 * The call of one group, as this member sees it: who is in it (from the signals) and, once this
 * member is in it too, a mesh of PeerLinks. Every frame is SFrame-encrypted in one worker per
 * call, keyed by CallKeys from the group's MLS epochs: every commit (a join, a removal, a leave)
 * rotates the keys. Signals are handled one at a time, in the order they arrived.
 */
export class GroupCall {
  /** Other members in the call, by client id. */
  readonly participants = new Set<string>();
  readonly videos = new Map<string, HTMLVideoElement>();
  callId?: string;
  private media?: MediaStream;
  private worker?: Worker;
  private keys?: CallKeys;
  private readonly links = new Map<string, PeerLink>();
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly client: MlsClient,
    readonly groupId: string,
    private readonly changed: () => void,
    private readonly fail: (e: unknown) => void,
  ) {}

  get joined(): boolean {
    return this.worker !== undefined;
  }

  /** Starts a call in the group (or joins the one going on). */
  start(): Promise<void> {
    return this.serial(async () => {
      if (this.joined) return;
      const starting = this.participants.size === 0;
      this.callId ??= randomCallId();
      await this.enter();
      await this.signal({ type: starting ? "start" : "join", call: this.callId });
    });
  }

  join(): Promise<void> {
    return this.start();
  }

  /** Hangs up: tells the others (when still a member) and closes every link. */
  leave(tell = true): Promise<void> {
    return this.serial(async () => {
      if (!this.joined) return;
      const call = this.callId!;
      this.teardown();
      if (tell && this.client.groupIds().includes(this.groupId)) await this.signal({ type: "leave", call });
    });
  }

  /** Removed from the group: the keys are gone already (CallKeys), the links go too. */
  end(): void {
    this.participants.clear();
    this.teardown();
    this.callId = undefined;
  }

  onSignal(sender: string, signal: CallSignal): void {
    void this.serial(() => this.handle(sender, signal));
  }

  /** After a commit: members no longer in the group leave the call (their keys are already rotated away). */
  membersChanged(): void {
    void this.serial(async () => {
      const members = new Set(this.client.groupIds().includes(this.groupId) ? this.client.members(this.groupId) : []);
      for (const p of [...this.participants]) if (!members.has(p)) this.drop(p);
      this.changed();
    });
  }

  private async handle(sender: string, signal: CallSignal): Promise<void> {
    if (!this.client.groupIds().includes(this.groupId)) return;
    if (sender === this.client.id || !this.client.members(this.groupId).includes(sender)) return;
    switch (signal.type) {
      case "start":
      case "join":
        // One call per group: a second "start" (two members started at once) joins the same mesh.
        this.callId ??= signal.call;
        this.participants.add(sender);
        if (this.joined && !this.links.has(sender)) await this.offerTo(sender);
        break;
      case "offer":
        if (signal.to !== this.client.id || !this.joined) return;
        this.participants.add(sender);
        await this.answerTo(sender, signal.sdp);
        break;
      case "answer": {
        const link = this.links.get(sender);
        if (signal.to === this.client.id && link?.offering) await link.accept(signal.sdp);
        break;
      }
      case "leave":
        this.drop(sender);
        break;
    }
    if (this.participants.size === 0 && !this.joined) this.callId = undefined;
    this.changed();
  }

  private async enter(): Promise<void> {
    const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    const worker = new Worker(new URL("sframe-worker.js", location.href), { type: "module", name: "sframe" });
    const post = (message: SframeWorkerRequest) => worker.postMessage(message);
    post({ type: "configure", options: { suite: DEFAULT_CALL_SUITE, graceMs: CALL_GRACE_MS } });
    try {
      this.keys = await CallKeys.create(this.client, this.groupId, { graceMs: CALL_GRACE_MS }, (keys) =>
        post({ type: "keys", keys }),
      );
    } catch (e) {
      worker.terminate();
      for (const track of media.getTracks()) track.stop();
      throw e;
    }
    this.media = media;
    this.worker = worker;
    this.changed();
  }

  private newLink(remote: string): PeerLink {
    this.links.get(remote)?.close();
    const link = new PeerLink(
      remote,
      this.media!,
      this.worker!,
      (l) => this.showVideo(l),
      (l) => void this.serial(async () => this.links.get(l.remote) === l && this.closeLink(l.remote)),
    );
    this.links.set(remote, link);
    return link;
  }

  private async offerTo(remote: string): Promise<void> {
    const sdp = await this.newLink(remote).offer();
    await this.signal({ type: "offer", call: this.callId!, to: remote, sdp });
  }

  private async answerTo(remote: string, offer: string): Promise<void> {
    // Both sides offered at once: the smaller client id gives way and answers.
    if (this.links.get(remote)?.offering && this.client.id > remote) return;
    const sdp = await this.newLink(remote).answer(offer);
    await this.signal({ type: "answer", call: this.callId!, to: remote, sdp });
  }

  private showVideo(link: PeerLink): void {
    if (this.links.get(link.remote) !== link) return;
    let video = this.videos.get(link.remote);
    if (!video) {
      video = h("video", { "aria-label": `Video from ${link.remote}`, autoplay: true, playsinline: true });
      this.videos.set(link.remote, video);
    }
    if (video.srcObject !== link.stream) video.srcObject = link.stream;
    this.changed();
  }

  private drop(remote: string): void {
    this.participants.delete(remote);
    this.closeLink(remote);
  }

  private closeLink(remote: string): void {
    this.links.get(remote)?.close();
    this.links.delete(remote);
    const video = this.videos.get(remote);
    if (video) video.srcObject = null;
    this.videos.delete(remote);
    this.changed();
  }

  private teardown(): void {
    for (const remote of [...this.links.keys()]) this.closeLink(remote);
    for (const track of this.media?.getTracks() ?? []) track.stop();
    this.keys?.close();
    this.worker?.terminate();
    this.media = this.worker = this.keys = undefined;
    this.changed();
  }

  private async signal(body: CallSignalBody): Promise<void> {
    await this.client.send(this.groupId, encodeSignal(body));
  }

  private serial(work: () => Promise<unknown>): Promise<void> {
    const run = this.queue.then(work).then(
      () => undefined,
      (e: unknown) => this.fail(e),
    );
    this.queue = run;
    return run;
  }
}
