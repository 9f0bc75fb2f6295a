import type { MlsClient } from "../../src/client/index.js";
import { h } from "../dom.js";

export const userOf = (client: string) => client.replace(/\/.*$/, "");

/** A group as people name it: the other members' user ids. */
export function groupLabel(client: MlsClient, groupId: string): string {
  const others = [...new Set(client.members(groupId).map(userOf))].filter((u) => u !== client.user);
  return others.length ? others.join(", ") : "Just you";
}

/** The list named Groups, with the selected one marked; invitations show up here by themselves. */
export function groupsView(
  client: MlsClient,
  selected: string | undefined,
  onSelect: (groupId: string) => void,
  onNew: () => Promise<void>,
): HTMLElement {
  const items = client.groupIds().map((groupId) =>
    h(
      "li",
      {},
      h(
        "button",
        {
          type: "button",
          "aria-current": groupId === selected ? "true" : undefined,
          title: groupId,
          onclick: () => onSelect(groupId),
        },
        groupLabel(client, groupId),
        h("small", {}, `#${groupId.slice(0, 8)}`),
      ),
    ),
  );
  const create = h("button", { type: "button" }, "New group");
  create.addEventListener("click", () => {
    create.disabled = true;
    void onNew().finally(() => {
      create.disabled = false;
    });
  });
  return h(
    "section",
    { class: "groups", "aria-labelledby": "groups-heading" },
    h("h2", { id: "groups-heading" }, "Groups"),
    h("ul", { "aria-label": "Groups" }, ...items),
    items.length === 0 && h("p", { class: "muted" }, "No groups yet. Create one, or wait for an invitation."),
    create,
  );
}
