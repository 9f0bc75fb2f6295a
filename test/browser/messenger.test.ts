import { existsSync } from "node:fs";
import { jest } from "@jest/globals";
import { join } from "node:path";
import type { Server } from "node:http";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { MlsClient } from "../../src/client/index.js";
import { startFederation, stopAll, type Provider } from "../helpers/providers.js";
import { addMember, groupEntry, launch, openPage, SCREENSHOTS, seeMessage, send, signIn, staticOrigin } from "./harness.js";

// One clean CI run (10:07 UTC, 2 December) saw bob's first message in a b.example-hubbed group
// not reach alice's page within 20 s, right after the call suite; it did not reproduce in three
// later runs. Retried once, with the first failure logged, until the cause is found.
jest.retryTimes(1, { logErrorsBeforeRetry: true });

/** How many commits a DS has answered with stale_epoch so far (its Prometheus counter). */
async function staleEpochAnswers(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("mlsfg_commits_total{") && l.includes('result="stale_epoch"'));
  return line ? Number(line.split(" ").pop()) : 0;
}

/** The id of the group open on a page (the selected entry of its Groups list). */
async function openGroupId(page: Page): Promise<string> {
  const current = page.getByRole("list", { name: "Groups" }).locator('button[aria-current="true"]');
  await current.waitFor();
  return (await current.getAttribute("title"))!;
}

