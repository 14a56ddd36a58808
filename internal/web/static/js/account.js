// Team (workspaces, members, invitations), plan and billing, alerts,
// audit log and settings.
import { h, api, session, money, count, date, day, pageHeader, loading, errorBox, empty, field, form, dialog, toast,
  table, badge, copy, query, setQuery, card } from "./lib.js";
import { route, reloadSession } from "./main.js";

const roles = ["viewer", "member", "admin", "owner"];

export async function teamPage(main) {
  const ws = session.workspace;
  main.replaceChildren(pageHeader("Team", `Members and invitations of ${ws.name}.`));
  const canManage = ws.role === "admin" || ws.role === "owner";
  const body = h("div", { class: "stack" }, loading("Loading the team"));
  main.append(body);
  let members, invitations;
  try {
    [members, invitations] = await Promise.all([api("GET", `/workspaces/${ws.id}/members`).then((d) => d.members),
      canManage ? api("GET", `/workspaces/${ws.id}/invitations`).then((d) => d.invitations) : []]);
  } catch (err) {
    body.replaceChildren(errorBox(err));
    return;
  }
  const reveal = h("div", { "aria-live": "polite" });
  const membersCard = card("Members", table("Members", [
    { label: "Name", rowHeader: true, value: (m) => h("div", {}, h("strong", {}, m.name), h("div", { class: "muted" }, m.email)) },
    { label: "Role", value: (m) => canManage && !m.personalOwner && m.userId !== session.user.id ? h("select", {
      "aria-label": `Role of ${m.name}`, onchange: async (ev) => {
        try { await api("PATCH", `/workspaces/${ws.id}/members/${m.userId}`, { role: ev.target.value }); toast("Role changed."); } catch (err) { toast(err.message); route(); }
      } }, roles.map((r) => h("option", { value: r, selected: r === m.role }, r))) : m.role },
    { label: "Joined", value: (m) => day(m.joinedAt) },
    { label: "Actions", value: (m) => canManage && !m.personalOwner && m.userId !== session.user.id ? h("button", { type: "button",
      class: "btn small danger", "aria-label": `Remove ${m.name}`, onclick: () => dialog(`Remove ${m.name}?`, () => h("p", {}, "They lose access to this workspace's keys and usage."), async () => {
        await api("DELETE", `/workspaces/${ws.id}/members/${m.userId}`); toast("Member removed."); route();
      }, "Remove") }, "Remove") : "" },
  ], members));
  const inviteForm = canManage && !ws.personal ? form({ class: "stack", "aria-label": "Invite someone" }, async (d, el) => {
    const inv = await api("POST", `/workspaces/${ws.id}/invitations`, { email: d.get("email"), role: d.get("role") });
    el.reset();
    const btn = h("button", { type: "button", class: "btn primary", onclick: (ev) => copy(inv.token, ev.target) }, "Copy");
    reveal.replaceChildren(h("div", { class: "notice ok" }, h("p", {}, `Invitation for ${inv.email} created. Send them this single-use token; it is shown once.`),
      h("div", { class: "copy-row" }, h("input", { class: "mono", readonly: true, value: inv.token, "aria-label": "Invitation token" }), btn)));
    return "";
  }, h("div", { class: "form-grid" },
    field("Email", h("input", { name: "email", type: "email", required: true })),
    field("Role", h("select", { name: "role" }, roles.slice(0, 3).map((r) => h("option", { value: r, selected: r === "member" }, r))))),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "btn primary" }, "Invite"))) : null;
  const invitesCard = canManage && !ws.personal ? card("Invitations", reveal, inviteForm, invitations.length ? table("Invitations", [
    { label: "Email", rowHeader: true, value: (i) => i.email },
    { label: "Role", value: (i) => i.role },
    { label: "Expires", value: (i) => i.expired ? badge("expired") : day(i.expiresAt) },
    { label: "Actions", value: (i) => h("button", { type: "button", class: "btn small", "aria-label": `Revoke invitation for ${i.email}`,
      onclick: async () => { try { await api("DELETE", `/workspaces/${ws.id}/invitations/${i.id}`); toast("Invitation revoked."); route(); } catch (err) { toast(err.message); } } }, "Revoke") },
  ], invitations) : h("p", { class: "muted" }, "No open invitations.")) : null;
  const newWs = card("New team workspace", form({ class: "inline-form", "aria-label": "Create a workspace" }, async (d) => {
    const w = await api("POST", "/workspaces", { name: d.get("name") });
    setQuery({ ws: w.id });
    await reloadSession();
    route();
  }, field("Workspace name", h("input", { name: "name", required: true, maxlength: "100" })),
  h("button", { type: "submit", class: "btn primary" }, "Create")),
  h("p", { class: "muted" }, ws.personal ? "Your personal workspace is yours alone; create a team workspace to share keys with others." : ""));
  const accept = card("Join a workspace", form({ class: "inline-form", "aria-label": "Accept an invitation" }, async (d) => {
    const r = await api("POST", "/invitations/accept", { token: d.get("token") });
    setQuery({ ws: r.workspace.id });
    await reloadSession();
    route();
  }, field("Invitation token", h("input", { name: "token", required: true, autocomplete: "off" })),
  h("button", { type: "submit", class: "btn" }, "Join")));
  body.replaceChildren(membersCard, invitesCard, h("div", { class: "grid2" }, newWs, accept));
}

