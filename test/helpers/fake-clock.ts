import type { CallClock } from "../../src/client/sframe-key-ring.js";

/** A clock tests move by hand; timers fire inside advance(), in order. */
export class FakeClock implements CallClock {
  private time = 1_000_000;
  private timers: { at: number; fn: () => void; live: boolean }[] = [];

  now(): number {
    return this.time;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const timer = { at: this.time + ms, fn, live: true };
    this.timers.push(timer);
    return () => {
      timer.live = false;
    };
  }

  advance(ms: number): void {
    this.time += ms;
    const due = this.timers.filter((t) => t.live && t.at <= this.time).sort((a, b) => a.at - b.at);
    this.timers = this.timers.filter((t) => t.live && t.at > this.time);
    for (const t of due) t.fn();
  }

  pendingTimers(): number {
    return this.timers.filter((t) => t.live).length;
  }
}
