package api_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/testenv"
)

// insertCalls records n calls of workspace ws, the first premium of them
// premium-routed, spread over the current month so far, through the
// usage store as the metering recorder writes them.
func (ts *testServer) insertCalls(ws string, n, premium int) {
	ts.t.Helper()
	now := time.Now().UTC()
	start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	span := now.Sub(start)
	const batch = 10_000
	recs := make([]apiwallet.Usage, 0, batch)
	flush := func() {
		if err := ts.db.InsertUsage(ts.t.Context(), recs); err != nil {
			ts.t.Fatalf("InsertUsage: %v", err)
		}
		recs = recs[:0]
	}
	for i := range n {
		at := start.Add(time.Duration(int64(span) / int64(n) * int64(i)))
		recs = append(recs, apiwallet.Usage{
			ID: apiwallet.NewID("use"), WorkspaceID: ws, Service: "openai", KeyID: "key_test", Method: "POST",
			Status: 200, Attempts: 1, Strategy: "priority", Premium: i < premium, CreatedAt: at,
		})
		if len(recs) == batch {
			flush()
		}
	}
	if len(recs) > 0 {
		flush()
	}
}

// insertRollups adds calls (premium of them premium-routed) of workspace
// ws straight to the hourly rollups, in rows of the hours of the current
// month so far: the form every monthly read takes them in, without the
// cost of writing each record (under -race, 100,000 records take half a
// minute).
func (ts *testServer) insertRollups(ws string, calls, premium int64) {
	ts.t.Helper()
	now := time.Now().UTC()
	start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	hours := int64(now.Sub(start)/time.Hour) + 1
	const rows = 24
	for i := range int64(rows) {
		c, p := calls/rows, premium/rows
		if i == rows-1 {
			c, p = calls-c*(rows-1), premium-p*(rows-1)
		}
		hour := start.Add(time.Duration(i*hours/rows) * time.Hour).UnixMicro()
		if _, err := ts.db.SQL().ExecContext(ts.t.Context(), `INSERT INTO usage_hourly (workspace_id, service, key_id,
				hour, calls, failed, premium, cost_micros, saved_micros, bytes_in, bytes_out, latency_micros_sum)
			VALUES ($1, 'openai', $2, $3, $4, 0, $5, 0, 0, 0, 0, 0)`,
			ws, fmt.Sprintf("key_bulk_%d", i), hour, c, p); err != nil {
			ts.t.Fatal(err)
		}
	}
}

// setPlan moves a workspace to plan as an administrator or Stripe would.
func (ts *testServer) setPlan(ws, plan string) {
	ts.t.Helper()
	if _, err := ts.db.ChangeWorkspacePlan(ts.t.Context(), ws, plan, apiwallet.PlanSourceAdmin, nil); err != nil {
		ts.t.Fatal(err)
	}
}

func currentMonth() string { return time.Now().UTC().Format("2006-01") }

// invoiceJSON is the invoice body as a client reads it.
type invoiceJSON struct {
	WorkspaceID string `json:"workspaceId"`
	Month       string `json:"month"`
	Status      string `json:"status"`
	Currency    string `json:"currency"`
	Plan        struct {
		ID string `json:"id"`
	} `json:"plan"`
	Usage struct {
		Calls, IncludedCalls, OverageCalls, PremiumCalls int64
	} `json:"usage"`
	Lines []struct {
		Kind            string `json:"kind"`
		Quantity        int64  `json:"quantity"`
		UnitPriceMicros int64  `json:"unitPriceMicros"`
		UnitPrice       string `json:"unitPrice"`
		AmountMicros    int64  `json:"amountMicros"`
		Amount          string `json:"amount"`
	} `json:"lines"`
	TotalMicros int64  `json:"totalMicros"`
	Total       string `json:"total"`
}

func decodeInvoice(t *testing.T, r *response) invoiceJSON {
	t.Helper()
	var inv invoiceJSON
	if err := json.Unmarshal(r.Body, &inv); err != nil {
		t.Fatalf("invoice body: %v: %s", err, r.Body)
	}
	return inv
}

