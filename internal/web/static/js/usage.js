// Usage and savings: figures for a period with the change from the one
// before, calls over time per service, cost and savings over time, a
// breakdown by service, key or tier, and recommendations. The figures and
// charts move live with GET /usage/live (Server-Sent Events).
import uPlot from "/static/vendor/uplot/uPlot.esm.js";
import { h, api, session, money, count, pct, pageHeader, loading, errorBox, empty, field, query, setQuery,
  table, badge, card } from "./lib.js";
import { route } from "./main.js";

const ranges = { month: "This month", "24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days" };
const breakdowns = { service: "Service", key: "Key", tier: "Tier" };

function period(range) {
  const now = new Date();
  switch (range) {
    case "24h": return { from: new Date(now - 864e5).toISOString() };
    case "7d": return { from: new Date(now - 7 * 864e5).toISOString() };
    case "30d": return { from: new Date(now - 30 * 864e5).toISOString() };
    default: return {};
  }
}

function usageQuery(extra) {
  const q = query();
  const p = new URLSearchParams({ ...period(q.get("range") || "month"), ...extra });
  if (q.get("service")) p.set("service", q.get("service"));
  return `/usage?${p}`;
}

export async function usagePage(main) {
  const q = query();
  const range = q.get("range") in ranges ? q.get("range") : "month";
  const bucket = q.get("bucket") === "hour" || (range === "24h" && !q.get("bucket")) ? "hour" : "day";
  const by = q.get("by") in breakdowns ? q.get("by") : "service";
  const services = await api("GET", "/services").then((d) => d.services).catch(() => []);

  const select = (id, label, options, value, param) => field(label, h("select", { id, onchange: (ev) => {
    setQuery({ [param]: ev.target.value });
    route();
  } }, Object.entries(options).map(([v, l]) => h("option", { value: v, selected: v === value }, l))));
  const filters = h("form", { class: "filters", "aria-label": "Filters" },
    select("f-range", "Period", ranges, range, "range"),
    select("f-bucket", "Chart by", { day: "Day", hour: "Hour" }, bucket, "bucket"),
    select("f-service", "Service", { "": "All services", ...Object.fromEntries(services.map((s) => [s.name, s.displayName || s.name])) },
      q.get("service") || "", "service"));
  filters.addEventListener("submit", (ev) => ev.preventDefault());

  const liveStatus = h("span", { id: "live-status", class: "live", role: "status" }, "Connecting…");
  main.replaceChildren(pageHeader("Usage & savings", "What your apps called, what it cost, and what free tiers saved.",
    liveStatus), filters);
  const body = h("div", { class: "stack" }, loading("Loading usage"));
  main.append(body);

  let totals, series, breakdown;
  try {
    [totals, series, breakdown] = await Promise.all([
      api("GET", usageQuery({ group_by: "service" })),
      api("GET", usageQuery({ group_by: bucket })),
      by === "service" ? null : api("GET", usageQuery({ group_by: by })),
    ]);
  } catch (err) {
    body.replaceChildren(errorBox(err));
    liveStatus.textContent = "";
    return null;
  }
  breakdown = breakdown || totals;

  // Per-service series for the top services of the period.
  const top = totals.rows.filter((r) => r.calls > 0).sort((a, b) => b.calls - a.calls).slice(0, 4);
  const perService = await Promise.all(top.map((r) => api("GET", usageQuery({ group_by: bucket, service: r.group }))
    .then((d) => ({ name: r.group, label: r.label || r.group, rows: d.rows })).catch(() => null)));

  const t = totals.totals;
  const prev = totals.previous ? totals.previous.totals : null;
  const stats = h("div", { class: "stats" },
    statLive("Calls", "stat-calls", count(t.calls), change(t.calls, prev && prev.calls)),
    statLive("Cost", "stat-cost", money(t.costMicros), change(t.costMicros, prev && prev.costMicros)),
    statLive("Saved", "stat-savings", money(t.savingsMicros), `${pct(t.savingsPercent)} of the paid-key price, thanks to free tiers`),
    statLive("Errors", "stat-errors", count(errorsOf(t)), t.calls ? `${pct(100 * errorsOf(t) / t.calls)} of calls` : "no calls yet"),
    statLive("Latency p95", "stat-p95", `${Math.round(t.latencyMs ? t.latencyMs.p95 : 0)} ms`,
      `wallet overhead p95 ${Math.round(t.overheadMs ? t.overheadMs.p95 : 0)} ms`));

  const noCalls = t.calls === 0;
  const callsChart = h("div", { class: "chart", id: "chart-calls", role: "img", "aria-label": "Calls over time, per service" });
  const moneyChart = h("div", { class: "chart", id: "chart-money", role: "img", "aria-label": "Cost and savings over time" });
  const chartTable = h("div", { class: "chart-table" });
  const charts = h("section", { class: "card", "aria-labelledby": "calls-title" },
    h("div", { class: "card-head" }, h("h2", { id: "calls-title" }, "Calls over time"), h("p", { class: "muted" }, `per ${bucket}, ${ranges[range].toLowerCase()}`)),
    noCalls ? empty("No calls in this period yet.", "Add a key, create an access token and point your app at the wallet; calls show up here as they happen.",
      h("a", { href: "/app/keys", class: "btn primary" }, "Add a key")) : null,
    callsChart,
    h("h2", { class: "sub" }, "Cost and savings"), moneyChart,
    h("details", {}, h("summary", {}, "Show the figures as a table"), chartTable));

  const byTabs = h("div", { class: "segmented", role: "group", "aria-label": "Break down by" },
    Object.entries(breakdowns).map(([v, l]) => h("button", { type: "button", class: "seg", "aria-pressed": String(v === by),
      onclick: () => { setQuery({ by: v === "service" ? "" : v }); route(); } }, l)));
  const breakdownCard = h("section", { class: "card", "aria-labelledby": "bd-title" },
    h("div", { class: "card-head" }, h("h2", { id: "bd-title" }, `By ${breakdowns[by].toLowerCase()}`), byTabs),
    breakdown.rows.length ? table(`Usage by ${by}`, [
      { label: breakdowns[by], rowHeader: true, value: (r) => r.label || r.group },
      { label: "Calls", num: true, value: (r) => count(r.calls) },
      { label: "Success", num: true, value: (r) => r.calls ? pct(100 * r.successes / r.calls) : "–" },
      { label: "p95", num: true, value: (r) => `${Math.round(r.latencyMs ? r.latencyMs.p95 : 0)} ms` },
      { label: "Cost", num: true, value: (r) => money(r.costMicros) },
      { label: "Saved", num: true, value: (r) => money(r.savingsMicros) },
      { label: "Saved %", num: true, value: (r) => pct(r.savingsPercent) },
    ], breakdown.rows) : empty("Nothing to break down yet.", "Calls made through the wallet appear here by service, key and tier."));

  const recBox = h("div", { class: "recs" }, loading("Loading recommendations"));
  const healthBox = h("div", {}, loading("Loading key health"));
  body.replaceChildren(stats, charts, h("div", { class: "grid2" }, card("Recommendations", recBox), card("Key health", healthBox)), breakdownCard);

  // Charts.
  const xs = series.rows.map((r) => Math.floor(new Date(r.group).getTime() / 1000));
  const data = {
    xs,
    total: series.rows.map((r) => r.calls),
    cost: series.rows.map((r) => r.costMicros / 1e6),
    saved: series.rows.map((r) => r.savingsMicros / 1e6),
    svc: perService.filter(Boolean).map((s) => ({ ...s, ys: alignRows(xs, s.rows) })),
  };
  const plots = [];
  if (!noCalls || xs.length) {
    plots.push(chart(callsChart, [{ label: "All calls", ys: data.total, color: 0 },
      ...data.svc.map((s, i) => ({ label: s.label, ys: s.ys, color: i + 1 }))], count));
    plots.push(chart(moneyChart, [{ label: "Cost", ys: data.cost, color: 5 }, { label: "Saved", ys: data.saved, color: 1 }],
      (v) => money(Math.round(v * 1e6))));
  }
  const redraw = () => {
    plots[0] && plots[0].setData([data.xs, data.total, ...data.svc.map((s) => s.ys)]);
    plots[1] && plots[1].setData([data.xs, data.cost, data.saved]);
    chartTable.replaceChildren(table("Calls, cost and savings per bucket", [
      { label: bucket === "hour" ? "Hour" : "Day", rowHeader: true, value: (i) => new Date(data.xs[i] * 1000).toLocaleString("en-GB",
        bucket === "hour" ? { dateStyle: "short", timeStyle: "short" } : { dateStyle: "medium" }) },
      { label: "Calls", num: true, value: (i) => count(data.total[i]) },
      { label: "Cost", num: true, value: (i) => money(Math.round(data.cost[i] * 1e6)) },
      { label: "Saved", num: true, value: (i) => money(Math.round(data.saved[i] * 1e6)) },
    ], data.xs.map((_, i) => i).filter((i) => data.total[i] > 0)));
    callsChart.dataset.calls = String(data.total.reduce((a, b) => a + b, 0));
  };
  redraw();

  // Recommendations and key health load after the figures.
  api("GET", "/usage/recommendations").then((d) => recBox.replaceChildren(recommendations(d.recommendations || [])))
    .catch((err) => recBox.replaceChildren(errorBox(err)));
  api("GET", "/usage/keys").then((d) => healthBox.replaceChildren(healthSummary(d)))
    .catch((err) => healthBox.replaceChildren(errorBox(err)));

  // Live: add each second's calls to the figures and the last bucket.
  const live = { calls: t.calls, cost: t.costMicros, saved: t.savingsMicros, errors: errorsOf(t) };
  const service = q.get("service");
  const stop = stream("/usage/live", (ev) => {
    const n = service ? (ev.byService || {})[service] || 0 : ev.calls;
    if (!n) return;
    live.calls += n;
    if (!service) {
      live.cost += ev.costMicros || 0;
      live.saved += ev.savingsMicros || 0;
      live.errors += ev.errors || 0;
    }
    setText(main, "stat-calls", count(live.calls));
    setText(main, "stat-cost", money(live.cost));
    setText(main, "stat-savings", money(live.saved));
    setText(main, "stat-errors", count(live.errors));
    const at = Math.floor(new Date(ev.at).getTime() / 1000);
    const step = bucket === "hour" ? 3600 : 86400;
    let i = data.xs.length - 1;
    if (i < 0 || at >= data.xs[i] + step) {
      data.xs.push(at - (at % step));
      data.total.push(0); data.cost.push(0); data.saved.push(0);
      data.svc.forEach((s) => s.ys.push(0));
      i = data.xs.length - 1;
    }
    data.total[i] += n;
    if (!service) {
      data.cost[i] += (ev.costMicros || 0) / 1e6;
      data.saved[i] += (ev.savingsMicros || 0) / 1e6;
    }
    data.svc.forEach((s) => { s.ys[i] += (ev.byService || {})[s.name] || 0; });
    redraw();
    liveStatus.textContent = `Live · updated ${new Date().toLocaleTimeString("en-GB")}`;
  }, (state) => { liveStatus.textContent = state; liveStatus.classList.toggle("on", state.startsWith("Live")); });
  return () => { stop(); plots.forEach((p) => p.destroy()); };
}

