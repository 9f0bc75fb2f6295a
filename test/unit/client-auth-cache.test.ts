import { jest } from "@jest/globals";
import { loadConfig } from "../../src/config/load.js";
import { ClientAuth } from "../../src/http/client-auth.js";

describe("bearer token verification cache", () => {
  afterEach(() => jest.useRealTimers());

  it("accepts a verified token again only until it expires, and never a different token text", async () => {
    jest.useFakeTimers({ now: new Date("2030-01-01T00:00:00Z"), doNotFake: ["nextTick", "setImmediate", "queueMicrotask"] });
    const auth = await ClientAuth.create(loadConfig({ overrides: { domain: "a.example", auth: { devTokenTtlSeconds: 5 } } }));
    const token = await auth.issueDevToken("alice@a.example/phone");
    expect((await auth.authenticate(`Bearer ${token}`)).client).toBe("alice@a.example/phone");
    expect((await auth.authenticate(`bearer ${token}`)).client).toBe("alice@a.example/phone");
    // A token differing in its signature is checked, not taken from the cache.
    const forged = token.slice(0, -2) + (token.endsWith("AA") ? "BB" : "AA");
    await expect(auth.authenticate(`Bearer ${forged}`)).rejects.toMatchObject({ code: "unauthenticated" });
    jest.setSystemTime(new Date("2030-01-01T00:00:04Z"));
    expect((await auth.authenticate(`Bearer ${token}`)).client).toBe("alice@a.example/phone");
    // Past exp the cached verification does not help: the token is refused.
    jest.setSystemTime(new Date("2030-01-01T00:00:06Z"));
    await expect(auth.authenticate(`Bearer ${token}`)).rejects.toMatchObject({ code: "unauthenticated" });
  });

  it("keeps accepting a long-lived token after its cache entry lapses, and another DS never does", async () => {
    jest.useFakeTimers({ now: new Date("2030-01-01T00:00:00Z"), doNotFake: ["nextTick", "setImmediate", "queueMicrotask"] });
    const a = await ClientAuth.create(loadConfig({ overrides: { domain: "a.example" } }));
    const token = await a.issueDevToken("bob@a.example/laptop");
    expect((await a.authenticate(`Bearer ${token}`)).client).toBe("bob@a.example/laptop");
    // Another DS (different domain → different dev secret) never verified it and refuses it.
    const b = await ClientAuth.create(loadConfig({ overrides: { domain: "b.example" } }));
    await expect(b.authenticate(`Bearer ${token}`)).rejects.toMatchObject({ code: "unauthenticated" });
    jest.setSystemTime(new Date("2030-01-01T00:02:00Z"));
    expect((await a.authenticate(`Bearer ${token}`)).client).toBe("bob@a.example/laptop");
  });
});