describe("the web messenger in Chromium, across two providers", () => {
  let a: Provider;
  let b: Provider;
  let browser: Browser;
  let listed: { origin: string; server: Server };
  let unlisted: { origin: string; server: Server };
  const contexts: BrowserContext[] = [];
  const pageErrors: string[] = [];

  beforeAll(async () => {
    if (!existsSync("dist/web/app.js")) throw new Error("run `npm run build` first (npm run test:browser does)");
    listed = await staticOrigin();
    unlisted = await staticOrigin();
    const providers = await startFederation(["a.example", "b.example"], () => ({
      web: { enabled: true },
      cors: { origins: [listed.origin] },
    }));
    a = providers[0]!;
    b = providers[1]!;
    browser = await launch();
  });
  afterAll(async () => {
    await Promise.all(contexts.map((c) => c.close()));
    await browser?.close();
    await stopAll([a, b]);
    listed.server.close();
    unlisted.server.close();
  });
  afterEach(() => expect(pageErrors.splice(0)).toEqual([]));

  async function person(url: string, client: string): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1100, height: 640 } });
    contexts.push(context);
    const page = await openPage(context, `${url}/app/`, pageErrors, { console: true });
    await signIn(page, client);
    return page;
  }

  let alice: Page;
  let bob: Page;
  let carol: Page;
  let groupId: string;
  /** The group bob created (hub b.example), with alice. */
  let bobsGroup: string;

  it("alice on a.example and bob on b.example add each other across providers and read each other's messages", async () => {
    [alice, bob, carol] = await Promise.all([
      person(a.url, "alice@a.example/web"),
      person(b.url, "bob@b.example/web"),
      person(b.url, "carol@b.example/web"),
    ]);
    await alice.getByRole("button", { name: "New group" }).click();
    groupId = await openGroupId(alice);
    await addMember(alice, "bob@b.example");
    // The invitation (Welcome) shows up in bob's Groups list by itself, over the live stream.
    await groupEntry(bob, groupId).click();
    await send(alice, "Hello from a.example");
    await seeMessage(bob, "alice@a.example: Hello from a.example");
    await send(bob, "Hi alice, bob here on b.example");
    await seeMessage(alice, "bob@b.example: Hi alice, bob here on b.example");
    await alice.getByText("Epoch 1").waitFor();
    await alice.getByRole("list", { name: "Members" }).getByText("devices: web · provider: b.example").waitFor();

    // The other way round: a group whose hub is b.example, with alice added from there.
    await bob.getByRole("button", { name: "New group" }).click();
    bobsGroup = await openGroupId(bob);
    await addMember(bob, "alice@a.example");
    await groupEntry(alice, bobsGroup).click();
    await send(bob, "this group lives on b.example");
    await seeMessage(alice, "bob@b.example: this group lives on b.example");
    await send(alice, "and alice answers from a.example");
    await seeMessage(bob, "alice@a.example: and alice answers from a.example");

    await groupEntry(alice, groupId).click();
    await groupEntry(bob, groupId).click();
    await seeMessage(bob, "alice@a.example: Hello from a.example");
    await alice.screenshot({ path: join(SCREENSHOTS, "messenger-alice.png") });
    await bob.screenshot({ path: join(SCREENSHOTS, "messenger-bob.png") });
  });

  it("bob reloads the page and still has the group, its history, and can send", async () => {
    await bob.reload();
    await bob.getByText("Signed in as bob@b.example/web").waitFor();
    await groupEntry(bob, groupId).click();
    await seeMessage(bob, "alice@a.example: Hello from a.example");
    await send(bob, "still here after a reload");
    await seeMessage(alice, "bob@b.example: still here after a reload");
    await send(alice, "and you still read me");
    await seeMessage(bob, "alice@a.example: and you still read me");
  });

  it("shows errors in words", async () => {
    await addMember(alice, "nobody@b.example");
    await alice.getByRole("alert").getByText("There is no user nobody@b.example.").waitFor();
    await addMember(alice, "zed@c.example");
    await alice.getByRole("alert").getByText("Your provider does not federate with c.example.").waitFor();
    // frank has a device on b.example (it signed in once) but published no KeyPackage.
    const frank = await fetch(`${b.url}/v1/dev/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ client: "frank@b.example/old-phone" }),
    });
    expect(frank.status).toBe(200);
    await addMember(alice, "frank@b.example");
    await alice
      .getByRole("alert")
      .getByText("frank@b.example has no device that can be added right now (no KeyPackage left). Ask them to sign in.")
      .waitFor();
  });

  it("alice leaves bob's group: her Remove proposal is committed by bob's page", async () => {
    const leaving = bobsGroup;
    await groupEntry(alice, leaving).click();
    await alice.getByRole("button", { name: "Leave group" }).click();
    await groupEntry(alice, leaving).waitFor({ state: "detached" });
    await groupEntry(bob, leaving).click();
    await bob.getByRole("list", { name: "Members" }).getByText("alice@a.example", { exact: true }).waitFor({ state: "detached" });
    await bob.getByText("Epoch 2").waitFor();
    await groupEntry(alice, groupId).click();
    await groupEntry(bob, groupId).click();
  });

  it("carol, added and then removed, sees nothing sent after her removal", async () => {
    await addMember(alice, "carol@b.example");
    await groupEntry(carol, groupId).click();
    await send(alice, "welcome carol");
    await seeMessage(carol, "alice@a.example: welcome carol");
    await alice.getByRole("button", { name: "Remove carol@b.example" }).click();
    await groupEntry(carol, groupId).waitFor({ state: "detached" });
    await carol.getByRole("alert").getByText("alice@a.example removed you from a group.").waitFor();
    await send(alice, "carol has left the room");
    // bob is on carol's provider: once he has it, carol's inbox would have had it too.
    await seeMessage(bob, "alice@a.example: carol has left the room");
    expect(await carol.content()).not.toContain("carol has left the room");
    expect(await groupEntry(carol, groupId).count()).toBe(0);
    await alice.getByRole("list", { name: "Members" }).getByText("carol@b.example").waitFor({ state: "detached" });
  });

  it("resolves a commit race (stale_epoch) by catching up, without a word to the person", async () => {
    const dave = await MlsClient.connect(b.url, "dave@b.example/phone");
    const erin = await MlsClient.connect(a.url, "erin@a.example/phone");
    await Promise.all([dave.publishKeyPackages(1), erin.publishKeyPackages(1)]);
    const staleBefore = await staleEpochAnswers(b.url);
    // bob's page misses alice's commit (its stream is cut), so his own commit is built on the old epoch.
    const stream = "**/v1/inbox/stream**";
    await bob.route(stream, (route) => route.abort());
    await bob.reload();
    await groupEntry(bob, groupId).click();
    await bob.getByText("Epoch 3").waitFor();
    await addMember(alice, "dave@b.example");
    await alice.getByText("Epoch 4").waitFor();
    await addMember(bob, "erin@a.example");
    await bob.getByText("Epoch 5").waitFor();
    await bob.unroute(stream);
    for (const page of [alice, bob]) {
      await page.getByText("Epoch 5").waitFor();
      await page.getByRole("list", { name: "Members" }).getByText("dave@b.example", { exact: true }).waitFor();
      await page.getByRole("list", { name: "Members" }).getByText("erin@a.example", { exact: true }).waitFor();
    }
    // Nothing about the race reaches the person (the line may by now say the stream is reconnecting).
    expect(await bob.getByRole("alert").textContent()).not.toMatch(/stale|epoch|refused|wrong/i);
    expect(await staleEpochAnswers(b.url)).toBeGreaterThan(staleBefore);
    // The stream is back: the next message arrives live.
    await send(alice, "everyone on epoch 5");
    await seeMessage(bob, "alice@a.example: everyone on epoch 5");
  });

  it("lets a listed origin call the client API and read its errors; other origins and federation routes get nothing", async () => {
    const context = await browser.newContext();
    contexts.push(context);
    const probe = async (page: Page, url: string, init: { method?: string; headers?: Record<string, string>; body?: string }) =>
      page.evaluate(
        async ({ url, init }) => {
          try {
            const res = await fetch(url, init);
            return { status: res.status, body: await res.text(), requestId: res.headers.get("x-request-id") };
          } catch (e) {
            return { failed: String(e) };
          }
        },
        { url, init },
      );
    const token = { method: "POST", headers: { "content-type": "application/json" }, body: '{"client":"eve@a.example/web"}' };
    const unauthenticated = { headers: { authorization: "Bearer not-a-token" } };

    const friend = await openPage(context, listed.origin, pageErrors);
    const issued = await probe(friend, `${a.url}/v1/dev/token`, token);
    expect(issued).toMatchObject({ status: 200, body: expect.stringContaining('"token"') });
    const refused = await probe(friend, `${a.url}/v1/inbox`, unauthenticated);
    expect(refused).toMatchObject({ status: 401, body: expect.stringContaining('"unauthenticated"') });
    expect((refused as { requestId: string }).requestId).toBeTruthy();
    expect(await probe(friend, `${a.url}/federation/v1/users/alice@a.example/devices`, {})).toHaveProperty("failed");

    const stranger = await openPage(context, unlisted.origin, pageErrors);
    expect(await probe(stranger, `${a.url}/v1/dev/token`, token)).toHaveProperty("failed");
    expect(await probe(stranger, `${a.url}/v1/inbox`, unauthenticated)).toHaveProperty("failed");
  });
});
