// Keys (add, edit, rotate, disable, delete; the secret is typed once and
// never shown again) and wallet access tokens (shown once, with a copy
// button; revoke).
import { h, api, count, pct, date, ago, pageHeader, loading, errorBox, empty, field, form, dialog, toast, table, badge, copy }
  from "./lib.js";
import { route } from "./main.js";

const statusKind = { active: "ok", disabled: "", cooldown: "warn", quarantined: "bad", exhausted: "warn" };

function secretInput(name, label) {
  return field(label, h("input", { name, type: "password", autocomplete: "off", spellcheck: "false", required: true }),
    "Stored encrypted; the wallet never shows it again, only a masked form.");
}

function keyFields(services, k = {}) {
  const md = k.metadata || {};
  return h("div", { class: "form-grid" },
    k.id ? null : field("Service", h("select", { name: "service", required: true },
      services.map((s) => h("option", { value: s.name }, s.displayName || s.name)))),
    field("Tier", h("select", { name: "tier" },
      h("option", { value: "free", selected: k.tier === "free" }, "Free tier"),
      h("option", { value: "paid", selected: k.tier !== "free" }, "Paid"))),
    field("Label", h("input", { name: "label", value: k.label || "", maxlength: "100", placeholder: "e.g. Production" })),
    field("Description", h("input", { name: "description", value: md.description || "", maxlength: "500" })),
    field("Free quota (calls per period)", h("input", { name: "quota", type: "number", min: "0", value: md.quota ?? "" }),
      "Leave empty to use the service's free-tier quota"),
    field("Priority", h("input", { name: "priority", type: "number", min: "0", max: "1000", value: String(k.priority ?? 0) }),
      "Lower goes first among keys of the same cost"));
}

function metadataFrom(d, k = {}) {
  const q = d.get("quota");
  return { type: (k.metadata && k.metadata.type) || "", quota: q === "" ? null : Number(q), description: d.get("description") };
}

export async function keysPage(main) {
  const services = await api("GET", "/services").then((d) => d.services).catch(() => []);
  const add = () => dialog("Add a key", () => h("div", {}, keyFields(services), secretInput("key", "Secret key")), async (d) => {
    await api("POST", "/keys", { key: d.get("key"), service: d.get("service"), tier: d.get("tier"), label: d.get("label"),
      priority: Number(d.get("priority") || 0), metadata: metadataFrom(d) });
    toast("Key added. Its secret is stored encrypted and will not be shown again.");
    route();
  }, "Add key");
  main.replaceChildren(pageHeader("Keys", "Upstream API keys the wallet routes calls to: free tiers first, then paid keys by price and priority.",
    h("button", { type: "button", class: "btn primary", id: "add-key", onclick: add }, "Add a key")));
  const body = h("div", {}, loading("Loading keys"));
  main.append(body);
  let keys, health;
  try {
    [keys, health] = await Promise.all([api("GET", "/keys?limit=500").then((d) => d.keys),
      api("GET", "/usage/keys").catch(() => null)]);
  } catch (err) {
    body.replaceChildren(errorBox(err));
    return;
  }
  if (!keys.length) {
    body.replaceChildren(empty("No keys yet.", "Add a free-tier key and a paid key for a service: the wallet spends the free quota first and saves you the difference.",
      h("button", { type: "button", class: "btn primary", onclick: add }, "Add your first key")));
    return;
  }
  const hk = new Map(((health && health.keys) || []).map((k) => [k.id, k]));
  const summary = health && health.summary ? h("div", { class: "stats compact" },
    h("div", { class: "stat" }, h("p", { class: "stat-label" }, "Key utilisation"),
      h("p", { class: "stat-value" }, `${health.summary.active} of ${health.summary.registered} active`)),
    h("div", { class: "stat" }, h("p", { class: "stat-label" }, "Success rate"), h("p", { class: "stat-value" }, pct(100 * (health.summary.successRate || 0)))),
    h("div", { class: "stat" }, h("p", { class: "stat-label" }, "Avg response"), h("p", { class: "stat-value" }, `${Math.round(health.summary.avgResponseMs || 0)} ms`))) : null;

  const act = (k) => h("div", { class: "row-actions" },
    h("button", { type: "button", class: "btn small", "aria-label": `Edit ${k.label || k.maskedKey}`, onclick: () => edit(k) }, "Edit"),
    h("button", { type: "button", class: "btn small", "aria-label": `Rotate ${k.label || k.maskedKey}`, onclick: () => rotate(k) }, "Rotate"),
    h("button", { type: "button", class: "btn small", "aria-label": `${k.enabled ? "Disable" : "Enable"} ${k.label || k.maskedKey}`,
      onclick: async (ev) => {
        ev.target.disabled = true;
        try {
          await api("PATCH", `/keys/${k.id}`, { enabled: !k.enabled });
          toast(k.enabled ? "Key disabled: no call will use it." : "Key enabled.");
          route();
        } catch (err) { toast(err.message); ev.target.disabled = false; }
      } }, k.enabled ? "Disable" : "Enable"),
    h("button", { type: "button", class: "btn small danger", "aria-label": `Delete ${k.label || k.maskedKey}`, onclick: () => remove(k) }, "Delete"));
  const edit = (k) => dialog(`Edit ${k.label || k.maskedKey}`, () => keyFields(services, k), async (d) => {
    await api("PATCH", `/keys/${k.id}`, { tier: d.get("tier"), label: d.get("label"), priority: Number(d.get("priority") || 0),
      metadata: metadataFrom(d, k) });
    toast("Key saved.");
    route();
  });
  const rotate = (k) => dialog(`Rotate ${k.label || k.maskedKey}`, () => h("div", {},
    h("p", {}, "Paste the new secret from the provider. The key keeps its id, settings, usage and audit trail."),
    secretInput("key", "New secret key")), async (d) => {
    await api("POST", `/keys/${k.id}/rotate`, { key: d.get("key") });
    toast("Key rotated.");
    route();
  }, "Rotate");
  const remove = (k) => dialog(`Delete ${k.label || k.maskedKey}?`, () => h("p", {},
    "The key is deleted for good; calls will use your other keys. Its past usage stays in the reports."), async () => {
    await api("DELETE", `/keys/${k.id}`);
    toast("Key deleted.");
    route();
  }, "Delete key");

  body.replaceChildren(h("div", { class: "stack" }, summary, h("section", { class: "card", "aria-label": "Your keys" }, table("Keys", [
    { label: "Key", rowHeader: true, value: (k) => h("div", {}, h("strong", {}, k.label || k.service),
      h("div", { class: "muted" }, `${k.service} · `, h("span", { class: "mono" }, k.maskedKey))) },
    { label: "Tier", value: (k) => badge(k.tier, k.tier === "free" ? "ok" : "info") },
    { label: "Status", value: (k) => {
      const st = (hk.get(k.id) || {}).status || k.status;
      return badge(st, statusKind[st] ?? "");
    } },
    { label: "Free used", num: true, value: (k) => {
      const x = hk.get(k.id);
      if (k.tier !== "free") return "–";
      return x ? h("span", { title: `${count(x.freeLeft)} left this period` }, `${count(x.freeUsed)} of ${count(x.freeQuota)}`)
        : (k.metadata.quota ?? "service default");
    } },
    { label: "Errors / 429", num: true, value: (k) => {
      const x = hk.get(k.id);
      return x ? `${pct(100 * (x.errorRate || 0))} / ${pct(100 * (x.rateLimitedRate || 0))}` : "–";
    } },
    { label: "Last used", value: (k) => {
      const at = (hk.get(k.id) || {}).lastUsedAt || k.lastUsedAt;
      return h("time", at ? { datetime: at, title: date(at) } : {}, ago(at));
    } },
    { label: "Actions", value: act },
  ], keys))));
}

