import { h } from "../dom.js";
import type { GroupCall } from "../call/group-call.js";

/** The group's call: who is in it, Start call / Join call / Leave call, and a video per remote participant. */
export function callView(call: GroupCall): HTMLElement {
  const others = [...call.participants];
  const button = (label: string, action: () => Promise<void>) => {
    const b = h("button", { type: "button" }, label);
    b.addEventListener("click", () => {
      b.disabled = true;
      void action().finally(() => {
        b.disabled = false;
      });
    });
    return b;
  };
  const status = call.joined
    ? others.length
      ? `In the call with ${others.join(", ")}`
      : "In the call, waiting for others to join"
    : others.length
      ? `Call going on with ${others.join(", ")}`
      : "";
  const videos = [...call.videos.values()];
  // A media element taken out of the page pauses; once this view is in place, play them again.
  queueMicrotask(() => {
    for (const v of videos) if (v.paused && v.isConnected) void v.play().catch(() => undefined);
  });
  return h(
    "section",
    { class: "call", "aria-label": "Call" },
    status && h("p", { class: "muted" }, status),
    call.joined
      ? button("Leave call", () => call.leave())
      : others.length
        ? button("Join call", () => call.join())
        : button("Start call", () => call.start()),
    videos.length > 0 &&
      h(
        "div",
        { class: "videos" },
        // The caption repeats the video's own label for sighted people; screen readers get the label once.
        ...videos.map((v) => h("figure", {}, v, h("figcaption", { "aria-hidden": "true" }, v.getAttribute("aria-label") ?? ""))),
      ),
  );
}
