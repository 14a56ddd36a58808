// Shared helpers: DOM building, the API client, formatting.
//
// Pages build their DOM with h(), which sets text as text (never HTML) and
// never writes style attributes, so the strict CSP holds and data from the
// API cannot inject markup.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "value") el.value = v;
    else if (k === "checked" || k === "selected" || k === "disabled" || k === "hidden" || k === "required") el[k] = !!v;
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// Session state: the CSRF token lives in this module only (memory), never
// in storage; the session itself is an HttpOnly cookie script cannot read.
export const session = { user: null, csrf: "", workspace: null, workspaces: [] };

export class ApiError extends Error {
  constructor(status, problem) {
    super(describeProblem(status, problem));
    this.status = status;
    this.problem = problem || {};
  }
}

function describeProblem(status, p) {
  if (!p) return status === 0 ? "The wallet could not be reached. Check your connection and try again." :
    `The wallet answered ${status}.`;
  let msg = p.detail || p.title || `The wallet answered ${status}.`;
  if (Array.isArray(p.errors) && p.errors.length) {
    msg += ": " + p.errors.map((e) => `${e.field} ${e.detail}`).join("; ");
  }
  return msg;
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

// api calls the wallet's HTTP API with the session cookie. Changes carry
// the CSRF token; the acting workspace goes in X-Workspace-Id.
export async function api(method, path, body, { accept = "application/json", raw = false, quiet401 = false } = {}) {
  const headers = { Accept: accept };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (!["GET", "HEAD"].includes(method) && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  if (session.workspace && !path.startsWith("/auth/")) headers["X-Workspace-Id"] = session.workspace.id;
  let res;
  try {
    res = await fetch(path, { method, headers, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, null);
  }
  if (!res.ok) {
    let p = null;
    try { p = await res.json(); } catch { /* not JSON */ }
    if (res.status === 401 && !quiet401) onUnauthorized();
    throw new ApiError(res.status, p);
  }
  if (raw) return res;
  if (res.status === 204) return null;
  return res.json();
}

// Formatting. Money is integer micro-dollars.
const usd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
// Under a dollar, cents hide what per-call prices add up to: show up to
// four decimals ($0.0105), and three significant digits below that.
const usdSmall = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 4 });
const usdFine = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumSignificantDigits: 3 });
const num = new Intl.NumberFormat("en-US");

export function money(micros) {
  const d = (micros || 0) / 1e6;
  if (d !== 0 && Math.abs(d) < 0.0001) return usdFine.format(d);
  if (Math.abs(d) < 1) return usdSmall.format(d);
  return usd.format(d);
}
export function count(n) { return num.format(n || 0); }
export function pct(x, digits = 1) { return `${(x || 0).toFixed(digits)}%`; }
export function date(s) {
  if (!s) return "never";
  const d = new Date(s);
  return d.toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" });
}
// ago is a past time as a short phrase ("5 min ago"), for columns that
// must stay narrow; older than a month it is the date.
export function ago(s, now = Date.now()) {
  if (!s) return "never";
  const secs = Math.max(0, (now - new Date(s).getTime()) / 1000);
  if (secs < 60) return "just now";
  if (secs < 3600) return `${Math.floor(secs / 60)} min ago`;
  if (secs < 86400) return `${Math.floor(secs / 3600)} h ago`;
  if (secs < 30 * 86400) { const d = Math.floor(secs / 86400); return d === 1 ? "yesterday" : `${d} days ago`; }
  return day(s);
}
export function day(s) { return s ? new Date(s).toLocaleDateString("en-GB", { dateStyle: "medium" }) : ""; }

// UI pieces every page uses.

export function pageHeader(title, lead, ...actions) {
  return h("header", { class: "page-head" },
    h("div", {}, h("h1", { id: "page-title", tabindex: "-1" }, title), lead ? h("p", { class: "lead" }, lead) : null),
    actions.length ? h("div", { class: "actions" }, actions) : null);
}

export function loading(what = "Loading") {
  return h("p", { class: "loading", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), `${what}…`);
}

export function errorBox(err) {
  return h("div", { class: "notice error", role: "alert" }, h("strong", {}, "Something went wrong. "), err.message || String(err));
}

export function empty(title, next, action) {
  return h("div", { class: "empty" }, h("p", { class: "empty-title" }, title), h("p", {}, next), action || null);
}

export function card(title, ...body) {
  return h("section", { class: "card", "aria-label": title }, h("h2", {}, title), body);
}

export function stat(label, value, note, id) {
  return h("div", { class: "stat" }, h("p", { class: "stat-label" }, label),
    h("p", { class: "stat-value", id }, value), note ? h("p", { class: "stat-note" }, note) : null);
}

let fieldSeq = 0;
// field is a labelled form control.
export function field(label, control, hint) {
  const id = control.id || `f${++fieldSeq}`;
  control.id = id;
  let hintEl = null;
  if (hint) {
    hintEl = h("span", { class: "hint", id: `${id}-hint` }, hint);
    control.setAttribute("aria-describedby", `${id}-hint`);
  }
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hintEl);
}

// form wires submit to fn with a busy state and an error line.
export function form(attrs, fn, ...children) {
  const status = h("p", { class: "form-status", role: "status", "aria-live": "polite" });
  const el = h("form", { ...attrs, novalidate: true }, children, status);
  el.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!el.reportValidity()) return;
    const btns = el.querySelectorAll("button");
    btns.forEach((b) => { b.disabled = true; });
    status.className = "form-status";
    status.textContent = "Working…";
    try {
      const msg = await fn(new FormData(el), el);
      status.textContent = msg || "";
      if (msg) status.classList.add("ok");
    } catch (err) {
      status.textContent = err.message;
      status.classList.add("error");
    } finally {
      btns.forEach((b) => { b.disabled = false; });
    }
  });
  return el;
}

// dialog opens a modal with a form; fn runs on submit and closes it when
// it succeeds.
export function dialog(title, build, fn, submitLabel = "Save") {
  const dlg = h("dialog", { class: "modal", "aria-labelledby": "dlg-title" });
  const close = () => { dlg.close(); dlg.remove(); };
  const f = form({}, async (data) => { await fn(data); close(); },
    h("h2", { id: "dlg-title" }, title), build(),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "btn ghost", onclick: close }, "Cancel"),
      h("button", { type: "submit", class: "btn primary" }, submitLabel)));
  dlg.append(f);
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  return dlg;
}

export function toast(msg) {
  const region = document.getElementById("toasts");
  const t = h("p", { class: "toast" }, msg);
  region.append(t);
  setTimeout(() => t.remove(), 4000);
}

export function table(caption, cols, rows) {
  return h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { class: "sr-only" }, caption),
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, cols.map((c, i) => {
      const v = c.value(r);
      return i === 0 && c.rowHeader ? h("th", { scope: "row" }, v) : h("td", { class: c.num ? "num" : null, "data-label": c.label }, v);
    }))))));
}

// Query-string state: filters live in the URL so a view can be shared.
export function query() { return new URLSearchParams(location.search); }
export function setQuery(params) {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(params)) {
    if (v === "" || v === null || v === undefined) q.delete(k); else q.set(k, v);
  }
  const s = q.toString();
  history.replaceState(null, "", location.pathname + (s ? `?${s}` : ""));
}

export function badge(text, kind = "") { return h("span", { class: `badge ${kind}` }, text); }

export async function copy(text, btn) {
  try {
    await navigator.clipboard.writeText(text);
    btn.textContent = "Copied";
  } catch {
    btn.textContent = "Select and copy";
  }
  setTimeout(() => { btn.textContent = "Copy"; }, 2000);
}
