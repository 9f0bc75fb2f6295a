import type { MlsEvent } from "../src/client/index.js";
import { byId, h } from "./dom.js";
import { describeError } from "./errors.js";
import type { Line } from "./history.js";
import type { Session } from "./session.js";
import { Calls } from "./call/calls.js";
import { isSignalText } from "./call/signal.js";
import { callView } from "./views/call.js";
import { conversationView, lineView, membersView } from "./views/conversation.js";
import { groupLabel, groupsView, userOf } from "./views/groups.js";

const RECONNECTING = "Connection to your provider lost; reconnecting…";

/**
 * The signed-in screen: the Groups list and the open group. Live updates arrive over the stream;
 * a commit race (stale_epoch) is resolved inside MlsClient by catching up, so it never shows here.
 */
export class Messenger {
  private selected?: string;
  private pending: Promise<void> = Promise.resolve();
  private readonly root = h("div", { class: "screen" });
  private readonly calls: Calls;

  constructor(
    private readonly session: Session,
    private readonly say: (text: string, kind?: "error" | "info") => void,
    private readonly clearNotice: (text: string) => void,
    private readonly onSessionEnd: (e: unknown) => void,
  ) {
    this.calls = new Calls(
      session.client,
      (groupId) => this.refreshCall(groupId),
      (e) => this.say(describeError(e)),
    );
  }

  /** Signing out: every call ends. */
  close(): void {
    this.calls.endAll();
  }

  get client() {
    return this.session.client;
  }

  async mount(into: HTMLElement): Promise<void> {
    into.replaceChildren(this.root);
    this.selected = this.client.groupIds()[0];
    await this.render();
    this.session.listen(
      // Batches are handled in arrival order (each awaits the history store before it shows).
      (events) => {
        this.pending = this.pending.then(() => this.onEvents(events)).catch((e: unknown) => this.say(describeError(e)));
      },
      () => this.clearNotice(RECONNECTING),
      this.onSessionEnd,
    );
  }

  private async render(): Promise<void> {
    const groups = groupsView(
      this.client,
      this.selected,
      (g) => void this.select(g),
      () => this.newGroup(),
    );
    const open = this.selected && this.client.groupIds().includes(this.selected) ? this.selected : undefined;
    const conversation = open
      ? conversationView(this.client, open, await this.session.history.lines(open), this.actions(open))
      : h("section", {}, h("p", { class: "muted" }, "Select or create a group."));
    this.root.replaceChildren(groups, conversation);
    if (open) this.refreshCall(open);
  }

  private refreshCall(groupId: string): void {
    if (groupId !== this.selected) return;
    document.getElementById("call")?.replaceChildren(callView(this.calls.of(groupId)));
  }

  private async select(groupId: string): Promise<void> {
    this.selected = groupId;
    await this.render();
    byId("message").focus();
  }

  private async newGroup(): Promise<void> {
    try {
      this.selected = await this.client.createGroup();
      await this.render();
    } catch (e) {
      this.say(describeError(e));
    }
  }

  /** Re-renders what changed without rebuilding the open form (typed text and focus stay). */
  private refreshGroup(groupId: string): void {
    const groups = this.root.firstElementChild;
    const fresh = groupsView(
      this.client,
      this.selected,
      (g) => void this.select(g),
      () => this.newGroup(),
    );
    if (groups) groups.replaceWith(fresh);
    if (groupId !== this.selected) return;
    byId("epoch").textContent = `Epoch ${this.client.epoch(groupId)}`;
    byId("members").replaceChildren(membersView(this.client, groupId, (u) => this.remove(groupId, u)));
    byId("group-heading").textContent = groupLabel(this.client, groupId);
  }

  private async show(line: Line): Promise<void> {
    await this.session.history.add(line);
    if (line.groupId !== this.selected) return;
    const log = byId("messages");
    log.append(lineView(line, this.client.user));
    log.scrollTop = log.scrollHeight;
  }

  private actions(groupId: string) {
    return {
      send: async (text: string) => {
        if (isSignalText(text)) {
          this.say("That text is reserved for call signalling; change its beginning to send it.");
          throw new Error("reserved text");
        }
        try {
          await this.client.send(groupId, text);
          await this.show({ groupId, sender: this.client.user, text, at: Date.now() });
        } catch (e) {
          this.say(describeError(e));
          throw e;
        }
      },
      add: async (user: string) => {
        try {
          const { added, missing } = await this.client.addUsers(groupId, [user]);
          this.say(
            `Added ${added.join(", ")}${missing.length ? ` (not reachable: ${missing.map((m) => m.client).join(", ")})` : ""}`,
            "info",
          );
          this.refreshGroup(groupId);
        } catch (e) {
          this.say(describeError(e, user));
          throw e;
        }
      },
      remove: (user: string) => this.remove(groupId, user),
      leave: async () => {
        try {
          await this.calls.of(groupId).leave();
          await this.client.leave(groupId);
          this.calls.end(groupId);
          this.selected = this.client.groupIds()[0];
          this.say("You left the group.", "info");
          await this.render();
        } catch (e) {
          this.say(describeError(e));
        }
      },
    };
  }

  private async remove(groupId: string, user: string): Promise<void> {
    try {
      const devices = this.client.members(groupId).filter((m) => userOf(m) === user);
      await this.client.removeClients(groupId, devices);
      this.say(`Removed ${user}.`, "info");
      this.refreshGroup(groupId);
      this.calls.membersChanged(groupId);
    } catch (e) {
      this.say(describeError(e, user));
    }
  }

  private async onEvents(events: MlsEvent[]): Promise<void> {
    for (const e of events) {
      switch (e.kind) {
        case "message":
          // Call signals are handled by the group's call and never shown as chat lines.
          if (this.calls.onMessage(e.groupId, e.sender, e.text) || isSignalText(e.text)) break;
          await this.show({ groupId: e.groupId, sender: userOf(e.sender), text: e.text, at: Date.now() });
          break;
        case "joined":
          this.selected ??= e.groupId;
          this.say(`${userOf(e.sender)} added you to a group.`, "info");
          await this.render();
          break;
        case "commit":
          this.refreshGroup(e.groupId);
          this.calls.membersChanged(e.groupId);
          break;
        case "proposal":
          await this.commitProposal(e.groupId, e.sender);
          break;
        case "removed":
          this.calls.end(e.groupId);
          if (this.selected === e.groupId) this.selected = this.client.groupIds()[0];
          this.say(`${userOf(e.sender)} removed you from a group.`, "info");
          await this.render();
          break;
        case "error":
          this.say(e.error.startsWith("stream interrupted") ? RECONNECTING : e.error);
          break;
        default:
          break;
      }
    }
  }

  /**
   * A member asked to leave (a Remove proposal). The first remaining member in tree order commits
   * it, so members do not race to commit the same proposal; any later commit would carry it too.
   */
  private async commitProposal(groupId: string, proposer: string): Promise<void> {
    if (!this.client.groupIds().includes(groupId)) return;
    const stay = this.client.members(groupId).filter((m) => m !== proposer);
    if (stay[0] !== this.client.id) return;
    try {
      await this.client.commitPending(groupId);
      this.refreshGroup(groupId);
      this.calls.membersChanged(groupId);
    } catch (e) {
      this.say(describeError(e));
    }
  }
}