// The acceptance case of issue 5: Professional, 123,456 calls of which
// 5,000 premium-routed, analytics add-on on: $29 + 23,456 x $0.0001 +
// 5,000 x $0.0002 + $5 = $37.3456 exactly, as JSON and as CSV. Another
// workspace's calls in the same month never count.
func TestInvoiceAcceptance(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		owner, other := ts.register("finance@example.com"), ts.register("other@example.com")
		ts.setPlan(owner.WorkspaceID, apiwallet.PlanProfessional)
		ts.setPlan(other.WorkspaceID, apiwallet.PlanProfessional)
		set := ts.do("PATCH", "/billing/settings", owner.Token, map[string]any{"analyticsAddon": true}).want(t, 200).JSON()
		if set["analyticsAddon"] != true || set["premiumRouting"] != true {
			t.Fatalf("settings = %v", set)
		}
		// 123,456 calls: 3,456 records written as the recorder writes
		// them, and 120,000 more in hourly rollups.
		ts.insertCalls(owner.WorkspaceID, 3_456, 500)
		ts.insertRollups(owner.WorkspaceID, 120_000, 4_500)
		ts.insertCalls(other.WorkspaceID, 321, 321)
		ts.insertRollups(other.WorkspaceID, 4_000, 4_000)

		month := currentMonth()
		inv := decodeInvoice(t, ts.do("GET", "/billing/invoices/"+month, owner.Token, nil).want(t, 200))
		var got []string
		for _, l := range inv.Lines {
			got = append(got, fmt.Sprintf("%s %d x %d (%s) = %d (%s)", l.Kind, l.Quantity, l.UnitPriceMicros, l.UnitPrice,
				l.AmountMicros, l.Amount))
		}
		want := []string{
			"plan 1 x 29000000 (29.00) = 29000000 (29.00)",
			"overage 23456 x 100 (0.0001) = 2345600 (2.3456)",
			"premium_routing 5000 x 200 (0.0002) = 1000000 (1.00)",
			"analytics_addon 1 x 5000000 (5.00) = 5000000 (5.00)",
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("invoice lines:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if inv.TotalMicros != 37_345_600 || inv.Total != "37.3456" || inv.Usage.Calls != 123_456 ||
			inv.Usage.OverageCalls != 23_456 || inv.Usage.PremiumCalls != 5_000 || inv.Plan.ID != "professional" ||
			inv.Status != "open" || inv.Month != month || inv.Currency != "USD" || inv.WorkspaceID != owner.WorkspaceID {
			t.Fatalf("invoice = %+v", inv)
		}
		t.Logf("invoice %s: total %d micros = $%s", month, inv.TotalMicros, inv.Total)

		r := ts.do("GET", "/billing/invoices/"+month, owner.Token, nil, "Accept", "text/csv").want(t, 200)
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
			t.Fatalf("CSV Content-Type = %q", ct)
		}
		wantCSV := "kind,description,quantity,unit_price_usd,amount_usd,amount_micros\n" +
			`plan,"Professional plan, ` + month + ` (100000 calls included)",1,29.00,29.00,29000000` + "\n" +
			"overage,Calls beyond the 100000 included,23456,0.0001,2.3456,2345600\n" +
			`premium_routing,"Calls with premium routing (cost strategies, cross-key fallback)",5000,0.0002,1.00,1000000` + "\n" +
			"analytics_addon,Analytics add-on,1,5.00,5.00,5000000\n" +
			"total,Total for " + month + ",,,37.3456,37345600\n"
		if string(r.Body) != wantCSV {
			t.Fatalf("CSV:\n%s\nwant\n%s", r.Body, wantCSV)
		}
		// Content negotiation: JSON unless CSV is preferred.
		for _, tc := range []struct{ accept, want string }{
			{"application/json", "application/json"},
			{"*/*", "application/json"},
			{"text/csv;q=0.5, application/json", "application/json"},
			{"application/json;q=0.1, text/csv", "text/csv"},
			{"text/*", "text/csv"},
			{"text/csv, */*;q=0.1", "text/csv"},
		} {
			r := ts.do("GET", "/billing/invoices/"+month, owner.Token, nil, "Accept", tc.accept).want(t, 200)
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.want) {
				t.Errorf("Accept %q: Content-Type %q, want %s", tc.accept, ct, tc.want)
			}
		}
		if r := ts.do("GET", "/billing/invoices/"+month+"?format=csv", owner.Token, nil).want(t, 200); string(r.Body) != wantCSV {
			t.Fatalf("?format=csv:\n%s", r.Body)
		}

		// The plan view agrees with the invoice.
		p := ts.do("GET", "/billing/plan", owner.Token, nil).want(t, 200).JSON()
		if p["usedCalls"] != 123456.0 || p["includedCalls"] != 100000.0 || p["remainingCalls"] != 0.0 ||
			p["overageCalls"] != 23456.0 || p["overageMicros"] != 2345600.0 || p["overage"] != "2.3456" ||
			p["premiumCalls"] != 5000.0 || p["workspaceId"] != owner.WorkspaceID {
			t.Fatalf("plan = %v", p)
		}
		proj := p["projected"].(map[string]any)
		if proj["calls"].(float64) < 123456 || proj["totalMicros"].(float64) < 37_345_600 {
			t.Fatalf("projection below the month so far: %v", proj)
		}

		// The other workspace sees only its own calls.
		inv = decodeInvoice(t, ts.do("GET", "/billing/invoices/"+month, other.Token, nil).want(t, 200))
		if inv.Usage.Calls != 4_321 || inv.Usage.PremiumCalls != 4_321 || inv.TotalMicros != 29_000_000+4_321*200 {
			t.Fatalf("other workspace's invoice = %+v", inv)
		}
	})
}

