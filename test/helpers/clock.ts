import type { Clock } from "../../src/clock.js";

/** Time that moves only when the test says so (unit tests of expiry: no sleeping). */
export class FakeClock implements Clock {
  constructor(private ms = 1_800_000_000_000) {}
  nowMs(): number {
    return this.ms;
  }
  nowSeconds(): number {
    return Math.floor(this.ms / 1000);
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}

/**
 * Wall time plus an offset the test can move forward: for whole DS processes in a test, where
 * tokens, timers and peers need time to run normally, but an expiry should come at once instead
 * of after a sleep.
 */
export class SteppableClock implements Clock {
  private offsetMs = 0;
  nowMs(): number {
    return Date.now() + this.offsetMs;
  }
  nowSeconds(): number {
    return Math.floor(this.nowMs() / 1000);
  }
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}