function monthOf(d) { return d.toISOString().slice(0, 7); }

export async function billingPage(main) {
  main.replaceChildren(pageHeader("Plan & billing", "Your plan, this month's quota and your invoices."));
  const body = h("div", { class: "stack" }, loading("Loading your plan"));
  main.append(body);
  let st;
  try { st = await api("GET", "/billing/plan"); } catch (err) { body.replaceChildren(errorBox(err)); return; }
  const used = st.usedCalls, inc = st.includedCalls;
  const share = inc > 0 ? Math.min(1, used / inc) : 0;
  const bar = h("div", { class: `quota-bar ${share >= 0.9 ? "bad" : share >= 0.75 ? "warn" : ""}` }, h("span", { class: "quota-fill" }));
  bar.firstChild.style.width = `${(share * 100).toFixed(1)}%`;
  const planCard = h("section", { class: "card", "aria-labelledby": "plan-title" },
    h("div", { class: "card-head" }, h("h2", { id: "plan-title" }, `${st.plan.name} plan`), h("p", { class: "plan-price" }, `${money(st.plan.priceMicros)} / month`)),
    h("p", { id: "quota-text" }, `${count(used)} of ${count(inc)} calls used this month`, st.plan.hardStop ? " (hard stop at the limit)" : ""),
    h("div", { role: "progressbar", "aria-label": "Quota used", "aria-valuemin": "0", "aria-valuemax": String(inc), "aria-valuenow": String(Math.min(used, inc)) }, bar),
    h("div", { class: "stats compact" },
      h("div", { class: "stat" }, h("p", { class: "stat-label" }, "Remaining"), h("p", { class: "stat-value" }, count(st.remainingCalls))),
      h("div", { class: "stat" }, h("p", { class: "stat-label" }, "Overage so far"), h("p", { class: "stat-value" }, money(st.overageMicros))),
      h("div", { class: "stat" }, h("p", { class: "stat-label" }, "Projected month total"), h("p", { class: "stat-value" }, money(st.projected.totalMicros)))),
    h("p", { class: "muted" }, `Period ${day(st.period.start)} – ${day(st.period.end)}. Rate limit ${count(st.ratePerMinute)} calls per minute.`));
  const settings = card("Options", form({ class: "stack", "aria-label": "Billing options" }, async (d) => {
    await api("PATCH", "/billing/settings", { premiumRouting: d.get("premiumRouting") === "on", analyticsAddon: d.get("analyticsAddon") === "on" });
    return "Saved.";
  },
  h("label", { class: "check" }, h("input", { type: "checkbox", name: "premiumRouting", checked: st.settings.premiumRouting }),
    `Premium routing: cost-optimised strategies and cross-key fallback (${money(st.plan.premiumMicrosPerCall)} per routed call)`),
  h("label", { class: "check" }, h("input", { type: "checkbox", name: "analyticsAddon", checked: st.settings.analyticsAddon }),
    `Analytics add-on (${money(st.plan.analyticsAddonMicros)} / month)`),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "btn" }, "Save options"))));

  const months = [];
  const d = new Date();
  for (let i = 0; i < 12; i++) months.push(monthOf(new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - i, 1))));
  const picked = query().get("month") && months.includes(query().get("month")) ? query().get("month") : months[0];
  const invBox = h("div", {}, loading("Loading the invoice"));
  const picker = field("Month", h("select", { id: "inv-month", onchange: (ev) => { setQuery({ month: ev.target.value }); showInvoice(ev.target.value); } },
    months.map((m) => h("option", { value: m, selected: m === picked }, m))));
  const invoices = h("section", { class: "card", "aria-labelledby": "inv-title" }, h("div", { class: "card-head" }, h("h2", { id: "inv-title" }, "Invoices"), picker), invBox);
  body.replaceChildren(planCard, h("div", { class: "grid2" }, invoices, settings));
  async function showInvoice(month) {
    invBox.replaceChildren(loading("Loading the invoice"));
    try {
      const inv = await api("GET", `/billing/invoices/${month}`);
      const dl = h("button", { type: "button", class: "btn", onclick: () => downloadCSV(month) }, "Download CSV");
      invBox.replaceChildren(h("p", {}, `${inv.plan.name} · ${inv.status} · ${count(inv.usage.calls)} calls`), table(`Invoice ${month}`, [
        { label: "Item", rowHeader: true, value: (l) => l.description },
        { label: "Quantity", num: true, value: (l) => count(l.quantity) },
        { label: "Unit price", num: true, value: (l) => money(l.unitPriceMicros) },
        { label: "Amount", num: true, value: (l) => money(l.amountMicros) },
      ], inv.lines), h("p", { class: "total" }, h("span", {}, "Total "), h("strong", {}, money(inv.totalMicros))), h("div", { class: "actions" }, dl));
    } catch (err) { invBox.replaceChildren(errorBox(err)); }
  }
  showInvoice(picked);
}

