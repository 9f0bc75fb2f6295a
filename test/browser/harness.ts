import { mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { freePort } from "../helpers/global-setup.js";

/** Debian's chromium (.ci/run installs it with apt-get when missing). */
export const CHROMIUM = "/usr/bin/chromium";
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
/** Where the tests write screenshots (docs/img holds the copy the README shows). */
export const SCREENSHOTS = process.env.MLSFEDGATE_TEST_SCREENSHOTS ?? join("dist", "screenshots");

/**
 * One headless Chromium. playwright-core gives every launch a fresh temporary profile
 * (--user-data-dir) and removes it on close; each person gets its own context (own IndexedDB).
 */
export function launch(extraFlags: string[] = []): Promise<Browser> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...FLAGS, ...extraFlags], timeout: 60_000 });
}

/**
 * Calls: fake camera and microphone, no permission prompt, loopback ICE candidates
 * (/work/shared/CALLS-NOTES.md), and media that plays without a click in each page.
 */
export const CALL_FLAGS = [
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  "--allow-loopback-in-peer-connection",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
  "--autoplay-policy=no-user-gesture-required",
];

/**
 * A page that fails the test on any uncaught error in it, and (`console: true`) on any console
 * error, which is where Chromium reports what the Content-Security-Policy blocked.
 */
export async function openPage(context: BrowserContext, url: string, errors: string[], opts = { console: false }): Promise<Page> {
  const page = await context.newPage();
  page.on("pageerror", (e) => errors.push(`${url}: ${e.message}`));
  // Error answers of the API (a 404 unknown_user the page explains) are logged too: not script errors.
  const relevant = (text: string) => !text.startsWith("Failed to load resource");
  if (opts.console)
    page.on("console", (m) => void (m.type() === "error" && relevant(m.text()) && errors.push(`${url} console: ${m.text()}`)));
  await page.goto(url);
  return page;
}

export async function signIn(page: Page, client: string): Promise<void> {
  await page.getByLabel("Client id").fill(client);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText(`Signed in as ${client}`).waitFor();
  await page.getByRole("list", { name: "Groups" }).waitFor({ state: "attached" });
}

/** Waits until the open group's Messages log shows `line` (exactly "sender: text"). */
export async function seeMessage(page: Page, line: string): Promise<void> {
  await page.getByRole("log", { name: "Messages" }).getByText(line, { exact: true }).waitFor({ timeout: 20_000 });
}

export async function send(page: Page, text: string): Promise<void> {
  await page.getByLabel("Message", { exact: true }).fill(text);
  await page.getByRole("button", { name: "Send" }).click();
}

export async function addMember(page: Page, user: string): Promise<void> {
  await page.getByLabel("Add member").fill(user);
  await page.getByRole("button", { name: "Add", exact: true }).click();
}

/** The Groups list's entry for a group (its button carries the group id as title). */
export function groupEntry(page: Page, groupId: string) {
  return page.getByRole("list", { name: "Groups" }).locator(`button[title="${groupId}"]`);
}

/** A plain page on its own origin (http://127.0.0.1:<port>), to call a DS from. */
export async function staticOrigin(): Promise<{ origin: string; server: Server }> {
  const port = await freePort();
  const server = createServer((_req, res) => {
    res.setHeader("content-type", "text/html");
    res.end("<!doctype html><title>another origin</title><p>another origin</p>");
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return { origin: `http://127.0.0.1:${port}`, server };
}