// A free workspace owes nothing: the plan is $0, and calls past its quota
// (which the proxy refuses) and premium-routed calls are not billed.
func TestInvoiceFree(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		u := ts.register("free@example.com")
		ts.insertCalls(u.WorkspaceID, 1_200, 40)
		inv := decodeInvoice(t, ts.do("GET", "/billing/invoices/"+currentMonth(), u.Token, nil).want(t, 200))
		if inv.TotalMicros != 0 || inv.Total != "0.00" || inv.Plan.ID != "free" || inv.Usage.Calls != 1_200 ||
			inv.Usage.OverageCalls != 0 || len(inv.Lines) != 2 || inv.Lines[0].AmountMicros != 0 || inv.Lines[1].AmountMicros != 0 {
			t.Fatalf("free invoice = %+v", inv)
		}
		p := ts.do("GET", "/billing/plan", u.Token, nil).want(t, 200).JSON()
		if p["usedCalls"] != 1200.0 || p["remainingCalls"] != 0.0 || p["includedCalls"] != 1000.0 ||
			p["projected"].(map[string]any)["totalMicros"] != 0.0 || p["plan"].(map[string]any)["hardStop"] != true {
			t.Fatalf("free plan = %v", p)
		}
	})
}

// Bad months are 400 naming the field; months without an invoice (not
// begun, or before the workspace) are 404; all of them change nothing.
func TestInvoiceMonths(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		u := ts.register("months@example.com")
		for _, m := range []string{"2026-3", "2026-13", "202603", "03-2026", "latest", "2026-03-01"} {
			r := ts.do("GET", "/billing/invoices/"+m, u.Token, nil).want(t, 400)
			var prob api400
			_ = json.Unmarshal(r.Body, &prob)
			if len(prob.Errors) != 1 || prob.Errors[0].Field != "month" {
				t.Fatalf("month %q: %s", m, r.Body)
			}
		}
		next := time.Now().UTC().AddDate(0, 1, 0)
		next = time.Date(next.Year(), next.Month(), 1, 0, 0, 0, 0, time.UTC)
		ts.do("GET", "/billing/invoices/"+next.Format("2006-01"), u.Token, nil).want(t, 404)
		ts.do("GET", "/billing/invoices/2999-01", u.Token, nil).want(t, 404)
		// The workspace was created this month: last year has no invoice.
		ts.do("GET", "/billing/invoices/"+time.Now().UTC().AddDate(-1, 0, 0).Format("2006-01"), u.Token, nil).want(t, 404)
		r := ts.do("GET", "/billing/invoices/"+currentMonth()+"?format=xml", u.Token, nil).want(t, 400)
		if !strings.Contains(string(r.Body), `"field":"format"`) {
			t.Fatalf("format: %s", r.Body)
		}
		ts.do("GET", "/billing/invoices/"+currentMonth(), "", nil).want(t, 401)
		ts.do("GET", "/billing/plan", "", nil).want(t, 401)
	})
}

type api400 struct {
	Errors []apiwallet.FieldError `json:"errors"`
}