async function downloadCSV(month) {
  try {
    const res = await api("GET", `/billing/invoices/${month}`, undefined, { accept: "text/csv", raw: true });
    const url = URL.createObjectURL(await res.blob());
    const a = h("a", { href: url, download: `invoice-${month}.csv`, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch (err) { toast(err.message); }
}

export async function alertsPage(main) {
  main.replaceChildren(pageHeader("Alerts", "Quota alerts as usage crosses your thresholds, delivered to your webhook."));
  const body = h("div", { class: "stack" }, loading("Loading alerts"));
  main.append(body);
  let list, st;
  try {
    [list, st] = await Promise.all([api("GET", "/alerts").then((d) => d.alerts), api("GET", "/alerts/settings")]);
  } catch (err) { body.replaceChildren(errorBox(err)); return; }
  const reveal = h("div", { "aria-live": "polite" });
  const settings = card("Settings", reveal, form({ class: "stack", "aria-label": "Alert settings" }, async (d) => {
    const th = String(d.get("thresholds")).split(/[\s,]+/).filter(Boolean).map(Number);
    const body = { thresholds: th, webhookUrl: d.get("webhook") || null };
    if (d.get("newSecret") === "on") body.webhookSecret = "";
    const out = await api("PUT", "/alerts/settings", body);
    if (out.webhookSecret) {
      reveal.replaceChildren(h("div", { class: "notice ok" }, h("p", {}, `New signing secret (shown once; signatures go in ${out.signatureHeader}):`),
        h("div", { class: "copy-row" }, h("input", { class: "mono", readonly: true, value: out.webhookSecret, "aria-label": "Webhook signing secret" }),
          h("button", { type: "button", class: "btn primary", onclick: (ev) => copy(out.webhookSecret, ev.target) }, "Copy"))));
    }
    return "Saved.";
  },
  field("Thresholds (% of quota)", h("input", { name: "thresholds", value: (st.thresholds || []).join(", "), inputmode: "numeric" }), "e.g. 50, 80, 100"),
  field("Webhook URL", h("input", { name: "webhook", type: "url", value: st.webhookUrl || "", placeholder: "https://example.com/hooks/wallet" })),
  h("label", { class: "check" }, h("input", { type: "checkbox", name: "newSecret" }), st.hasWebhookSecret ? "Replace the signing secret" : "Create a signing secret"),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "btn primary" }, "Save settings"))));
  const alerts = card("Recent alerts", list.length ? table("Alerts", [
    { label: "When", rowHeader: true, value: (a) => date(a.createdAt) },
    { label: "Alert", value: (a) => a.message },
    { label: "Used", num: true, value: (a) => `${count(a.used)} / ${count(a.limit)}` },
    { label: "Delivery", value: (a) => badge(a.delivery.state, a.delivery.state === "delivered" ? "ok" : a.delivery.state === "failed" ? "bad" : "") },
  ], list) : empty("No alerts yet.", "You are told here, and on your webhook, when usage crosses a threshold."));
  body.replaceChildren(h("div", { class: "grid2" }, alerts, settings));
}

