import { StoreUnavailableError } from "./errors.js";

/** How long a Redis command may take before its caller gets 503 (node-redis's own default). */
export const COMMAND_TIMEOUT_MS = 5000;

interface Pending {
  startedAt: number;
  reject(err: Error): void;
}

/**
 * One timer for every Redis command in flight, instead of node-redis's timer and AbortSignal per
 * command (`AbortSignal.timeout` plus its listener cost about 5 % of the DS's CPU per request,
 * measured with `npm run bench -- --only s1`). A command not answered within `timeoutMs` rejects
 * its caller with StoreUnavailableError (→ 503 + Retry-After) within a fifth of that more; node-redis
 * still owns the command (a reply that comes later is dropped, as with its own timeout).
 */
export class CommandDeadlines {
  /** Insertion order is start order: a sweep stops at the first command still in time. */
  private readonly pending = new Set<Pending>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly timeoutMs = COMMAND_TIMEOUT_MS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get inFlight(): number {
    return this.pending.size;
  }

  watch<T>(command: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const entry: Pending = { startedAt: this.now(), reject };
      this.pending.add(entry);
      if (!this.timer) {
        this.timer = setInterval(() => this.sweep(), Math.max(1, Math.floor(this.timeoutMs / 5)));
        this.timer.unref();
      }
      command.then(
        (value) => {
          this.pending.delete(entry);
          resolve(value);
        },
        (err: unknown) => {
          this.pending.delete(entry);
          reject(err);
        },
      );
    });
  }

  /** Rejects what is overdue; stops the timer when nothing is in flight. */
  sweep(): void {
    const overdue = this.now() - this.timeoutMs;
    for (const entry of this.pending) {
      if (entry.startedAt > overdue) break;
      this.pending.delete(entry);
      entry.reject(new StoreUnavailableError(`Redis store: no answer within ${this.timeoutMs} ms`));
    }
    if (this.pending.size === 0) this.stop();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * `client` with every promise-returning method watched; everything else (properties, builders
   * such as multi()) passed through. Methods run on the client itself (node-redis keeps private
   * state), and each wrapper is made once per method name.
   */
  wrap<C extends object>(client: C): C {
    const wrappers = new Map<PropertyKey, unknown>();
    return new Proxy(client, {
      get: (target, prop) => {
        const value = Reflect.get(target, prop, target) as unknown;
        if (typeof value !== "function") return value;
        let wrapper = wrappers.get(prop);
        if (!wrapper) {
          wrapper = (...args: unknown[]) => {
            const out = (Reflect.get(target, prop, target) as (...a: unknown[]) => unknown).apply(target, args);
            return out instanceof Promise ? this.watch(out) : out;
          };
          wrappers.set(prop, wrapper);
        }
        return wrapper;
      },
    });
  }
}
