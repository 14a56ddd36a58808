// The landing page for a visitor: what the wallet does, the plans read
// live from GET /plans, a savings calculator and sign-up.
import { h, api, money, count, field, loading, errorBox } from "./lib.js";
import { signupForm } from "./auth.js";

let plans = [];

export async function landing(root) {
  const plansBox = h("div", { id: "plans", class: "plans", "aria-live": "polite" }, loading("Loading plans"));
  const calc = calculator();
  root.replaceChildren(
    h("a", { href: "#main", class: "skip" }, "Skip to content"),
    h("header", { class: "topbar landing-bar" },
      h("a", { href: "/", class: "brand" }, h("span", { class: "logo", "aria-hidden": "true" }), "API Key Wallet"),
      h("nav", { class: "topbar-right", "aria-label": "Site" },
        h("a", { href: "#pricing", class: "link" }, "Pricing"),
        h("a", { href: "#calculator", class: "link" }, "Savings"),
        h("a", { href: "/app/login", class: "btn ghost" }, "Log in"),
        h("a", { href: "#signup", class: "btn primary" }, "Get started"))),
    h("main", { id: "main", class: "landing" },
      h("section", { class: "hero", "aria-labelledby": "page-title" },
        h("div", { class: "hero-text" },
          h("p", { class: "eyebrow" }, "Self-hosted API key wallet and proxy"),
          h("h1", { id: "page-title" }, "Every API call on the cheapest key you hold."),
          h("p", { class: "lead" }, "Keep your Stripe, OpenAI, Anthropic, Maps and weather keys encrypted in one place. " +
            "Your apps change only their base URL; the wallet routes each call to a free-tier key first, falls back " +
            "when one fails, and shows where every cent goes."),
          h("div", { class: "actions" },
            h("a", { href: "#signup", class: "btn primary big" }, "Create a free account"),
            h("a", { href: "#calculator", class: "btn ghost big" }, "Estimate your savings"))),
        h("ul", { class: "hero-points", "aria-label": "Highlights" },
          h("li", {}, h("strong", {}, "Free tier first"), " Cost routing spends free quota before any paid key."),
          h("li", {}, h("strong", {}, "Real-time analytics"), " Calls, errors, latency, cost and savings as they happen."),
          h("li", {}, h("strong", {}, "Encrypted at rest"), " AES-256-GCM envelope encryption; secrets never leave the vault."))),
      h("section", { class: "band", "aria-labelledby": "how" },
        h("h2", { id: "how" }, "How it works"),
        h("ol", { class: "steps" },
          h("li", {}, h("h3", {}, "Add your keys"), h("p", {}, "Free and paid keys for each service, typed once and stored encrypted.")),
          h("li", {}, h("h3", {}, "Give apps a wallet token"), h("p", {}, "Point the official SDK at the wallet; only the base URL and API key change.")),
          h("li", {}, h("h3", {}, "Watch the savings"), h("p", {}, "Usage per service, key and tier, recommendations with the money at stake.")))),
      h("section", { id: "pricing", class: "band", "aria-labelledby": "pricing-title" },
        h("h2", { id: "pricing-title" }, "Plans"),
        h("p", { class: "lead" }, "Start free. Pay for volume when you need it."),
        plansBox),
      h("section", { id: "calculator", class: "band", "aria-labelledby": "calc-title" },
        h("h2", { id: "calc-title" }, "What would you save?"),
        h("p", { class: "lead" }, "Calls a free-tier key can serve cost nothing. Enter your volume to see what routing them there is worth."),
        calc),
      h("section", { id: "signup", class: "band signup", "aria-labelledby": "signup-title" },
        h("div", {}, h("h2", { id: "signup-title" }, "Create your wallet"),
          h("p", { class: "lead" }, "Registration creates your personal workspace. Invite your team later."),
          h("p", {}, "Already have an account? ", h("a", { href: "/app/login" }, "Log in"), ".")),
        signupForm())),
    h("footer", { class: "footer" }, h("p", {}, "API Key Wallet · one Go binary, SQLite or PostgreSQL + Redis.")));
  try {
    const data = await api("GET", "/plans");
    // Cheapest first; a custom plan (priced per customer) last.
    plans = (data.plans || []).slice().sort((a, b) => (a.custom - b.custom) || (a.priceMicros - b.priceMicros));
    plansBox.replaceChildren(...plans.map((p) => planCard(p, data)));
    if (!plans.length) plansBox.replaceChildren(h("p", {}, "No plans are on offer yet."));
  } catch (err) {
    plansBox.replaceChildren(errorBox(err));
  }
  calc.update();
}

