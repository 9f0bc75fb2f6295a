import fc from "fast-check";
import {
  IDENTITY_SCHEMES,
  clientForIdentity,
  clientOfIdentity,
  identitiesFor,
  identityBytes,
  identityFor,
} from "../../src/mls/identity.js";

const UUID = "2f1e8a8c-4a3b-4c1d-9e2f-0123456789ab";
const hex = (n: bigint) => n.toString(16);
const uuidArb = fc.uuid().map((u) => u.toLowerCase());
const deviceArb = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map(hex);
const domainArb = fc.constantFrom("a.example", "b.example", "wire.com", "x-1.example.org");

describe("credential identity schemes", () => {
  it("maps a Wire qualified client id to user@domain/device and back", () => {
    expect(clientForIdentity(`${UUID}:6add501bacd1d90e@b.example`, "wire")).toBe(`${UUID}@b.example/6add501bacd1d90e`);
    expect(identityFor(`${UUID}@b.example/6add501bacd1d90e`, "wire")).toBe(`${UUID}:6add501bacd1d90e@b.example`);
  });

  it("round-trips every wire identity core-crypto can produce (uuid, 64-bit device, domain)", () => {
    fc.assert(
      fc.property(uuidArb, deviceArb, domainArb, (uuid, device, domain) => {
        const identity = `${uuid}:${device}@${domain}`;
        const client = clientForIdentity(identity, "wire");
        expect(client).toBe(`${uuid}@${domain}/${device}`);
        expect(identityFor(client!, "wire")).toBe(identity);
      }),
    );
  });

  it("round-trips fedgate identities unchanged", () => {
    for (const c of ["alice@a.example/phone", `${UUID}@b.example/1f`, "bob@b.example/*"]) {
      expect(clientForIdentity(c, "fedgate")).toBe(c);
      expect(identityFor(c, "fedgate")).toBe(c);
    }
  });

  it("refuses identities that are not exactly of the scheme's form", () => {
    const refusedWire = [
      `${UUID.toUpperCase()}:1@b.example`, // upper-case uuid: core-crypto never prints it
      `${UUID}:01@b.example`, // leading zero: two spellings of one device
      `${UUID}:12345678901234567@b.example`, // more than 64 bits
      `${UUID}:g@b.example`,
      `${UUID}:1@B.example`,
      `${UUID}:1@b.example/x`,
      `${UUID}@b.example/1`, // that is the client id, not the identity
      `not-a-uuid:1@b.example`,
      `${UUID}:1@`,
      "",
    ];
    for (const id of refusedWire) expect(clientForIdentity(id, "wire")).toBeUndefined();
    for (const id of ["alice@a.example", "alice@a.example/", "a b@a.example/1", `${UUID}:1@b.example`, "a@A.example/1"]) {
      expect(clientForIdentity(id, "fedgate")).toBeUndefined();
    }
    // A client id a scheme cannot express has no identity in it (no silent rewriting).
    expect(identityFor("alice@a.example/phone", "wire")).toBeUndefined();
    expect(identityFor(`${UUID}@b.example/0abc`, "wire")).toBeUndefined();
    expect(() => identityBytes("alice@a.example/phone", "wire")).toThrow(/cannot be expressed/);
  });

  it("reads bytes under a list of schemes, refusing invalid UTF-8 and unlisted forms", () => {
    const wire = new TextEncoder().encode(`${UUID}:2a@b.example`);
    expect(clientOfIdentity(wire, ["fedgate", "wire"])).toEqual({ client: `${UUID}@b.example/2a`, scheme: "wire" });
    expect(clientOfIdentity(wire, ["fedgate"])).toBeUndefined();
    expect(clientOfIdentity(Uint8Array.of(0xc3, 0x28), IDENTITY_SCHEMES)).toBeUndefined();
  });

  it("gives the forms of no two schemes to one identity (the order of the list never matters)", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), uuidArb, deviceArb, (s, uuid, device) => {
        for (const id of [s, `${uuid}:${device}@a.example`, `${uuid}@a.example/${device}`]) {
          const readers = IDENTITY_SCHEMES.filter((sc) => clientForIdentity(id, sc) !== undefined);
          expect(readers.length).toBeLessThanOrEqual(1);
        }
      }),
    );
  });

  it("lists every identity form a client may use under the accepted schemes", () => {
    expect(identitiesFor(`${UUID}@b.example/7`, ["fedgate", "wire"])).toEqual({
      fedgate: `${UUID}@b.example/7`,
      wire: `${UUID}:7@b.example`,
    });
    expect(identitiesFor("alice@a.example/phone", ["fedgate", "wire"])).toEqual({ fedgate: "alice@a.example/phone" });
  });
});
