import type { Response } from "express";
import { DsError } from "../errors.js";

/**
 * Concurrent long-lived requests (SSE streams, long-polls) per client on this replica. A slot is
 * taken when the request starts waiting and given back when its response closes, however it ends.
 */
export class StreamCap {
  private readonly open = new Map<string, number>();

  constructor(
    private readonly kind: "sse" | "long_poll",
    private readonly limit: number,
    private readonly setting: string,
  ) {}

  /** Takes a slot for `client` until `res` closes, or throws 429 stream_limit. */
  hold(client: string, res: Response): void {
    const count = this.open.get(client) ?? 0;
    if (count >= this.limit) {
      const what = this.kind === "sse" ? "inbox streams" : "inbox long-polls";
      throw new DsError("stream_limit", `this client already holds ${this.limit} open ${what} (${this.setting})`, {
        kind: this.kind,
        limit: this.limit,
      });
    }
    this.open.set(client, count + 1);
    let released = false;
    res.once("close", () => {
      if (released) return;
      released = true;
      const left = (this.open.get(client) ?? 1) - 1;
      if (left > 0) this.open.set(client, left);
      else this.open.delete(client);
    });
  }

  held(client: string): number {
    return this.open.get(client) ?? 0;
  }
}