// DEFAULT_FREE_QUOTA replaces the free plan's 1,000 included calls.
func TestBillingPlanFreeQuota(t *testing.T) {
	run := func(t *testing.T, ts *testServer) {
		u := ts.register("quota@example.com")
		ts.insertCalls(u.WorkspaceID, 40, 0)
		p := ts.do("GET", "/billing/plan", u.Token, nil).want(t, 200).JSON()
		plan := p["plan"].(map[string]any)
		if p["includedCalls"] != 250.0 || p["remainingCalls"] != 210.0 || plan["includedCalls"] != 250.0 ||
			plan["includedCallsFrom"] != "DEFAULT_FREE_QUOTA" || plan["id"] != "free" || p["ratePerMinute"] != 1000.0 {
			t.Fatalf("plan = %v", p)
		}
		period := p["period"].(map[string]any)
		if period["month"] != currentMonth() {
			t.Fatalf("period = %v", period)
		}
		// The table keeps its own value: only the service overrides it.
		if n := ts.count(`SELECT COUNT(*) FROM plans WHERE id = 'free' AND included_calls = 1000`); n != 1 {
			t.Fatal("DEFAULT_FREE_QUOTA rewrote the plans table")
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		run(t, newTestServer(t, filepath.Join(t.TempDir(), "wallet.db"), "DEFAULT_FREE_QUOTA=250"))
	})
	t.Run("postgres", func(t *testing.T) {
		run(t, newTestServer(t, testenv.PostgresURL(t), "DEFAULT_FREE_QUOTA=250"))
	})
}

// Every member may read the plan and invoices; only admins and owners
// change billing settings; outsiders learn nothing.
func TestBillingRoles(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		owner, viewer, admin, outsider := ts.register("owner@example.com"), ts.register("viewer@example.com"),
			ts.register("admin@example.com"), ts.register("outsider@example.com")
		ws := ts.createTeam(owner, "Team")
		ts.join(owner, ws, viewer, "viewer")
		ts.join(owner, ws, admin, "admin")
		in := "X-Workspace-Id"

		if p := ts.do("GET", "/billing/plan", viewer.Token, nil, in, ws).want(t, 200).JSON(); p["workspaceId"] != ws {
			t.Fatalf("viewer's plan: %v", p)
		}
		ts.do("GET", "/billing/invoices/"+currentMonth(), viewer.Token, nil, in, ws).want(t, 200)
		before := ts.count(`SELECT COUNT(*) FROM audit_events`)
		r := ts.do("PATCH", "/billing/settings", viewer.Token, map[string]any{"analyticsAddon": true}, in, ws).want(t, 403)
		if !strings.Contains(string(r.Body), "viewer") {
			t.Fatalf("refusal does not name the role: %s", r.Body)
		}
		if ts.count(`SELECT COUNT(*) FROM workspaces WHERE id = $1 AND analytics_addon`, ws) != 0 ||
			ts.count(`SELECT COUNT(*) FROM audit_events`) != before {
			t.Fatal("a refused settings change changed something")
		}
		// Bad bodies change nothing either.
		ts.do("PATCH", "/billing/settings", admin.Token, map[string]any{}, in, ws).want(t, 400)
		ts.do("PATCH", "/billing/settings", admin.Token, map[string]any{"analyticsAddon": "yes"}, in, ws).want(t, 400)
		ts.do("PATCH", "/billing/settings", admin.Token, map[string]any{"plan": "enterprise"}, in, ws).want(t, 400)

		set := ts.do("PATCH", "/billing/settings", admin.Token, map[string]any{"premiumRouting": false}, in, ws).want(t, 200).JSON()
		if set["premiumRouting"] != false || set["analyticsAddon"] != false {
			t.Fatalf("settings = %v", set)
		}
		if n := ts.count(`SELECT COUNT(*) FROM audit_events WHERE action = 'billing.settings_update' AND workspace_id = $1 AND actor_id = $2`,
			ws, admin.ID); n != 1 {
			t.Fatalf("settings audit events: %d", n)
		}
		p := ts.do("GET", "/billing/plan", owner.Token, nil, in, ws).want(t, 200).JSON()
		if p["settings"].(map[string]any)["premiumRouting"] != false {
			t.Fatalf("plan settings = %v", p["settings"])
		}
		// The owner's personal workspace is untouched.
		if p := ts.do("GET", "/billing/plan", owner.Token, nil).want(t, 200).JSON(); p["settings"].(map[string]any)["premiumRouting"] != true {
			t.Fatalf("personal settings = %v", p["settings"])
		}

		// An outsider naming the workspace gets the 404 of a missing one.
		ts.do("GET", "/billing/plan", outsider.Token, nil, in, ws).want(t, 404)
		ts.do("GET", "/billing/invoices/"+currentMonth(), outsider.Token, nil, in, ws).want(t, 404)
		ts.do("PATCH", "/billing/settings", outsider.Token, map[string]any{"analyticsAddon": true}, in, ws).want(t, 404)
	})
}

