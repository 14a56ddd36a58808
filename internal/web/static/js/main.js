// The shell: session bootstrap, layout and routing. Pages live under
// /app/...; the landing page at / becomes the dashboard once logged in.
import { h, api, session, setUnauthorizedHandler, errorBox, query } from "./lib.js";
import { landing } from "./landing.js";
import { loginPage, registerPage } from "./auth.js";
import { usagePage } from "./usage.js";
import { keysPage, tokensPage } from "./keys.js";
import { teamPage, billingPage, alertsPage, auditPage, settingsPage } from "./account.js";
import { adminUsersPage, adminPlansPage, adminServicesPage, adminBusinessPage } from "./admin.js";

const pages = {
  "/app/usage": { title: "Usage", render: usagePage },
  "/app/keys": { title: "Keys", render: keysPage },
  "/app/tokens": { title: "Access tokens", render: tokensPage },
  "/app/team": { title: "Team", render: teamPage },
  "/app/billing": { title: "Plan & billing", render: billingPage },
  "/app/alerts": { title: "Alerts", render: alertsPage },
  "/app/audit": { title: "Audit log", render: auditPage },
  "/app/settings": { title: "Settings", render: settingsPage },
  "/app/admin/users": { title: "Users", render: adminUsersPage, admin: true },
  "/app/admin/plans": { title: "Plans", render: adminPlansPage, admin: true },
  "/app/admin/services": { title: "Services", render: adminServicesPage, admin: true },
  "/app/admin/business": { title: "Business", render: adminBusinessPage, admin: true },
};

const nav = [
  ["Analytics", [["/app/usage", "Usage & savings"], ["/app/billing", "Plan & billing"], ["/app/alerts", "Alerts"]]],
  ["Wallet", [["/app/keys", "Keys"], ["/app/tokens", "Access tokens"], ["/app/team", "Team"], ["/app/audit", "Audit log"],
    ["/app/settings", "Settings"]]],
  ["Administration", [["/app/admin/business", "Business"], ["/app/admin/users", "Users"], ["/app/admin/plans", "Plans"],
    ["/app/admin/services", "Services"]], true],
];

const root = document.getElementById("root");
let cleanup = null;

export function go(path, replace = false) {
  if (replace) history.replaceState(null, "", path); else history.pushState(null, "", path);
  route();
}

// withWorkspace keeps the acting workspace in links, so a shared address
// opens the same view.
function withWorkspace(path) {
  const ws = query().get("ws");
  return ws ? `${path}?ws=${encodeURIComponent(ws)}` : path;
}

async function loadSession() {
  try {
    const s = await api("GET", "/auth/session", undefined, { quiet401: true });
    session.user = s.user;
    session.csrf = s.csrfToken;
  } catch (err) {
    if (err.status !== 401) throw err;
    session.user = null;
    session.csrf = "";
    return;
  }
  const me = await api("GET", "/auth/me");
  session.workspaces = me.workspaces;
  const want = query().get("ws");
  session.workspace = me.workspaces.find((w) => w.id === want) || me.workspace;
}

export { loadSession as reloadSession };

export async function signedIn(next = "/app/usage") {
  await loadSession();
  go(next);
}

async function signOut() {
  try { await api("DELETE", "/auth/session"); } catch { /* the cookie is cleared either way */ }
  session.user = null;
  session.csrf = "";
  session.workspace = null;
  go("/");
}

setUnauthorizedHandler(() => {
  if (!session.user) return;
  session.user = null;
  session.csrf = "";
  go(`/app/login?next=${encodeURIComponent(location.pathname)}`, true);
});

