import { loadConfig } from "../../src/config/load.js";
import { ClientAuth } from "../../src/http/client-auth.js";
import { FakeClock } from "../helpers/clock.js";

const at = (iso: string) => Date.parse(iso);

describe("bearer token verification cache", () => {
  it("accepts a verified token again only until it expires, and never a different token text", async () => {
    const clock = new FakeClock(at("2030-01-01T00:00:00Z"));
    const auth = await ClientAuth.create(
      loadConfig({ overrides: { domain: "a.example", auth: { devTokenTtlSeconds: 5 } } }),
      clock,
    );
    const token = await auth.issueDevToken("alice@a.example/phone");
    expect((await auth.authenticate(`Bearer ${token}`)).client).toBe("alice@a.example/phone");
    expect((await auth.authenticate(`bearer ${token}`)).client).toBe("alice@a.example/phone");
    // A token differing in its signature is checked, not taken from the cache.
    const forged = token.slice(0, -2) + (token.endsWith("AA") ? "BB" : "AA");
    await expect(auth.authenticate(`Bearer ${forged}`)).rejects.toMatchObject({ code: "unauthenticated" });
    clock.advance(4000);
    expect((await auth.authenticate(`Bearer ${token}`)).client).toBe("alice@a.example/phone");
    // Past exp the cached verification does not help: the token is refused.
    clock.advance(2000);
    await expect(auth.authenticate(`Bearer ${token}`)).rejects.toMatchObject({ code: "unauthenticated" });
  });

  it("keeps accepting a long-lived token after its cache entry lapses, and another DS never does", async () => {
    const clock = new FakeClock(at("2030-01-01T00:00:00Z"));
    const a = await ClientAuth.create(loadConfig({ overrides: { domain: "a.example" } }), clock);
    const token = await a.issueDevToken("bob@a.example/laptop");
    expect((await a.authenticate(`Bearer ${token}`)).client).toBe("bob@a.example/laptop");
    // Another DS (different domain → different dev secret) never verified it and refuses it.
    const b = await ClientAuth.create(loadConfig({ overrides: { domain: "b.example" } }), clock);
    await expect(b.authenticate(`Bearer ${token}`)).rejects.toMatchObject({ code: "unauthenticated" });
    clock.advance(120_000);
    expect((await a.authenticate(`Bearer ${token}`)).client).toBe("bob@a.example/laptop");
  });
});
