// Log in and register. Both end in POST /auth/session, which sets the
// HttpOnly session cookie; no token is ever handed to script.
import { h, api, field, form, query } from "./lib.js";
import { signedIn } from "./main.js";

async function startSession(email, password) {
  await api("POST", "/auth/session", { email, password }, { quiet401: true });
  const next = query().get("next");
  // Only a path of the dashboard's own: never an address elsewhere.
  await signedIn(next && /^\/app\/[\w/?=&%.-]*$/.test(next) ? next : undefined);
}

function shell(root, title, lead, body, foot) {
  root.replaceChildren(
    h("header", { class: "topbar landing-bar" },
      h("a", { href: "/", class: "brand" }, h("span", { class: "logo", "aria-hidden": "true" }), "API Key Wallet")),
    h("main", { id: "main", class: "auth" },
      h("div", { class: "card auth-card" }, h("h1", { id: "page-title" }, title), h("p", { class: "lead" }, lead), body, foot)));
  const first = root.querySelector("input");
  if (first) first.focus();
}

export function loginPage(root) {
  shell(root, "Log in", "Welcome back to your wallet.",
    form({ class: "stack", "aria-label": "Log in" }, async (d) => {
      await startSession(d.get("email"), d.get("password"));
    },
    field("Email", h("input", { name: "email", type: "email", autocomplete: "username", required: true })),
    field("Password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    h("button", { type: "submit", class: "btn primary wide" }, "Log in")),
    h("p", { class: "muted" }, "New here? ", h("a", { href: "/app/register" }, "Create an account"), "."));
}

export function signupForm() {
  return form({ class: "stack card", "aria-label": "Create your account" }, async (d) => {
    await api("POST", "/auth/register", { name: d.get("name"), email: d.get("email"), password: d.get("password") },
      { quiet401: true });
    await startSession(d.get("email"), d.get("password"));
  },
  field("Name", h("input", { name: "name", autocomplete: "name", required: true })),
  field("Email", h("input", { name: "email", type: "email", autocomplete: "email", required: true })),
  field("Password", h("input", { name: "password", type: "password", autocomplete: "new-password", required: true, minlength: "10" }),
    "At least 10 characters"),
  h("button", { type: "submit", class: "btn primary wide" }, "Create account"));
}

export function registerPage(root) {
  shell(root, "Create your account", "Your personal workspace is created with it.", signupForm(),
    h("p", { class: "muted" }, "Have an account? ", h("a", { href: "/app/login" }, "Log in"), "."));
}

