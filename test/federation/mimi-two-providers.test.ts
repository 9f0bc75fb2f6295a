import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MlsClient, type MlsEvent } from "../../src/client/index.js";
import { startMixedFederation, type MimiProvider } from "../helpers/mimi.js";
import { stopAll } from "../helpers/providers.js";
import type { TestPki } from "../helpers/pki.js";

const texts = (events: MlsEvent[]) => events.flatMap((e) => (e.kind === "message" ? [e.text] : []));

describe("two providers federated over the MIMI binding (draft-ietf-mimi-protocol-06)", () => {
  let providers: MimiProvider[];
  let pki: TestPki;
  let a: MimiProvider, b: MimiProvider;
  let alice: MlsClient, bob: MlsClient, bob2: MlsClient, carol: MlsClient;
  let groupId: string;

  beforeAll(async () => {
    ({ providers, pki } = await startMixedFederation(["a.example", "b.example"], () => "mimi"));
    [a, b] = providers as [MimiProvider, MimiProvider];
    alice = await MlsClient.connect(a.url, "alice@a.example/phone", { commitFormat: "public" });
    bob = await MlsClient.connect(b.url, "bob@b.example/laptop", { commitFormat: "public" });
    carol = await MlsClient.connect(b.url, "carol@b.example/phone", { commitFormat: "public" });
    for (const cl of [alice, bob, carol]) await cl.publishKeyPackages(3, { lastResort: true });
  });
  afterAll(async () => {
    await stopAll(providers);
    pki.dispose();
  });

  it("claims KeyPackages over keyMaterial with suite negotiation and MIMI's user codes", async () => {
    const answer = await alice.api.claim("bob@b.example", [2, 1]);
    expect(answer).toMatchObject({ user: "bob@b.example", version: "mls10", cipherSuite: 1, missing: [] });
    expect(answer.bundles.map((x) => x.client)).toEqual(["bob@b.example/laptop"]);
    // partialSuccess: a device without KeyPackages is reported keyMaterialExhausted → missing "exhausted".
    const dave = await MlsClient.connect(b.url, "dave@b.example/one");
    await dave.publishKeyPackages(1);
    await MlsClient.connect(b.url, "dave@b.example/two");
    const partial = await alice.api.claim("dave@b.example", [1]);
    expect(partial.bundles.map((x) => x.client)).toEqual(["dave@b.example/one"]);
    expect(partial.missing).toEqual([{ client: "dave@b.example/two", reason: "exhausted" }]);
    // noCompatibleMaterial with every client exhausted → no_key_package.
    await expect(alice.api.claim("dave@b.example", [1])).rejects.toMatchObject({ status: 404, code: "no_key_package" });
    await expect(alice.api.claim("nobody@b.example", [1])).rejects.toMatchObject({ status: 404, code: "unknown_user" });
    await expect(alice.api.claim("bob@b.example", [2])).rejects.toMatchObject({ status: 409, code: "no_common_cipher_suite" });
    const peer = (await alice.api.peer("b.example")) as unknown as { protocol: string; directory: Record<string, string> };
    expect(peer).toMatchObject({ domain: "b.example", protocol: "mimi" });
    expect(peer.directory.keyMaterial).toBe(`${b.mimiUrl}/mimi/v1/keyMaterial/{targetUser}`);
  });

  it("adds members of B to a group hubbed on A; they join from Welcomes delivered by notify", async () => {
    groupId = await alice.createGroup();
    await alice.addUsers(groupId, ["bob@b.example", "carol@b.example"]);
    for (const cl of [bob, carol]) {
      const events = await cl.syncUntil((ev) => ev.some((e) => e.kind === "joined"));
      expect(events).toContainEqual(expect.objectContaining({ kind: "joined", groupId }));
    }
    const fromB = await bob.api.group(groupId);
    expect(fromB).toMatchObject({ hub: "a.example", epoch: 1 });
    expect(fromB.members.sort()).toEqual(["bob@b.example/laptop", "carol@b.example/phone"]);
  });

  it("carries messages both ways: submitMessage to the hub, notify back to the follower", async () => {
    await alice.send(groupId, "hi from A");
    await bob.send(groupId, "hi from B");
    expect(texts(await alice.syncUntil((ev) => texts(ev).length >= 1))).toEqual(["hi from B"]);
    expect(texts(await carol.syncUntil((ev) => texts(ev).length >= 2)).sort()).toEqual(["hi from A", "hi from B"]);
    const mine = await bob.syncUntil((ev) => texts(ev).length >= 1);
    expect(texts(mine)).toEqual(["hi from A"]);
  });

  it("answers a follower's losing commit with wrongEpoch, which its client sees as stale_epoch and recovers from", async () => {
    for (let round = 0; round < 2; round++) {
      const results = await Promise.allSettled([alice.update(groupId), bob.update(groupId), carol.update(groupId)]);
      expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "fulfilled"]);
      const epochs = results.map((r) => (r.status === "fulfilled" ? r.value.epoch : -1));
      expect(new Set(epochs).size).toBe(3);
      const retried = results.some((r) => r.status === "fulfilled" && r.value.attempts > 1);
      expect(retried).toBe(true);
    }
    const deadline = Date.now() + 10_000;
    while (new Set([alice, bob, carol].map((cl) => cl.epoch(groupId))).size > 1 && Date.now() < deadline) {
      for (const cl of [alice, bob, carol]) await cl.sync({ waitMs: 100 });
    }
    expect(new Set([alice, bob, carol].map((cl) => cl.epoch(groupId))).size).toBe(1);
    await carol.send(groupId, "after the race");
    await alice.syncUntil((ev) => texts(ev).includes("after the race"));
    await bob.syncUntil((ev) => texts(ev).includes("after the race"));
  });

  it("lets a new device of bob join externally with the hub's GroupInfo fetched over groupInfo", async () => {
    bob2 = await MlsClient.connect(b.url, "bob@b.example/tablet", { commitFormat: "public" });
    const { epoch } = await bob2.joinExternal(groupId);
    for (const cl of [alice, bob, carol]) {
      await cl.syncUntil((ev) => ev.some((e) => e.kind === "commit" && e.epoch === epoch));
    }
    await bob2.send(groupId, "tablet here");
    await alice.syncUntil((ev) => texts(ev).includes("tablet here"));
  });

  it("removes a member of B through a commit from A; the removed client gets its removal and nothing after", async () => {
    await alice.removeClients(groupId, ["carol@b.example/phone"]);
    const gone = await carol.syncUntil((ev) => ev.some((e) => e.kind === "removed"));
    expect(gone).toContainEqual(expect.objectContaining({ kind: "removed", groupId }));
    await bob.syncUntil((ev) => ev.some((e) => e.kind === "commit"));
    await alice.send(groupId, "carol is out");
    await bob.syncUntil((ev) => texts(ev).includes("carol is out"));
    const view = await bob.api.group(groupId);
    expect(view.members).not.toContain("carol@b.example/phone");
    expect(await carol.sync({ waitMs: 300 })).toEqual([]);
  });

  it("carries a proposal with update and orders the commit that includes it by reference", async () => {
    await bob2.syncUntil(() => bob2.epoch(groupId) === alice.epoch(groupId));
    // leave() sends a Remove proposal for its own leaf (a PublicMessage): MIMI carries it with update.
    await bob2.leave(groupId);
    await bob.syncUntil((ev) => ev.some((e) => e.kind === "proposal"));
    await alice.syncUntil((ev) => ev.some((e) => e.kind === "proposal"));
    const { epoch } = await bob.update(groupId);
    await alice.syncUntil((ev) => ev.some((e) => e.kind === "commit" && e.epoch === epoch));
    expect((await alice.api.group(groupId)).members).not.toContain("bob@b.example/tablet");
    await alice.send(groupId, "tablet gone");
    expect(texts(await bob.syncUntil((ev) => texts(ev).length >= 1))).toEqual(["tablet gone"]);
  });

  it("refuses a lease over MIMI, which has no ordering lock", async () => {
    await expect(bob.api.lease(groupId, 1000)).rejects.toMatchObject({ status: 400, code: "bad_request" });
  });

  it("passes the conformance suite with --protocol mimi (same federation; its clients have ids of their own)", async () => {
    const { runConformance, printTable } = await import("../../src/client/conformance.js");
    const results = await runConformance({
      a: a.url,
      b: b.url,
      protocol: "mimi",
      mimiA: a.mimiUrl,
      mimiB: b.mimiUrl,
      mimiCa: a.ca.cert,
    });
    const failed = results.filter((r) => !r.ok);
    if (failed.length > 0) throw new Error(printTable(results));
    expect(results.map((r) => r.name)).toContain("a MIMI request without a client certificate is refused");
  }, 60_000);

  it("passes the conformance suite through the CLI, as docs/MIMI.md tells an implementer (`mls-fedgate conformance --protocol mimi`)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mlsfg-mimi-ca-"));
    const caFile = join(dir, "ca.pem");
    writeFileSync(caFile, a.ca.cert);
    const args = ["conformance", "--a", a.url, "--b", b.url, "--protocol", "mimi"];
    args.push("--mimi-a", a.mimiUrl, "--mimi-b", b.mimiUrl, "--mimi-ca", caFile);
    const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 55_000);
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    clearTimeout(timer);
    expect({ code, tail: out.slice(-600) }).toMatchObject({ code: 0 });
    expect(out).toMatch(/PASS {2}a MIMI request without a client certificate is refused/);
    expect(out).toMatch(/ 0 failed/);
  }, 60_000);
});