export async function auditPage(main) {
  const q = query();
  main.replaceChildren(pageHeader("Audit log", "Every key operation, login and change, hash-chained."));
  const f = form({ class: "filters", "aria-label": "Filter the audit log" }, async (d) => {
    setQuery({ action: d.get("action"), before: "" });
    route();
  }, field("Action", h("input", { name: "action", value: q.get("action") || "", placeholder: "e.g. key. or auth.login" })),
  h("button", { type: "submit", class: "btn" }, "Filter"));
  const body = h("div", {}, loading("Loading events"));
  main.append(f, body);
  const p = new URLSearchParams({ limit: "50" });
  if (q.get("action")) p.set("action", q.get("action"));
  if (q.get("before")) p.set("before", q.get("before"));
  try {
    const d = await api("GET", `/audit?${p}`);
    body.replaceChildren(d.events.length ? h("section", { class: "card", "aria-label": "Events" }, table("Audit events", [
      { label: "When", rowHeader: true, value: (e) => date(e.createdAt) },
      { label: "Action", value: (e) => h("span", { class: "mono" }, e.action) },
      { label: "Outcome", value: (e) => badge(e.outcome, e.outcome === "success" ? "ok" : "bad") },
      { label: "Target", value: (e) => e.targetType ? `${e.targetType} ${e.targetId}` : "" },
      { label: "From", value: (e) => e.clientIp },
    ], d.events), d.next ? h("div", { class: "actions" }, h("a", { class: "btn", href: `/app/audit?${new URLSearchParams({ ...Object.fromEntries(q), before: String(d.next) })}` }, "Older events")) : null)
      : empty("No events match.", q.get("action") ? "Try another action, or clear the filter." : "Events appear as you log in and manage keys."));
  } catch (err) { body.replaceChildren(errorBox(err)); }
}

export async function settingsPage(main) {
  main.replaceChildren(pageHeader("Settings", "Reporting time zone, password and your data."));
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : ["UTC"];
  const current = await api("GET", "/billing/plan").then((p) => (p.settings && p.settings.timezone) || "UTC").catch(() => "UTC");
  const tz = card("Reporting time zone", h("p", { class: "muted" }, "Day buckets in usage reports follow this zone."),
    form({ class: "inline-form", "aria-label": "Time zone" }, async (d) => {
      await api("PATCH", "/billing/settings", { timezone: d.get("timezone") });
      return "Saved.";
    }, field("Time zone", h("select", { name: "timezone" }, ["UTC", ...zones.filter((z) => z !== "UTC")].map((z) => h("option", { value: z, selected: z === current }, z)))),
    h("button", { type: "submit", class: "btn" }, "Save")));
  const pw = card("Password", form({ class: "stack", "aria-label": "Change password" }, async (d) => {
    await api("POST", "/auth/password", { currentPassword: d.get("current"), newPassword: d.get("next") });
    // A password change revokes every login token, the session's too.
    await api("POST", "/auth/session", { email: session.user.email, password: d.get("next") });
    await reloadSession();
    return "Password changed.";
  }, field("Current password", h("input", { name: "current", type: "password", autocomplete: "current-password", required: true })),
  field("New password", h("input", { name: "next", type: "password", autocomplete: "new-password", required: true, minlength: "10" })),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "btn" }, "Change password"))));
  const data = card("Your data", h("p", {}, "Download everything the wallet holds about you (secrets excluded)."),
    h("button", { type: "button", class: "btn", onclick: async () => {
      try {
        const res = await api("GET", "/account/export", undefined, { raw: true });
        const url = URL.createObjectURL(await res.blob());
        const a = h("a", { href: url, download: "apiwallet-export.json", hidden: true });
        document.body.append(a); a.click(); a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 1000);
      } catch (err) { toast(err.message); }
    } }, "Export my data"));
  main.append(h("div", { class: "grid2" }, tz, pw, data));
}
