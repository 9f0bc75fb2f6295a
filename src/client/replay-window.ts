/**
 * Counter-based anti-replay for one KID, adapted from RFC 3711 §3.3.2 as RFC 9605 §9.3 suggests:
 * the highest CTR accepted and a bitmap of the `size` counters below it. A CTR is refused when it
 * was already accepted or falls below the window (too old to tell).
 */
export class ReplayWindow {
  private highest = -1n;
  private seen = 0n; // bit i set: highest - i was accepted
  private readonly mask: bigint;

  constructor(private readonly size: number) {
    this.mask = (1n << BigInt(size)) - 1n;
  }

  /** Why `ctr` would be refused, or undefined if it is fresh. Does not record it. */
  check(ctr: bigint): "replayed" | "too_old" | undefined {
    if (ctr > this.highest) return undefined;
    const behind = this.highest - ctr;
    if (behind >= BigInt(this.size)) return "too_old";
    return (this.seen >> behind) & 1n ? "replayed" : undefined;
  }

  /** Records `ctr` (after its frame authenticated); returns false if it had to be refused. */
  accept(ctr: bigint): boolean {
    if (this.check(ctr) !== undefined) return false;
    if (ctr > this.highest) {
      const shift = ctr - this.highest;
      this.seen = shift >= BigInt(this.size) ? 1n : ((this.seen << shift) | 1n) & this.mask;
      this.highest = ctr;
    } else {
      this.seen |= 1n << (this.highest - ctr);
    }
    return true;
  }
}
