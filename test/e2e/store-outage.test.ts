/**
 * A store outage is not a bug of the request: node-redis connection errors and Redis's transient
 * refusals (LOADING after a restart, NOREPLICAS under min-replicas-to-write, READONLY during a
 * failover, …) answer 503 `unavailable` with Retry-After, so clients and load balancers retry;
 * anything else the store throws stays a 500 `internal`.
 */
import {
  BlobError,
  ClientClosedError,
  DisconnectsClientError,
  ErrorReply,
  MaxCommandRedirectionsError,
  SimpleError,
  SocketClosedUnexpectedlyError,
  TimeoutError,
} from "redis";
import { StoreUnavailableError } from "../../src/store/errors.js";
import { MlsClient } from "../../src/client/index.js";
import { MemoryStore } from "../../src/store/memory.js";
import { startProvider, stopAll, type Provider } from "../helpers/providers.js";

describe("store outages answer 503 unavailable", () => {
  let a: Provider;
  let alice: MlsClient;
  let failure: Error | undefined;

  beforeAll(async () => {
    const store = new MemoryStore();
    const faulty = new Proxy(store, {
      get(target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== "function") return value;
        const fn = (value as (...args: unknown[]) => Promise<unknown>).bind(target);
        if (prop !== "listKeyPackages") return fn;
        return async (...args: unknown[]) => {
          if (failure) throw failure;
          return fn(...args);
        };
      },
    });
    a = await startProvider("a.example", {}, { store: faulty });
    alice = await MlsClient.connect(a.url, "alice@a.example/phone");
  });
  afterAll(() => stopAll([a]));

  const call = async () => {
    const res = await fetch(`${a.url}/v1/key-packages`, { headers: { authorization: `Bearer ${await token()}` } });
    return {
      status: res.status,
      retryAfter: res.headers.get("retry-after"),
      body: (await res.json()) as { error?: { code: string } },
    };
  };
  // One token for every call (a failed token request must show as itself, not as a 401 later).
  let bearer: string | undefined;
  const token = async () => {
    if (bearer) return bearer;
    const res = await fetch(`${a.url}/v1/dev/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ client: alice.id }),
    });
    if (res.status !== 200) throw new Error(`dev token: ${res.status} ${await res.text()}`);
    bearer = ((await res.json()) as { token: string }).token;
    return bearer;
  };

  it.each([
    ["a dropped connection", () => new SocketClosedUnexpectedlyError()],
    ["a closed client", () => new ClientClosedError()],
    ["a refused connection", () => Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6379"), { code: "ECONNREFUSED" })],
    ["Redis replaying its AOF", () => new ErrorReply("LOADING Redis is loading the dataset in memory")],
    ["too few replicas", () => new ErrorReply("NOREPLICAS Not enough good replicas to write.")],
    ["a demoted master", () => new ErrorReply("READONLY You can't write against a read only replica.")],
    // node-redis 5 answers simple error replies (`-LOADING …`) as SimpleError, a subclass of ErrorReply.
    ["LOADING as node-redis delivers it", () => new SimpleError("LOADING Redis is loading the dataset in memory")],
    ["a replica cut off from its master", () => new SimpleError("MASTERDOWN Link with MASTER is down")],
    ["a cluster resharding", () => new SimpleError("TRYAGAIN Multiple keys request during rehashing of slot")],
    ["a long script", () => new BlobError("BUSY Redis is busy running a script.")],
    ["a failed background save", () => new SimpleError("MISCONF Redis is configured to save RDB snapshots, but …")],
    ["a command timeout", () => new TimeoutError("Command timeout")],
    ["a cluster without a master for a slot", () => new SimpleError("CLUSTERDOWN The cluster is down")],
    ["a cluster master gone mid-failover", () => new DisconnectsClientError()],
    ["cluster redirections exhausted", () => new MaxCommandRedirectionsError("MOVED 12182 127.0.0.1:7002")],
    ["too few replicas acknowledged (store.waitReplicas)", () => new StoreUnavailableError("only 0 of 1 replicas")],
  ])("%s → 503 unavailable with Retry-After", async (_what, make) => {
    failure = make();
    expect(await call()).toMatchObject({ status: 503, retryAfter: "1", body: { error: { code: "unavailable" } } });
  });

  it("keeps other store errors a 500, and recovers when the store does", async () => {
    failure = new ErrorReply("ERR unknown command");
    expect(await call()).toMatchObject({ status: 500, body: { error: { code: "internal" } } });
    failure = new SimpleError("BUSYKEY Target key name already exists.");
    expect(await call()).toMatchObject({ status: 500, body: { error: { code: "internal" } } });
    failure = undefined;
    expect(await call()).toMatchObject({ status: 200 });
  });
});