function errorsOf(f) {
  const e = f.errors || {};
  return (e.client || 0) + (e.server || 0) + (e.network || 0) + (e.refused || 0);
}

function statLive(label, id, value, note) {
  return h("div", { class: "stat" }, h("p", { class: "stat-label" }, label), h("p", { class: "stat-value", id }, value),
    note ? h("p", { class: "stat-note" }, note) : null);
}

function setText(root, id, v) { const el = root.querySelector(`#${id}`); if (el) el.textContent = v; }

function change(now, before) {
  if (before === null || before === undefined) return "";
  if (!before) return now ? "new this period" : "same as the period before";
  const d = 100 * (now - before) / before;
  const dir = d > 0 ? "up" : "down";
  return `${dir} ${Math.abs(d).toFixed(0)}% on the period before`;
}

function alignRows(xs, rows) {
  const m = new Map(rows.map((r) => [Math.floor(new Date(r.group).getTime() / 1000), r.calls]));
  return xs.map((x) => m.get(x) || 0);
}

const palette = ["--c0", "--c1", "--c2", "--c3", "--c4", "--c5"];

function chart(el, lines, fmt) {
  const css = getComputedStyle(document.documentElement);
  const color = (i) => css.getPropertyValue(palette[i % palette.length]).trim() || "#4f46e5";
  const axis = { stroke: css.getPropertyValue("--muted").trim(), grid: { stroke: css.getPropertyValue("--line").trim(), width: 1 },
    ticks: { stroke: css.getPropertyValue("--line").trim() } };
  const opts = {
    width: Math.max(280, el.clientWidth || 600), height: el.clientWidth < 500 ? 200 : 260,
    scales: { x: { time: true } },
    series: [{}, ...lines.map((l, i) => ({ label: l.label, stroke: color(l.color), width: i === 0 ? 2 : 1.5,
      fill: i === 0 ? color(l.color) + "22" : undefined, value: (u, v) => v === null ? "–" : fmt(v) }))],
    axes: [{ ...axis }, { ...axis, size: 64, values: (u, vals) => vals.map((v) => fmt(v)) }],
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
  };
  const u = new uPlot(opts, [[], ...lines.map(() => [])], el);
  const ro = new ResizeObserver(() => { if (el.clientWidth) u.setSize({ width: el.clientWidth, height: el.clientWidth < 500 ? 200 : 260 }); });
  ro.observe(el);
  const destroy = u.destroy.bind(u);
  u.destroy = () => { ro.disconnect(); destroy(); };
  return u;
}

