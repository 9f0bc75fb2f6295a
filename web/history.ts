import { openDB, type DBSchema, type IDBPDatabase } from "idb";

/** One line of a conversation as shown: MLS cannot decrypt a message twice, so the page keeps what it showed. */
export interface Line {
  groupId: string;
  sender: string;
  text: string;
  at: number;
}

interface HistoryDb extends DBSchema {
  lines: { key: number; value: Line; indexes: { byGroup: string } };
}

/** The messenger's own IndexedDB database (plaintext history), separate from the SDK's key storage. */
export class History {
  private constructor(private readonly db: IDBPDatabase<HistoryDb>) {}

  static async open(client: string): Promise<History> {
    const db = await openDB<HistoryDb>(`mls-fedgate-web:${client}`, 1, {
      upgrade(db) {
        db.createObjectStore("lines", { autoIncrement: true }).createIndex("byGroup", "groupId");
      },
    });
    return new History(db);
  }

  async add(line: Line): Promise<void> {
    await this.db.add("lines", line);
  }

  lines(groupId: string): Promise<Line[]> {
    return this.db.getAllFromIndex("lines", "byGroup", groupId);
  }

  close(): void {
    this.db.close();
  }
}