function layout(path, title) {
  const u = session.user;
  const switcher = h("select", { id: "workspace", "aria-label": "Workspace", class: "ws-select",
    onchange: (ev) => {
      session.workspace = session.workspaces.find((w) => w.id === ev.target.value);
      const q = query();
      q.set("ws", session.workspace.id);
      history.replaceState(null, "", `${location.pathname}?${q}`);
      route();
    } },
  session.workspaces.map((w) => h("option", { value: w.id, selected: session.workspace && w.id === session.workspace.id },
    w.personal ? `${w.name} (personal)` : `${w.name} · ${w.role}`)));
  const menuBtn = h("button", { class: "btn ghost menu-btn", type: "button", "aria-expanded": "false",
    "aria-controls": "sidenav", onclick: () => {
      const open = document.body.classList.toggle("nav-open");
      menuBtn.setAttribute("aria-expanded", String(open));
    } }, "Menu");
  const side = h("nav", { id: "sidenav", class: "sidenav", "aria-label": "Dashboard" },
    nav.filter(([, , admin]) => !admin || u.role === "ADMIN").map(([group, items]) => h("div", { class: "nav-group" },
      h("p", { class: "nav-title" }, group),
      h("ul", {}, items.map(([href, label]) => h("li", {},
        h("a", { href: withWorkspace(href), "aria-current": href === path ? "page" : null }, label)))))));
  const main = h("main", { id: "main", class: "content", "aria-labelledby": "page-title" });
  root.replaceChildren(
    h("a", { href: "#main", class: "skip" }, "Skip to content"),
    h("header", { class: "topbar" },
      menuBtn,
      h("a", { href: "/app/usage", class: "brand" }, h("span", { class: "logo", "aria-hidden": "true" }), "API Key Wallet"),
      h("div", { class: "topbar-right" }, switcher,
        h("span", { class: "who" }, u.name || u.email, u.role === "ADMIN" ? h("span", { class: "badge info" }, "admin") : null),
        h("button", { class: "btn ghost", type: "button", id: "logout", onclick: signOut }, "Log out"))),
    h("div", { class: "shell" }, side, main));
  document.title = `${title} · API Key Wallet`;
  return main;
}

let generation = 0;

// settle keeps the cleanup of the page now shown; a page whose render
// finished after the user moved on is stopped at once (its live stream
// would otherwise keep running, and hold a connection, in the background).
function settle(gen, stop) {
  if (!stop) return;
  if (gen === generation) cleanup = stop; else stop();
}

export async function route() {
  const gen = ++generation;
  if (cleanup) { cleanup(); cleanup = null; }
  document.body.classList.remove("nav-open");
  let path = location.pathname.replace(/\/+$/, "") || "/";
  if (path === "/app") path = "/app/usage";
  try {
    if (path === "/") {
      if (session.user) path = "/app/usage";
      else {
        document.title = "API Key Wallet · route every call to the cheapest key";
        settle(gen, await landing(root));
        return;
      }
    }
    if (path === "/app/login" || path === "/app/register") {
      if (session.user) { go("/app/usage", true); return; }
      document.title = (path === "/app/login" ? "Log in" : "Create your account") + " · API Key Wallet";
      (path === "/app/login" ? loginPage : registerPage)(root);
      return;
    }
    if (!session.user) { go(`/app/login?next=${encodeURIComponent(path + location.search)}`, true); return; }
    const page = pages[path];
    const main = layout(path, page ? page.title : "Not found");
    if (!page || (page.admin && session.user.role !== "ADMIN")) {
      main.append(h("h1", { id: "page-title" }, "Page not found"),
        h("p", {}, "There is nothing at this address. ", h("a", { href: "/app/usage" }, "Go to your usage"), "."));
      return;
    }
    settle(gen, await page.render(main));
  } catch (err) {
    root.replaceChildren(h("main", { id: "main", class: "content narrow" }, h("h1", { id: "page-title" }, "API Key Wallet"), errorBox(err)));
  }
}

// In-app links navigate without reloading.
document.addEventListener("click", (ev) => {
  const a = ev.target.closest("a");
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || a.target || a.hasAttribute("download")) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.hash || !(url.pathname === "/" || url.pathname.startsWith("/app"))) return;
  ev.preventDefault();
  go(url.pathname + url.search);
});
window.addEventListener("popstate", route);

(async () => {
  try {
    await loadSession();
  } catch (err) {
    root.replaceChildren(h("main", { id: "main", class: "content narrow" }, h("h1", {}, "API Key Wallet"), errorBox(err)));
    return;
  }
  route();
})();
