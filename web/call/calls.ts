import type { MlsClient } from "../../src/client/index.js";
import { GroupCall } from "./group-call.js";
import { parseSignal } from "./signal.js";

/** Every group's call on this page, fed by the message stream. */
export class Calls {
  private readonly calls = new Map<string, GroupCall>();

  constructor(
    private readonly client: MlsClient,
    private readonly changed: (groupId: string) => void,
    private readonly fail: (e: unknown) => void,
  ) {}

  of(groupId: string): GroupCall {
    let call = this.calls.get(groupId);
    if (!call) {
      call = new GroupCall(this.client, groupId, () => this.changed(groupId), this.fail);
      this.calls.set(groupId, call);
    }
    return call;
  }

  /** Takes an application message that is a call signal (true), or leaves it to the chat (false). */
  onMessage(groupId: string, sender: string, text: string): boolean {
    const signal = parseSignal(text);
    if (signal) this.of(groupId).onSignal(sender, signal);
    return signal !== undefined;
  }

  membersChanged(groupId: string): void {
    this.calls.get(groupId)?.membersChanged();
  }

  /** This member is out of the group (removed, or left): its call ends here. */
  end(groupId: string): void {
    this.calls.get(groupId)?.end();
    this.calls.delete(groupId);
  }

  endAll(): void {
    for (const groupId of [...this.calls.keys()]) this.end(groupId);
  }
}
