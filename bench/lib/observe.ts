import { createClient, type RedisClientType } from "redis";

/** Sum of a Prometheus counter's samples whose labels match `labels` (from GET /metrics). */
export async function counter(baseUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[3] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[4]);
  }
  return sum;
}

export async function redisClient(url: string): Promise<RedisClientType> {
  const c = createClient({ url }) as RedisClientType;
  await c.connect();
  return c;
}

/** INFO commandstats → command → calls (commands run inside Lua scripts are counted too). */
export async function commandStats(c: RedisClientType): Promise<Record<string, number>> {
  const text = await c.info("commandstats");
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

export function diffStats(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
}

export async function usedMemory(c: RedisClientType): Promise<number> {
  const text = await c.info("memory");
  return Number(/^used_memory:(\d+)/m.exec(text)?.[1] ?? NaN);
}

/**
 * Counts inbox wake-ups (the store PUBLISHes one per inbox append that added an entry) on every
 * channel under `prefixes`; `waitFor(n)` resolves with the time the n-th arrived after `reset()`.
 */
export class WakeCounter {
  private count = 0;
  private target = Infinity;
  private resolve?: (t: number) => void;
  private constructor(private readonly sub: RedisClientType) {}

  static async start(url: string, prefixes: string[]): Promise<WakeCounter> {
    const sub = await redisClient(url);
    const w = new WakeCounter(sub);
    for (const p of prefixes) await sub.pSubscribe(`${p}:{c:*}:in:wake`, () => w.hit());
    return w;
  }

  private hit(): void {
    this.count++;
    if (this.count >= this.target && this.resolve) {
      const r = this.resolve;
      this.resolve = undefined;
      r(performance.now());
    }
  }

  reset(): void {
    this.count = 0;
    this.target = Infinity;
  }

  get seen(): number {
    return this.count;
  }

  waitFor(n: number, timeoutMs: number): Promise<number> {
    this.target = n;
    if (this.count >= n) return Promise.resolve(performance.now());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.resolve = undefined;
        reject(new Error(`only ${this.count} of ${n} inbox wake-ups within ${timeoutMs} ms`));
      }, timeoutMs);
      this.resolve = (t) => {
        clearTimeout(timer);
        resolve(t);
      };
    });
  }

  async close(): Promise<void> {
    await this.sub.close();
  }
}