function recommendations(list) {
  if (!list.length) return empty("No recommendations right now.", "The wallet looks for unused free quota, idle or failing keys and a cheaper plan as calls come in.");
  return h("ul", { class: "rec-list" }, list.map((r) => h("li", { class: `rec ${r.severity}` },
    h("div", { class: "rec-head" }, badge(r.severity, r.severity === "critical" ? "bad" : r.severity === "warning" ? "warn" : "info"),
      h("strong", {}, r.title), r.savingsMicros ? h("span", { class: "rec-money" }, `${money(r.savingsMicros)}/month`) : null),
    h("p", {}, r.detail))));
}

function healthSummary(d) {
  const s = d.summary || {};
  if (!s.registered) return empty("No keys yet.", "Add a free and a paid key; their health shows here.", h("a", { href: "/app/keys", class: "btn ghost" }, "Add keys"));
  return h("div", {}, h("div", { class: "stats compact" },
    h("div", { class: "stat" }, h("p", { class: "stat-label" }, "Active keys"), h("p", { class: "stat-value" }, `${s.active} of ${s.registered}`)),
    h("div", { class: "stat" }, h("p", { class: "stat-label" }, "Success rate"), h("p", { class: "stat-value" }, pct(100 * (s.successRate || 0)))),
    h("div", { class: "stat" }, h("p", { class: "stat-label" }, "Avg response"), h("p", { class: "stat-value" }, `${Math.round(s.avgResponseMs || 0)} ms`))),
  h("p", {}, h("a", { href: "/app/keys" }, "See each key's quota, errors and status"), "."));
}

