// Wallet administration (ADMIN only): business metrics, users, plans and
// the service catalog.
import { h, api, money, count, pct, day, pageHeader, loading, errorBox, empty, field, form, dialog, toast, table, badge,
  query, setQuery, stat } from "./lib.js";
import { route } from "./main.js";

export async function adminBusinessPage(main) {
  main.replaceChildren(pageHeader("Business", "Revenue and health across every workspace, this month."));
  const body = h("div", { class: "stack" }, loading("Loading the report"));
  main.append(body);
  try {
    const r = await api("GET", "/admin/reports/business");
    body.replaceChildren(
      h("div", { class: "stats" },
        stat("MRR", money(r.mrrMicros), `${money(r.planFeesMicros)} plans · ${money(r.addonFeesMicros)} add-ons`, "biz-mrr"),
        stat("ARPU", money(r.arpuMicros), "per paying workspace"),
        stat("Churn", r.churn.rate, `${count(r.churn.churned)} of ${count(r.churn.paidAtMonthStart)} paying at month start`),
        stat("Active workspaces", count(r.activeWorkspaces), `${count(r.payingWorkspaces)} paying of ${count(r.workspaces)}`)),
      h("div", { class: "stats" },
        stat("Key utilisation", r.keyUtilisation === undefined ? "–" : pct(100 * r.keyUtilisation), "active of registered keys"),
        stat("Success rate", r.successRate === undefined ? "–" : pct(100 * r.successRate), "of proxied calls"),
        stat("Avg response", r.avgResponseMs === undefined ? "–" : `${Math.round(r.avgResponseMs)} ms`, "upstream, all workspaces")),
      h("section", { class: "card", "aria-label": "Plan mix" }, h("h2", {}, "Plan mix"), table("Plan mix", [
        { label: "Plan", rowHeader: true, value: (m) => m.name || m.plan },
        { label: "Workspaces", num: true, value: (m) => count(m.workspaces) },
        { label: "With analytics", num: true, value: (m) => count(m.analyticsAddon) },
        { label: "MRR", num: true, value: (m) => money(m.mrrMicros) },
      ], r.planMix)));
  } catch (err) { body.replaceChildren(errorBox(err)); }
}

export async function adminUsersPage(main) {
  const q = query();
  main.replaceChildren(pageHeader("Users", "Every account on this wallet: role, plan and access."));
  const search = form({ class: "filters", "aria-label": "Find users" }, async (d) => { setQuery({ email: d.get("email") }); route(); },
    field("Email", h("input", { name: "email", type: "search", value: q.get("email") || "" })), h("button", { type: "submit", class: "btn" }, "Find"));
  const body = h("div", {}, loading("Loading users"));
  main.append(search, body);
  let users, plans;
  try {
    const p = new URLSearchParams({ limit: "100" });
    if (q.get("email")) p.set("email", q.get("email"));
    [users, plans] = await Promise.all([api("GET", `/admin/users?${p}`).then((d) => d.users), api("GET", "/admin/plans").then((d) => d.plans)]);
  } catch (err) { body.replaceChildren(errorBox(err)); return; }
  if (!users.length) { body.replaceChildren(empty("No users match.", "Clear the filter to see everyone.")); return; }
  const edit = async (u) => {
    const full = await api("GET", `/admin/users/${u.id}`).catch(() => u);
    dialog(`Edit ${u.email}`, () => h("div", { class: "form-grid" },
      field("Plan", h("select", { name: "plan", id: "user-plan" }, plans.map((p) => h("option", { value: p.id, selected: p.id === full.plan }, `${p.name} (${money(p.priceMicros)})`)))),
      field("Role", h("select", { name: "role" }, ["USER", "ADMIN"].map((r) => h("option", { value: r, selected: r === u.role }, r)))),
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "disabled", checked: u.disabled }), "Disabled (cannot log in or call)")),
    async (d) => {
      await api("PATCH", `/admin/users/${u.id}`, { plan: d.get("plan"), role: d.get("role"), disabled: d.get("disabled") === "on" });
      toast("User saved.");
      route();
    });
  };
  body.replaceChildren(h("section", { class: "card", "aria-label": "Users" }, table("Users", [
    { label: "User", rowHeader: true, value: (u) => h("div", {}, h("strong", {}, u.name), h("div", { class: "muted" }, u.email)) },
    { label: "Role", value: (u) => badge(u.role, u.role === "ADMIN" ? "info" : "") },
    { label: "Status", value: (u) => u.disabled ? badge("disabled", "bad") : badge("active", "ok") },
    { label: "Joined", value: (u) => day(u.createdAt) },
    { label: "Actions", value: (u) => h("button", { type: "button", class: "btn small", "aria-label": `Edit ${u.email}`, onclick: () => edit(u) }, "Edit") },
  ], users)));
}