// Plans are data that a wallet ADMIN lists, creates and edits; nobody
// else may.
func TestAdminPlans(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		user := ts.register("user@example.com")
		root := ts.makeAdmin(ts.register("root@example.com"))
		startup := map[string]any{"id": "startup", "name": "Startup", "priceMicros": 9_000_000, "includedCalls": 20_000}

		ts.do("GET", "/admin/plans", user.Token, nil).want(t, 403)
		ts.do("POST", "/admin/plans", user.Token, startup).want(t, 403)
		ts.do("PUT", "/admin/plans/professional", user.Token, map[string]any{"priceMicros": 0}).want(t, 403)
		ts.do("GET", "/admin/reports/business", user.Token, nil).want(t, 403)

		var list struct {
			Plans []map[string]any `json:"plans"`
		}
		_ = json.Unmarshal(ts.do("GET", "/admin/plans", root.Token, nil).want(t, 200).Body, &list)
		var ids []string
		for _, p := range list.Plans {
			ids = append(ids, fmt.Sprintf("%s:%v:%v", p["id"], p["price"], p["includedCalls"]))
		}
		if want := "[custom:0.00:0 free:0.00:1000 professional:29.00:100000 enterprise:199.00:1e+06]"; fmt.Sprint(ids) != want {
			t.Fatalf("plans = %v, want %s", ids, want)
		}

		p := ts.do("POST", "/admin/plans", root.Token, startup).want(t, 201).JSON()
		if p["id"] != "startup" || p["price"] != "9.00" || p["overageMicrosPerCall"] != 100.0 || p["premiumPerCall"] != "0.0002" ||
			p["analyticsAddonMicros"] != 5e6 || p["active"] != true || p["hardStop"] != false {
			t.Fatalf("created plan = %v", p)
		}
		ts.do("POST", "/admin/plans", root.Token, startup).want(t, 409)
		r := ts.do("POST", "/admin/plans", root.Token, map[string]any{"id": "Bad Id", "name": "", "priceMicros": -1,
			"includedCalls": 10, "ratePerMinute": -5}).want(t, 400)
		for _, f := range []string{"id", "name", "priceMicros", "ratePerMinute"} {
			if !strings.Contains(string(r.Body), `"field":"`+f+`"`) {
				t.Fatalf("create problem does not name %s: %s", f, r.Body)
			}
		}
		r = ts.do("POST", "/admin/plans", root.Token, map[string]any{"name": "X"}).want(t, 400)
		for _, f := range []string{"id", "priceMicros", "includedCalls"} {
			if !strings.Contains(string(r.Body), `"field":"`+f+`"`) {
				t.Fatalf("missing fields problem does not name %s: %s", f, r.Body)
			}
		}

		// Updates change only what they name, and apply to invoices at once.
		u := ts.do("PUT", "/admin/plans/professional", root.Token, map[string]any{"priceMicros": 19_000_000}).want(t, 200).JSON()
		if u["price"] != "19.00" || u["includedCalls"] != 100000.0 || u["name"] != "Professional" {
			t.Fatalf("updated plan = %v", u)
		}
		ts.setPlan(user.WorkspaceID, "professional")
		inv := decodeInvoice(t, ts.do("GET", "/billing/invoices/"+currentMonth(), user.Token, nil).want(t, 200))
		if inv.TotalMicros != 19_000_000 {
			t.Fatalf("invoice after the price change = %+v", inv)
		}
		ts.do("PUT", "/admin/plans/gold", root.Token, map[string]any{"priceMicros": 1}).want(t, 404)
		ts.do("PUT", "/admin/plans/professional", root.Token, map[string]any{}).want(t, 400)
		ts.do("PUT", "/admin/plans/professional", root.Token, map[string]any{"id": "pro"}).want(t, 400)
		ts.do("PUT", "/admin/plans/professional", root.Token, map[string]any{"overageMicrosPerCall": -1}).want(t, 400)
		ts.do("PUT", "/admin/plans/free", root.Token, map[string]any{"active": false}).want(t, 400)
		r = ts.do("PUT", "/admin/plans/free", root.Token, map[string]any{"includedCalls": 5000}).want(t, 400)
		if !strings.Contains(string(r.Body), "DEFAULT_FREE_QUOTA") {
			t.Fatalf("free includedCalls refusal: %s", r.Body)
		}
		// Operators can set any price to 0.
		ts.do("PUT", "/admin/plans/professional", root.Token, map[string]any{"premiumMicrosPerCall": 0,
			"overageMicrosPerCall": 0, "analyticsAddonMicros": 0}).want(t, 200)
		// Retiring a plan keeps its workspaces on it but takes no new ones.
		ts.do("PUT", "/admin/plans/startup", root.Token, map[string]any{"active": false}).want(t, 200)
		if _, err := ts.db.ChangeWorkspacePlan(t.Context(), root.WorkspaceID, "startup", apiwallet.PlanSourceAdmin, nil); apiwallet.ErrorCode(err) != apiwallet.EINVALID {
			t.Fatalf("change to a retired plan: %v", err)
		}
		if n := ts.count(`SELECT COUNT(*) FROM audit_events WHERE action IN ('plan.create', 'plan.update') AND actor_id = $1`, root.ID); n != 4 {
			t.Fatalf("plan audit events: %d, want 4", n)
		}
	})
}

