import { byId } from "./dom.js";
import { describeError } from "./errors.js";
import { Messenger } from "./messenger.js";
import { Session } from "./session.js";
import { signInView } from "./views/sign-in.js";

/**
 * The web messenger every DS serves at /app/: a real MLS client (ts-mls in the page, keys in
 * IndexedDB) that talks only to the DS that served it (same origin).
 */
const status = byId("status");
let current: Session | undefined;
let messenger: Messenger | undefined;

function say(text: string, kind: "error" | "info" = "error"): void {
  status.textContent = text;
  status.className = kind;
  status.hidden = false;
}

/** Hides the status line if it still shows `text` (e.g. "reconnecting" once the stream is back). */
function clearNotice(text: string): void {
  if (status.textContent === text) status.hidden = true;
}

async function providerDomain(): Promise<string> {
  const res = await fetch("/.well-known/mls-federation");
  return ((await res.json()) as { domain: string }).domain;
}

async function start(session: Session, domain: string): Promise<void> {
  current = session;
  status.hidden = true;
  byId("whoami").textContent = `Signed in as ${session.client.id}`;
  byId("whoami").hidden = false;
  byId("sign-out").hidden = false;
  messenger = new Messenger(session, say, clearNotice, (e) => void signOut(domain, describeError(e)));
  await messenger.mount(byId("root"));
}

async function signOut(domain: string, reason?: string): Promise<void> {
  messenger?.close();
  messenger = undefined;
  await current?.signOut();
  current = undefined;
  byId("whoami").hidden = true;
  byId("sign-out").hidden = true;
  showSignIn(domain);
  if (reason) say(reason);
  else status.hidden = true;
}

function showSignIn(domain: string): void {
  byId("root").replaceChildren(
    signInView(domain, async (input, token) => {
      try {
        await start(await Session.signIn(location.origin, Session.clientId(input, domain), token || undefined), domain);
      } catch (e) {
        say(describeError(e));
      }
    }),
  );
}

async function main(): Promise<void> {
  const domain = await providerDomain();
  byId("provider").textContent = domain;
  document.title = `${domain} · mls-fedgate messenger`;
  byId("sign-out").addEventListener("click", () => void signOut(domain));
  const last = Session.lastClient();
  if (!last) return showSignIn(domain);
  try {
    await start(await Session.signIn(location.origin, last), domain);
  } catch (e) {
    say(describeError(e));
    showSignIn(domain);
  }
}

void main().catch((e: unknown) => say(describeError(e)));
