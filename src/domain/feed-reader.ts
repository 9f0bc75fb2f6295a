import { userOf, type Store } from "../store/port.js";

/** Entries examined per group and pull; a longer backlog is read over the following pulls. */
export const FEED_PAGE = 256;
/** Pages one pull reads from a group whose pages brought nothing for this client (its own messages). */
const EMPTY_PAGES_PER_PULL = 4;

/**
 * The read side of group feeds (domain/feeds.ts): before a client's inbox is read, every group it
 * reads is asked for what reached it since its mark, and those entries go into its inbox as
 * references — one group-slot read and one client-slot step per group with news. The hub's accept
 * therefore costs the same whatever the group size; each member pays for what it reads.
 *
 * A device of a user that is a member as `user/*` (single-client mode) reads that member's feed
 * with its own mark (feed key `*|<groupId>`).
 */
export class FeedReader {
  constructor(
    private readonly store: Store,
    private readonly pageSize = FEED_PAGE,
  ) {}

  static feedKey(client: string, member: string, groupId: string): string {
    return member === client ? groupId : `*|${groupId}`;
  }

  /** Pulls every feed of `client` into its inbox; returns the groups it reads (to watch for wake-ups). */
  async pull(client: string): Promise<string[]> {
    const members = client.endsWith("/*") ? [client] : [client, `${userOf(client)}/*`];
    const [marks, ...lists] = await Promise.all([this.store.feedMarks(client), ...members.map((m) => this.store.groupsOf(m))]);
    const watched = new Set<string>();
    await Promise.all(
      members.flatMap((member, i) =>
        lists[i]!.map(async (groupId) => {
          watched.add(groupId);
          await this.pullOne(client, member, groupId, marks.get(FeedReader.feedKey(client, member, groupId)) ?? 0);
        }),
      ),
    );
    return [...watched];
  }

  private async pullOne(client: string, member: string, groupId: string, mark: number): Promise<void> {
    for (let page = 0; page < EMPTY_PAGES_PER_PULL; page++) {
      const read = await this.store.readFeed(groupId, member, mark, this.pageSize);
      if (read.kind === "none") return;
      if (read.through <= mark && !read.ended) return;
      await this.store.advanceFeed(client, {
        key: FeedReader.feedKey(client, member, groupId),
        groupId,
        through: read.through,
        seqs: read.seqs,
        ended: read.ended,
        // The index entry of `user/*` serves every device of the user: one device's end is not theirs.
        dropIndex: member === client,
      });
      // Stop at anything for the inbox (the client reads it first) or at the end of the log.
      if (read.seqs.length > 0 || read.ended || read.through - mark < this.pageSize) return;
      mark = read.through;
    }
  }
}