// The business report on a small fixture: MRR, ARPU, active workspaces,
// churn and plan mix, each checked by hand.
func TestBusinessReport(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		root := ts.makeAdmin(ts.register("root@example.com"))
		a, b, c, d := ts.register("a@example.com"), ts.register("b@example.com"), ts.register("c@example.com"),
			ts.register("d@example.com")
		now := time.Now().UTC()
		lastMonth := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).Add(-24 * time.Hour).UnixMicro()
		paidSince := func(ws, plan string) {
			// On a paid plan since before this month.
			if _, err := ts.db.SQL().ExecContext(t.Context(), `UPDATE workspaces SET plan = $1, created_at = $2 WHERE id = $3`,
				plan, lastMonth, ws); err != nil {
				t.Fatal(err)
			}
		}
		paidSince(a.WorkspaceID, "professional")
		paidSince(b.WorkspaceID, "enterprise")
		paidSince(c.WorkspaceID, "professional")
		ts.setPlan(c.WorkspaceID, "free")         // churns this month
		ts.setPlan(d.WorkspaceID, "professional") // new this month: not in the churn base
		ts.do("PATCH", "/billing/settings", a.Token, map[string]any{"analyticsAddon": true}).want(t, 200)
		ts.insertCalls(a.WorkspaceID, 10, 0)
		ts.insertCalls(c.WorkspaceID, 5, 0)
		ts.insertCalls(d.WorkspaceID, 3, 1)

		rep := ts.do("GET", "/admin/reports/business", root.Token, nil).want(t, 200).JSON()
		// MRR: a 29 + 5 add-on, b 199, d 29 = 262; paying: a, b, d.
		for k, want := range map[string]any{
			"mrrMicros": 262e6, "mrr": "262.00", "planFeesMicros": 257e6, "addonFeesMicros": 5e6,
			"arpuMicros": 87333333.0, "arpu": "87.333333", "workspaces": 5.0, "payingWorkspaces": 3.0,
			"activeWorkspaces": 3.0, "currency": "USD",
		} {
			if rep[k] != want {
				t.Errorf("%s = %v, want %v", k, rep[k], want)
			}
		}
		churn := rep["churn"].(map[string]any)
		if churn["paidAtMonthStart"] != 3.0 || churn["churned"] != 1.0 || churn["rate"] != "0.3333" || churn["rateBasisPoints"] != 3333.0 {
			t.Errorf("churn = %v", churn)
		}
		var mix []string
		for _, m := range rep["planMix"].([]any) {
			m := m.(map[string]any)
			mix = append(mix, fmt.Sprintf("%s:%v:%v", m["plan"], m["workspaces"], m["mrr"]))
		}
		if want := "[custom:0:0.00 free:2:0.00 professional:2:63.00 enterprise:1:199.00]"; fmt.Sprint(mix) != want {
			t.Errorf("plan mix = %v, want %s", mix, want)
		}
	})
}