export async function tokensPage(main) {
  const services = await api("GET", "/services").then((d) => d.services).catch(() => []);
  const reveal = h("div", { id: "token-reveal", "aria-live": "polite" });
  const create = form({ class: "card stack", "aria-labelledby": "new-token" }, async (d, el) => {
    const chosen = services.filter((s) => d.getAll("services").includes(s.name)).map((s) => s.name);
    const exp = d.get("expires");
    const t = await api("POST", "/tokens", { name: d.get("name"), services: chosen,
      expires_at: exp ? new Date(`${exp}T23:59:59Z`).toISOString() : undefined });
    el.reset();
    const out = h("input", { id: "new-token-value", class: "mono", readonly: true, value: t.token, "aria-label": "New access token" });
    const btn = h("button", { type: "button", class: "btn primary", onclick: (ev) => copy(t.token, ev.target) }, "Copy");
    reveal.replaceChildren(h("div", { class: "notice ok" },
      h("p", {}, h("strong", {}, `Token “${t.name}” created. `), "Copy it now: it is shown only once and stored as a hash."),
      h("div", { class: "copy-row" }, out, btn)));
    loadList();
    return "";
  },
  h("h2", { id: "new-token" }, "Create a token"),
  h("div", { class: "form-grid" },
    field("Name", h("input", { name: "name", required: true, maxlength: "100", placeholder: "e.g. checkout-service" })),
    field("Expires (optional)", h("input", { name: "expires", type: "date" }))),
  h("fieldset", { class: "checks" }, h("legend", {}, "Services it may call (none: all)"),
    services.map((s) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "services", value: s.name }), s.displayName || s.name))),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "btn primary" }, "Create token")));

  const list = h("section", { class: "card", "aria-labelledby": "tok-list" }, h("h2", { id: "tok-list" }, "Tokens"), loading("Loading tokens"));
  main.replaceChildren(pageHeader("Access tokens", "Apps and SDKs call the wallet with these, never with your upstream keys."), reveal, create, list);
  async function loadList() {
    try {
      const toks = (await api("GET", "/tokens?limit=499")).tokens;
      list.replaceChildren(h("h2", { id: "tok-list" }, "Tokens"), toks.length ? table("Access tokens", [
        { label: "Name", rowHeader: true, value: (t) => h("div", {}, h("strong", {}, t.name), h("div", { class: "mono muted" }, t.masked)) },
        { label: "Services", value: (t) => t.services.length ? t.services.join(", ") : "all" },
        { label: "Status", value: (t) => badge(t.status, t.status === "active" ? "ok" : "") },
        { label: "Created", value: (t) => date(t.createdAt) },
        { label: "Last used", value: (t) => h("time", t.lastUsedAt ? { datetime: t.lastUsedAt, title: date(t.lastUsedAt) } : {}, ago(t.lastUsedAt)) },
        { label: "Actions", value: (t) => t.status === "active" ? h("button", { type: "button", class: "btn small danger",
          "aria-label": `Revoke ${t.name}`, onclick: () => dialog(`Revoke ${t.name}?`, () => h("p", {}, "Apps using it get 401 from now on."), async () => {
            await api("DELETE", `/tokens/${t.id}`);
            toast("Token revoked.");
            loadList();
          }, "Revoke") }, "Revoke") : "" },
      ], toks) : empty("No tokens yet.", "Create one above for each app, scoped to the services it needs."));
    } catch (err) {
      list.replaceChildren(h("h2", { id: "tok-list" }, "Tokens"), errorBox(err));
    }
  }
  loadList();
}
