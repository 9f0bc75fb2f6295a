import type { MlsClient } from "../../src/client/index.js";
import { h } from "../dom.js";
import type { Line } from "../history.js";
import { groupLabel, userOf } from "./groups.js";

export interface ConversationActions {
  send(text: string): Promise<void>;
  add(user: string): Promise<void>;
  remove(user: string): Promise<void>;
  leave(): Promise<void>;
}

/** A submit-on-Enter form with one labelled field and one button; the field empties after success. */
function fieldForm(id: string, label: string, button: string, run: (value: string) => Promise<void>, placeholder = "") {
  const input = h("input", { id, name: id, autocomplete: "off", placeholder });
  const submit = h("button", { type: "submit" }, button);
  const form = h("form", {}, h("label", { for: id }, label), input, submit);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    submit.disabled = true;
    // A failed action keeps the text (the error is already on screen) so it can be retried.
    void run(value)
      .then(
        () => {
          input.value = "";
        },
        () => undefined,
      )
      .finally(() => {
        submit.disabled = false;
        input.focus();
      });
  });
  return form;
}

export function lineView(line: Line, me: string): HTMLElement {
  return h("p", { class: line.sender === me ? "own" : undefined }, `${line.sender}: ${line.text}`);
}

/** Members grouped by user: each user's devices and provider, with a Remove button for the others. */
export function membersView(client: MlsClient, groupId: string, remove: (user: string) => Promise<void>): HTMLElement {
  const byUser = new Map<string, string[]>();
  for (const m of client.members(groupId)) byUser.set(userOf(m), [...(byUser.get(userOf(m)) ?? []), m.slice(m.indexOf("/") + 1)]);
  const items = [...byUser].map(([user, devices]) => {
    const button = h("button", { type: "button", "aria-label": `Remove ${user}` }, "Remove");
    button.addEventListener("click", () => {
      button.disabled = true;
      void remove(user).finally(() => {
        button.disabled = false;
      });
    });
    return h(
      "li",
      {},
      h("span", {}, user),
      user === client.user && " (you)",
      h("small", {}, `devices: ${devices.join(", ")} · provider: ${user.slice(user.indexOf("@") + 1)}`),
      user !== client.user && button,
    );
  });
  return h("ul", { "aria-label": "Members", class: "members" }, ...items);
}

/** The open group: the Messages log, the Message field, members, epoch, add, remove, leave. */
export function conversationView(client: MlsClient, groupId: string, lines: Line[], actions: ConversationActions): HTMLElement {
  const leave = h("button", { type: "button" }, "Leave group");
  leave.addEventListener("click", () => {
    leave.disabled = true;
    void actions.leave().finally(() => {
      leave.disabled = false;
    });
  });
  return h(
    "section",
    { class: "conversation", "aria-labelledby": "group-heading" },
    h(
      "div",
      {},
      h("h2", { id: "group-heading" }, groupLabel(client, groupId)),
      h("div", { id: "call" }),
      h(
        "div",
        { id: "messages", role: "log", "aria-label": "Messages", class: "log" },
        ...lines.map((l) => lineView(l, client.user)),
      ),
      fieldForm("message", "Message", "Send", actions.send),
    ),
    h(
      "aside",
      {},
      h("p", { id: "epoch" }, `Epoch ${client.epoch(groupId)}`),
      h("h3", {}, "Members"),
      h("div", { id: "members" }, membersView(client, groupId, actions.remove)),
      fieldForm("add-member", "Add member", "Add", actions.add, "bob@b.example"),
      leave,
    ),
  );
}
