import { FedgateError, IndexedDbClientStorage, MlsClient, identityFor, type MlsEvent } from "../src/client/index.js";
import { History } from "./history.js";

const LAST_CLIENT = "mls-fedgate:client";
/** KeyPackages kept on the DS for this device (the DS reports when a claim leaves few). */
const KEY_PACKAGE_TARGET = 10;

/** The signed-in device: its MLS client (keys in IndexedDB), the plaintext history, the live stream. */
export class Session {
  private readonly stop = new AbortController();

  private constructor(
    readonly client: MlsClient,
    readonly history: History,
    private readonly storage: IndexedDbClientStorage,
  ) {}

  /** `alice`, `alice@a.example` or `alice@a.example/laptop` → a client id of this provider. */
  static clientId(input: string, domain: string): string {
    const text = input.trim();
    const user = text.includes("@") ? text.replace(/\/.*$/, "") : `${text}@${domain}`;
    const device = text.includes("/") ? text.slice(text.indexOf("/") + 1) : "web";
    return `${user}/${device}`;
  }

  static lastClient(): string | undefined {
    return localStorage.getItem(LAST_CLIENT) ?? undefined;
  }

  /**
   * Signs in: restores this device's state from IndexedDB, gets a token (the one given, the stored
   * one, or a dev token), and publishes KeyPackages and a last-resort one if the DS has too few.
   */
  static async signIn(baseUrl: string, client: string, token?: string): Promise<Session> {
    const storage = await IndexedDbClientStorage.open(client);
    try {
      const mls = await MlsClient.connect(baseUrl, client, {
        storage,
        replenish: { target: KEY_PACKAGE_TARGET },
        ...(token ? { token } : {}),
        // A Wire-style client id (<uuid>@domain/<hex>) signs in with Wire credentials and public
        // commits, which is what groups with core-crypto (openmls) members need (docs/INTEROP.md).
        ...(identityFor(client, "wire") ? { identityScheme: "wire" as const, commitFormat: "public" as const } : {}),
      });
      try {
        await mls.ensureKeyPackages();
      } catch (e) {
        // A stored dev token that expired: fetch a new one (in jwt mode the person must sign in again).
        if (token || !(e instanceof FedgateError) || e.code !== "unauthenticated") throw e;
        mls.api.setToken(undefined);
        await mls.api.login();
        await storage.saveToken(mls.api.currentToken);
        await mls.ensureKeyPackages();
      }
      if (token) await storage.saveToken(token);
      localStorage.setItem(LAST_CLIENT, client);
      return new Session(mls, await History.open(client), storage);
    } catch (e) {
      await storage.close();
      throw e;
    }
  }

  /** Follows the stream until signOut; `onEnd` hears why it stopped (an expired token). */
  listen(onEvents: (events: MlsEvent[]) => void, onOpen: () => void, onEnd: (e: unknown) => void): void {
    this.client.listen(onEvents, this.stop.signal, onOpen).catch(onEnd);
  }

  /** Stops the stream and forgets which client was signed in; keys stay in IndexedDB for the next sign-in. */
  async signOut(): Promise<void> {
    this.stop.abort();
    localStorage.removeItem(LAST_CLIENT);
    this.history.close();
    await this.storage.close();
  }
}
