import { CommandDeadlines } from "../../src/store/command-deadlines.js";
import { StoreUnavailableError } from "../../src/store/errors.js";

describe("CommandDeadlines (one timer for every Redis command in flight)", () => {
  it("passes answers and errors through and forgets the command", async () => {
    const d = new CommandDeadlines(1000, () => 0);
    await expect(d.watch(Promise.resolve(7))).resolves.toBe(7);
    await expect(d.watch(Promise.reject(new Error("ERR x")))).rejects.toThrow("ERR x");
    expect(d.inFlight).toBe(0);
    d.stop();
  });

  it("rejects only the overdue commands with StoreUnavailableError (→ 503), oldest first", async () => {
    let now = 0;
    const d = new CommandDeadlines(1000, () => now);
    const never = new Promise<number>(() => {});
    const first = d.watch(never);
    now = 600;
    const second = d.watch(never);
    now = 1000;
    d.sweep();
    await expect(first).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(d.inFlight).toBe(1);
    now = 1599;
    d.sweep();
    expect(d.inFlight).toBe(1);
    now = 1600;
    d.sweep();
    await expect(second).rejects.toThrow(/no answer within 1000 ms/);
    expect(d.inFlight).toBe(0);
  });

  it("sweeps on its own timer", async () => {
    const d = new CommandDeadlines(50);
    await expect(d.watch(new Promise(() => {}))).rejects.toBeInstanceOf(StoreUnavailableError);
    d.stop();
  });

  it("wraps a client: promise-returning methods watched on the client itself, the rest passed through", async () => {
    let now = 0;
    const d = new CommandDeadlines(1000, () => now);
    class Client {
      #secret = 41;
      ready = true;
      get(): Promise<number> {
        return Promise.resolve(this.#secret + 1);
      }
      hang(): Promise<number> {
        return new Promise(() => {});
      }
      multi(): { n: number } {
        return { n: this.#secret };
      }
    }
    const wrapped = d.wrap(new Client());
    expect(wrapped.ready).toBe(true);
    await expect(wrapped.get()).resolves.toBe(42);
    expect(wrapped.multi()).toEqual({ n: 41 });
    expect(wrapped.get).toBe(wrapped.get);
    const hung = wrapped.hang();
    now = 1000;
    d.sweep();
    await expect(hung).rejects.toBeInstanceOf(StoreUnavailableError);
  });
});
