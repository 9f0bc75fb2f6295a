import { EntryCache } from "../../src/store/entry-cache.js";
import type { EntryBody } from "../../src/store/port.js";

const entry = (seq: number, bytes = 100): EntryBody => ({
  seq,
  kind: "application",
  epoch: 0,
  sender: "a@a.example/1",
  message: "x".repeat(bytes),
  sha256: "ab",
});

describe("EntryCache", () => {
  it("serves what was put, by group and seq", () => {
    const cache = new EntryCache(1 << 20);
    const e = entry(1);
    cache.set("g1", e);
    expect(cache.get("g1", 1)).toBe(e);
    expect(cache.get("g2", 1)).toBeUndefined();
    expect(cache.get("g1", 2)).toBeUndefined();
  });

  it("stays within its byte budget, dropping the oldest entries first", () => {
    const cache = new EntryCache(10_000);
    for (let seq = 1; seq <= 100; seq++) cache.set("g", entry(seq, 1000));
    expect(cache.heldBytes).toBeLessThanOrEqual(10_000);
    expect(cache.size).toBeGreaterThan(0);
    expect(cache.get("g", 100)).toBeDefined();
    expect(cache.get("g", 1)).toBeUndefined();
  });

  it("keeps nothing larger than the budget, nothing at all with a budget of 0, and forgets everything on clear", () => {
    const cache = new EntryCache(500);
    cache.set("g", entry(1, 1000));
    expect(cache.size).toBe(0);
    const none = new EntryCache(0);
    none.set("g", entry(1, 1));
    expect(none.get("g", 1)).toBeUndefined();
    cache.set("g", entry(2, 10));
    cache.clear();
    expect(cache.get("g", 2)).toBeUndefined();
    expect(cache.heldBytes).toBe(0);
  });

  it("counts a replaced entry once", () => {
    const cache = new EntryCache(1 << 20);
    cache.set("g", entry(1));
    const once = cache.heldBytes;
    cache.set("g", entry(1));
    expect(cache.heldBytes).toBe(once);
  });
});