export async function adminPlansPage(main) {
  main.replaceChildren(pageHeader("Plans", "Prices and quotas. A change shows on the landing page at once."));
  const body = h("div", {}, loading("Loading plans"));
  main.append(body);
  let plans;
  try { plans = (await api("GET", "/admin/plans")).plans; } catch (err) { body.replaceChildren(errorBox(err)); return; }
  const dollars = (m) => (m / 1e6).toString();
  const edit = (p) => dialog(`Edit ${p.name}`, () => h("div", { class: "form-grid" },
    field("Name", h("input", { name: "name", value: p.name, required: true })),
    field("Price per month (USD)", h("input", { name: "price", id: "plan-price", type: "number", min: "0", step: "0.01", value: dollars(p.priceMicros) })),
    field("Calls included", h("input", { name: "included", type: "number", min: "0", value: String(p.includedCalls) })),
    field("Overage per call (USD)", h("input", { name: "overage", type: "number", min: "0", step: "0.000001", value: dollars(p.overageMicrosPerCall) })),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "hardStop", checked: p.hardStop }), "Hard stop at the limit"),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "active", checked: p.active }), "On offer")),
  async (d) => {
    await api("PUT", `/admin/plans/${p.id}`, { name: d.get("name"), priceMicros: Math.round(Number(d.get("price")) * 1e6),
      includedCalls: Number(d.get("included")), overageMicrosPerCall: Math.round(Number(d.get("overage")) * 1e6),
      hardStop: d.get("hardStop") === "on", active: d.get("active") === "on" });
    toast("Plan saved.");
    route();
  });
  body.replaceChildren(h("section", { class: "card", "aria-label": "Plans" }, table("Plans", [
    { label: "Plan", rowHeader: true, value: (p) => h("strong", {}, p.name) },
    { label: "Price", num: true, value: (p) => money(p.priceMicros) },
    { label: "Included", num: true, value: (p) => count(p.includedCalls) },
    { label: "Overage", num: true, value: (p) => p.hardStop ? "hard stop" : money(p.overageMicrosPerCall) },
    { label: "Status", value: (p) => p.active ? badge("on offer", "ok") : badge("retired") },
    { label: "Actions", value: (p) => h("button", { type: "button", class: "btn small", "aria-label": `Edit ${p.name}`, onclick: () => edit(p) }, "Edit") },
  ], plans)));
}

export async function adminServicesPage(main) {
  main.replaceChildren(pageHeader("Services", "The catalog of upstream APIs: where calls go and what a paid call costs."));
  const body = h("div", {}, loading("Loading services"));
  main.append(body);
  let services;
  try { services = (await api("GET", "/services")).services; } catch (err) { body.replaceChildren(errorBox(err)); return; }
  const edit = (s) => dialog(`Edit ${s.displayName || s.name}`, () => h("div", { class: "form-grid" },
    field("Display name", h("input", { name: "displayName", value: s.displayName || "" })),
    field("Base URL", h("input", { name: "baseUrl", type: "url", value: s.baseUrl, required: true })),
    field("Price per paid call (USD)", h("input", { name: "price", type: "number", min: "0", step: "0.000001", value: String(s.priceMicros / 1e6) })),
    field("Free-tier quota", h("input", { name: "freeQuota", type: "number", min: "0", value: String(s.freeQuota) }))),
  async (d) => {
    await api("PUT", `/admin/services/${s.name}`, { ...s, displayName: d.get("displayName"), baseUrl: d.get("baseUrl"),
      priceMicros: Math.round(Number(d.get("price")) * 1e6), freeQuota: Number(d.get("freeQuota")) });
    toast("Service saved.");
    route();
  });
  body.replaceChildren(services.length ? h("section", { class: "card", "aria-label": "Services" }, table("Services", [
    { label: "Service", rowHeader: true, value: (s) => h("div", {}, h("strong", {}, s.displayName || s.name), h("div", { class: "mono muted" }, s.name)) },
    { label: "Base URL", value: (s) => h("span", { class: "mono" }, s.baseUrl) },
    { label: "Key goes in", value: (s) => s.auth.name ? `${s.auth.kind} ${s.auth.name}` : s.auth.kind },
    { label: "Price / call", num: true, value: (s) => money(s.priceMicros) },
    { label: "Free quota", num: true, value: (s) => s.freeQuota ? `${count(s.freeQuota)} / ${s.freePeriod || "month"}` : "none" },
    { label: "Actions", value: (s) => h("button", { type: "button", class: "btn small", "aria-label": `Edit ${s.name}`, onclick: () => edit(s) }, "Edit") },
  ], services)) : empty("No services.", "Add one with PUT /admin/services/{name}."));
}