// stream reads a Server-Sent Events stream with fetch rather than
// EventSource, so that it carries X-Workspace-Id like every other request
// (EventSource cannot set headers); it reconnects after a pause.
export function stream(path, onEvent, onState) {
  const ctl = new AbortController();
  let stopped = false;
  const run = async () => {
    while (!stopped) {
      try {
        const headers = { Accept: "text/event-stream" };
        if (session.workspace) headers["X-Workspace-Id"] = session.workspace.id;
        const res = await fetch(path, { headers, credentials: "same-origin", signal: ctl.signal, cache: "no-store" });
        if (!res.ok) throw new Error(`status ${res.status}`);
        onState("Live");
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value.replace(/\r\n?/g, "\n");
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let name = "message", data = "";
            for (const line of block.split("\n")) {
              if (line.startsWith("event:")) name = line.slice(6).trim();
              else if (line.startsWith("data:")) data += line.slice(5).trim();
            }
            if (name === "usage" && data) {
              try { onEvent(JSON.parse(data)); } catch { /* a malformed event is skipped */ }
            }
          }
        }
      } catch (err) {
        if (stopped) return;
        onState("Live updates paused, reconnecting…");
      }
      if (!stopped) await new Promise((r) => setTimeout(r, 3000));
    }
  };
  run();
  return () => { stopped = true; ctl.abort(); };
}

