/**
 * The one place that reads the wall clock. Everything else takes a Clock (AppContext passes one
 * to every part; tests pass a fake and move time on instead of sleeping). No Node imports: the
 * client SDK uses it too.
 */
export interface Clock {
  nowMs(): number;
  nowSeconds(): number;
}

export const systemClock: Clock = {
  nowMs: () => Date.now(),
  nowSeconds: () => Math.floor(Date.now() / 1000),
};
