import { deleteDB, openDB, type DBSchema, type IDBPDatabase } from "idb";
import type { ClientStorage, StoredGroup, StoredKeyPackage } from "./storage.js";

const VERSION = 1;

interface ClientDb extends DBSchema {
  meta: { key: "token" | "cursor"; value: string | number };
  groups: { key: string; value: StoredGroup };
  keyPackages: { key: string; value: StoredKeyPackage };
}

/**
 * Browser storage: one IndexedDB database per client id (`mls-fedgate:<client>`), so several
 * accounts on one origin never share keys. Byte fields are stored as Uint8Array (structured clone).
 */
export class IndexedDbClientStorage implements ClientStorage {
  private constructor(private readonly db: IDBPDatabase<ClientDb>) {}

  static databaseName(client: string): string {
    return `mls-fedgate:${client}`;
  }

  static async open(client: string): Promise<IndexedDbClientStorage> {
    const db = await openDB<ClientDb>(IndexedDbClientStorage.databaseName(client), VERSION, {
      upgrade(db) {
        db.createObjectStore("meta");
        db.createObjectStore("groups", { keyPath: "groupId" });
        db.createObjectStore("keyPackages", { keyPath: "ref" });
      },
    });
    return new IndexedDbClientStorage(db);
  }

  /** Forgets everything this origin stored for `client` (sign-out with "forget this device"). */
  static async destroy(client: string): Promise<void> {
    await deleteDB(IndexedDbClientStorage.databaseName(client));
  }

  async loadToken() {
    const token = await this.db.get("meta", "token");
    return typeof token === "string" ? token : undefined;
  }
  async saveToken(token: string | undefined) {
    if (token === undefined) await this.db.delete("meta", "token");
    else await this.db.put("meta", token, "token");
  }
  async loadCursor() {
    const cursor = await this.db.get("meta", "cursor");
    return typeof cursor === "number" ? cursor : 0;
  }
  async saveCursor(cursor: number) {
    await this.db.put("meta", cursor, "cursor");
  }
  loadGroups() {
    return this.db.getAll("groups");
  }
  async saveGroup(group: StoredGroup) {
    await this.db.put("groups", group);
  }
  async deleteGroup(groupId: string) {
    await this.db.delete("groups", groupId);
  }
  loadKeyPackages() {
    return this.db.getAll("keyPackages");
  }
  async saveKeyPackages(keyPackages: StoredKeyPackage[]) {
    const tx = this.db.transaction("keyPackages", "readwrite");
    await Promise.all([...keyPackages.map((kp) => tx.store.put(kp)), tx.done]);
  }
  async deleteKeyPackage(ref: string) {
    await this.db.delete("keyPackages", ref);
  }
  async close() {
    this.db.close();
  }
}