function wholeDollars(micros) {
  return micros % 1e6 === 0 ? `$${count(micros / 1e6)}` : money(micros);
}

function planCard(p, data) {
  const overage = p.overageMicros ?? p.overageMicrosPerCall ?? 0;
  if (p.custom) {
    return h("article", { class: "plan", "data-plan": p.id, "aria-labelledby": `plan-${p.id}` },
      h("h3", { id: `plan-${p.id}` }, p.name),
      h("p", { class: "plan-price" }, h("span", { class: "amount" }, "Let's talk")),
      h("ul", {}, h("li", {}, "Volume and price set for your company"), h("li", {}, "Everything in Enterprise")),
      h("a", { href: "#signup", class: "btn ghost", "aria-label": `Start with ${p.name}` }, "Start"));
  }
  return h("article", { class: "plan", "data-plan": p.id, "aria-labelledby": `plan-${p.id}` },
    h("h3", { id: `plan-${p.id}` }, p.name),
    h("p", { class: "plan-price" }, h("span", { class: "amount" }, wholeDollars(p.priceMicros)), h("span", {}, " / month")),
    h("ul", {},
      h("li", {}, `${count(p.includedCalls)} calls included`),
      h("li", {}, p.hardStop ? "Hard stop at the limit" : `then ${money(overage)} per call`),
      data.premiumRoutingMicros ? h("li", {}, `Premium routing ${money(data.premiumRoutingMicros)} per routed call`) : null,
      data.analyticsAddonMicros ? h("li", {}, `Analytics add-on ${wholeDollars(data.analyticsAddonMicros)} / month`) : null),
    h("a", { href: "#signup", class: p.id === "professional" ? "btn primary" : "btn ghost", "aria-label": `Start with ${p.name}` }, "Start"));
}

function calculator() {
  const calls = h("input", { id: "roi-calls", type: "number", min: "0", step: "1000", value: "500000", inputmode: "numeric" });
  const share = h("input", { id: "roi-share", type: "number", min: "0", max: "100", step: "1", value: "40", inputmode: "numeric" });
  const price = h("input", { id: "roi-price", type: "number", min: "0", step: "0.0001", value: "0.002", inputmode: "decimal" });
  const month = h("output", { id: "roi-month", for: "roi-calls roi-share roi-price" });
  const year = h("output", { id: "roi-year", for: "roi-calls roi-share roi-price" });
  const plan = h("p", { id: "roi-plan", class: "hint" });
  const box = h("form", { class: "calc card", "aria-label": "Savings calculator" },
    h("div", { class: "calc-inputs" },
      field("Calls per month", calls),
      field("Share free tiers can serve (%)", share, "Free quota across your keys, as a share of your calls"),
      field("Price per paid call (USD)", price, "e.g. 0.002 for $2 per 1,000 calls")),
    h("div", { class: "calc-result", "aria-live": "polite" },
      h("div", { class: "stat" }, h("p", { class: "stat-label" }, "Saved per month"), h("p", { class: "stat-value big" }, month)),
      h("div", { class: "stat" }, h("p", { class: "stat-label" }, "Saved per year"), h("p", { class: "stat-value" }, year)),
      plan));
  box.addEventListener("submit", (ev) => ev.preventDefault());
  box.update = () => {
    const c = Math.max(0, Number(calls.value) || 0);
    const s = Math.min(100, Math.max(0, Number(share.value) || 0)) / 100;
    const p = Math.max(0, Number(price.value) || 0);
    const savedMicros = Math.round(c * s * p * 1e6);
    month.textContent = money(savedMicros);
    year.textContent = money(savedMicros * 12);
    const fit = plans.find((pl) => !pl.custom && pl.includedCalls >= c);
    plan.textContent = fit ? `${fit.name} covers ${count(c)} calls a month for ${money(fit.priceMicros)}.` : "";
  };
  box.addEventListener("input", box.update);
  return box;
}
