import { h } from "../dom.js";

/** The sign-in form: a client id (dev tokens) and, for providers with an identity provider, a token. */
export function signInView(domain: string, onSignIn: (clientId: string, token: string) => Promise<void>): HTMLElement {
  const id = h("input", {
    id: "client-id",
    name: "client",
    autocomplete: "username",
    placeholder: `alice@${domain}/web`,
    required: true,
  });
  const token = h("input", { id: "token", name: "token", type: "password", autocomplete: "off" });
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "sign-in", "aria-label": "Sign in" },
    h("label", { for: "client-id" }, "Client id"),
    id,
    h("label", { for: "token" }, "Token (leave empty on a development DS)"),
    token,
    button,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    button.disabled = true;
    void onSignIn(id.value, token.value.trim()).finally(() => {
      button.disabled = false;
    });
  });
  return form;
}
