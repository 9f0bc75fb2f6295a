/**
 * Where an MlsClient keeps its state between runs: MLS group states (ts-mls encodeGroupState),
 * KeyPackage private keys, the inbox cursor and the bearer token. One storage belongs to one
 * client id. Nothing here is ever sent to a server: the DS sees only public KeyPackages.
 */
export interface StoredGroup {
  groupId: string;
  /** encodeGroupState(state) */
  state: Uint8Array;
  /** Highest log seq the state includes. */
  lastSeq: number;
  /** A send group this client created (it commits received proposals inline). */
  designatedSender?: boolean;
}

export interface StoredKeyPackage {
  ref: string;
  /** encodeKeyPackage(publicPackage) */
  publicPackage: Uint8Array;
  initPrivateKey: Uint8Array;
  hpkePrivateKey: Uint8Array;
  signaturePrivateKey: Uint8Array;
  lastResort: boolean;
}

export interface ClientStorage {
  loadToken(): Promise<string | undefined>;
  saveToken(token: string | undefined): Promise<void>;
  loadCursor(): Promise<number>;
  saveCursor(cursor: number): Promise<void>;
  loadGroups(): Promise<StoredGroup[]>;
  saveGroup(group: StoredGroup): Promise<void>;
  deleteGroup(groupId: string): Promise<void>;
  loadKeyPackages(): Promise<StoredKeyPackage[]>;
  saveKeyPackages(keyPackages: StoredKeyPackage[]): Promise<void>;
  deleteKeyPackage(ref: string): Promise<void>;
  close(): Promise<void>;
}

/** The default: state lives as long as the MlsClient object (Node tools, tests). */
export class MemoryClientStorage implements ClientStorage {
  private token?: string;
  private cursor = 0;
  private readonly groups = new Map<string, StoredGroup>();
  private readonly keyPackages = new Map<string, StoredKeyPackage>();

  async loadToken() {
    return this.token;
  }
  async saveToken(token: string | undefined) {
    this.token = token;
  }
  async loadCursor() {
    return this.cursor;
  }
  async saveCursor(cursor: number) {
    this.cursor = cursor;
  }
  async loadGroups() {
    return [...this.groups.values()];
  }
  async saveGroup(group: StoredGroup) {
    this.groups.set(group.groupId, group);
  }
  async deleteGroup(groupId: string) {
    this.groups.delete(groupId);
  }
  async loadKeyPackages() {
    return [...this.keyPackages.values()];
  }
  async saveKeyPackages(keyPackages: StoredKeyPackage[]) {
    for (const kp of keyPackages) this.keyPackages.set(kp.ref, kp);
  }
  async deleteKeyPackage(ref: string) {
    this.keyPackages.delete(ref);
  }
  async close() {}
}
