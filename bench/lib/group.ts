import type { ClientState } from "ts-mls/clientState.js";
import type { ClaimAnswer } from "../../src/wire/shapes.js";
import { connect, devToken, keyPackagePool, type Member } from "./mls.js";

/** A member that only reads its inbox over HTTP (it never decrypts), on the DS of its domain. */
export interface Reader {
  client: string;
  token: string;
  url: string;
}

export interface CommittedGroup {
  groupId: string;
  creator: Member;
  /** The creator's MLS state after the add commit: real PrivateMessages are made from it. */
  state: ClientState;
  readers: Reader[];
}

/** Runs `n` tasks with at most `concurrency` in flight. */
export async function bounded(n: number, concurrency: number, task: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, concurrency) }, async () => {
      while (next < n) await task(next++);
    }),
  );
}

async function post(url: string, token: string, body: unknown): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
}

/**
 * A real MLS group whose membership goes through the DS's commit path, as a client's would: every
 * other member uploads one real KeyPackage (its own identity key) to the DS of its domain, the
 * creator claims them through its DS (remote users through federation), adds all of them in ONE
 * commit (Welcome, GroupInfo and ratchet tree through the DS) and keeps the resulting state. The
 * other members never process their Welcome: they only read their inbox (enough to measure delivery,
 * and what makes 1000 members affordable here).
 */
export async function committedGroup(
  urlOf: (client: string) => string,
  creatorClient: string,
  memberClients: string[],
  log: (line: string) => void,
): Promise<CommittedGroup> {
  const creator = await connect(urlOf(creatorClient), creatorClient);
  const readers: Reader[] = new Array(memberClients.length);
  await bounded(memberClients.length, 16, async (i) => {
    const client = memberClients[i]!;
    const url = urlOf(client);
    const token = await devToken(url, client);
    const keyPackages = await keyPackagePool(client, 1);
    const res = await post(`${url}/v1/key-packages`, token, { keyPackages });
    if (res.status !== 201) throw new Error(`upload for ${client}: ${res.status} ${await res.text()}`);
    readers[i] = { client, token, url };
  });
  const groupId = await creator.mls.createGroup();
  const bundles: ClaimAnswer["bundles"] = [];
  await bounded(memberClients.length, 16, async (i) => {
    const user = memberClients[i]!.slice(0, memberClients[i]!.indexOf("/"));
    const res = await post(`${urlOf(creatorClient)}/v1/key-packages/claim`, creator.token, { user, cipherSuites: [1] });
    if (res.status !== 200) throw new Error(`claim of ${user}: ${res.status} ${await res.text()}`);
    bundles.push(...((await res.json()) as ClaimAnswer).bundles);
  });
  const t = performance.now();
  await creator.mls.addKeyPackages(groupId, bundles);
  log(`group of ${memberClients.length + 1}: add commit built and accepted in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  return { groupId, creator, state: creator.mls.state(groupId), readers };
}
