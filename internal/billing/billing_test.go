package billing

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
)

func TestDollars(t *testing.T) {
	for _, tc := range []struct {
		micros int64
		want   string
	}{
		{0, "0.00"},
		{1, "0.000001"},
		{100, "0.0001"},
		{200, "0.0002"},
		{10_000, "0.01"},
		{2_345_600, "2.3456"},
		{29_000_000, "29.00"},
		{37_345_600, "37.3456"},
		{199_000_000, "199.00"},
		{5_500_000, "5.50"},
		{87_333_333, "87.333333"},
		{-250_000, "-0.25"},
		{math.MaxInt64, "9223372036854.775807"},
		{math.MinInt64, "-9223372036854.775808"},
	} {
		if got := Dollars(tc.micros); got != tc.want {
			t.Errorf("Dollars(%d) = %q, want %q", tc.micros, got, tc.want)
		}
	}
}

func TestParseMonth(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // RFC 3339, or "" for EINVALID
	}{
		{"2026-03", "2026-03-01T00:00:00Z"},
		{"2026-12", "2026-12-01T00:00:00Z"},
		{"1999-01", "1999-01-01T00:00:00Z"},
		{"2026-3", ""},
		{"2026-13", ""},
		{"2026-00", ""},
		{"03-2026", ""},
		{"2026-03-01", ""},
		{" 2026-03", ""},
		{"2026_03", ""},
		{"", ""},
		{"latest", ""},
	} {
		got, err := ParseMonth(tc.in)
		if tc.want == "" {
			var e *apiwallet.Error
			if apiwallet.ErrorCode(err) != apiwallet.EINVALID || !errors.As(err, &e) || len(e.Fields) != 1 || e.Fields[0].Field != "month" {
				t.Errorf("ParseMonth(%q) = %v, %v; want EINVALID naming month", tc.in, got, err)
			}
			continue
		}
		if err != nil || got.Format(time.RFC3339) != tc.want {
			t.Errorf("ParseMonth(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestArithmetic(t *testing.T) {
	if _, err := mul(math.MaxInt64/2+1, 2); err != errOverflow {
		t.Errorf("mul overflow: %v", err)
	}
	if v, err := mul(23_456, 100); v != 2_345_600 || err != nil {
		t.Errorf("mul = %d, %v", v, err)
	}
	if _, err := add(math.MaxInt64, 1); err != errOverflow {
		t.Errorf("add overflow: %v", err)
	}
	// a*b overflows int64 but the quotient fits: the 128-bit product
	// keeps it exact.
	if v, err := mulDiv(math.MaxInt64, 10, 20); v != math.MaxInt64/2 || err != nil {
		t.Errorf("mulDiv = %d, %v", v, err)
	}
	if _, err := mulDiv(math.MaxInt64, 10, 2); err != errOverflow {
		t.Errorf("mulDiv overflow: %v", err)
	}
}

// professional is the seeded Professional plan.
func professional() *apiwallet.Plan {
	return &apiwallet.Plan{ID: "professional", Name: "Professional", PriceMicros: 29_000_000, IncludedCalls: 100_000,
		OverageMicrosPerCall: 100, PremiumMicrosPerCall: 200, AnalyticsAddonMicros: 5_000_000, Active: true}
}

func free() *apiwallet.Plan {
	return &apiwallet.Plan{ID: "free", Name: "Free", IncludedCalls: 1000, HardStop: true,
		AnalyticsAddonMicros: 5_000_000, Active: true}
}

// The acceptance figure of issue 5, line by line.
func TestBuildInvoiceProfessional(t *testing.T) {
	inv, err := buildInvoice(professional(), true, 123_456, 5_000, "2026-03")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range inv.Lines {
		got = append(got, fmt.Sprintf("%s %d x %d = %d", l.Kind, l.Quantity, l.UnitPriceMicros, l.AmountMicros))
	}
	want := []string{
		"plan 1 x 29000000 = 29000000",
		"overage 23456 x 100 = 2345600",
		"premium_routing 5000 x 200 = 1000000",
		"analytics_addon 1 x 5000000 = 5000000",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("lines = %q, want %q", got, want)
	}
	if inv.TotalMicros != 37_345_600 || Dollars(inv.TotalMicros) != "37.3456" || inv.OverageCalls != 23_456 {
		t.Fatalf("total = %d (%s), overage %d", inv.TotalMicros, Dollars(inv.TotalMicros), inv.OverageCalls)
	}
}

// A free workspace pays nothing, even past its quota (the proxy stopped
// it) and with premium-routed calls.
func TestBuildInvoiceFree(t *testing.T) {
	inv, err := buildInvoice(free(), false, 1_200, 300, "2026-03")
	if err != nil {
		t.Fatal(err)
	}
	if inv.TotalMicros != 0 || inv.OverageCalls != 0 || len(inv.Lines) != 2 || inv.Lines[1].Kind != LinePremiumRouting {
		t.Fatalf("free invoice = %+v", inv)
	}
}

func TestProjection(t *testing.T) {
	start := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC) // 30 days
	end := start.AddDate(0, 1, 0)
	p := professional()
	// A third of the month gone, 40,000 calls: 120,000 by the end, 20,000
	// over.
	pr, err := project(p, apiwallet.BillingSettings{AnalyticsAddon: true}, 40_000, 1_000, start, end, start.Add(10*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if pr.Calls != 120_000 || pr.PremiumCalls != 3_000 || pr.OverageCalls != 20_000 || pr.OverageMicros != 2_000_000 ||
		pr.PremiumMicros != 600_000 || pr.TotalMicros != 29_000_000+2_000_000+600_000+5_000_000 {
		t.Fatalf("projection = %+v", pr)
	}
	// The first minutes of a month count as an hour.
	pr, _ = project(p, apiwallet.BillingSettings{}, 10, 0, start, end, start.Add(time.Minute))
	if pr.Calls != 10*30*24 {
		t.Fatalf("early projection = %+v", pr)
	}
	// A hard stop caps the projection at the quota and bills no overage.
	pr, _ = project(free(), apiwallet.BillingSettings{}, 900, 900, start, end, start.Add(10*24*time.Hour))
	if pr.Calls != 1000 || pr.PremiumCalls != 1000 || pr.OverageCalls != 0 || pr.TotalMicros != 0 {
		t.Fatalf("free projection = %+v", pr)
	}
}

// fakeStore serves BillingStore from memory for the service's own logic.
type fakeStore struct {
	apiwallet.BillingStore
	plans   map[string]*apiwallet.Plan
	ws      *apiwallet.WorkspaceBilling
	changes []*apiwallet.PlanChange
	snap    *apiwallet.BillingSnapshot
}

func (f *fakeStore) FindPlans(context.Context) ([]*apiwallet.Plan, error) {
	var out []*apiwallet.Plan
	for _, id := range []string{"free", "custom", "professional", "enterprise"} {
		if p := f.plans[id]; p != nil {
			c := *p
			out = append(out, &c)
		}
	}
	return out, nil
}

func (f *fakeStore) FindPlanByID(_ context.Context, id string) (*apiwallet.Plan, error) {
	p := f.plans[id]
	if p == nil {
		return nil, apiwallet.Errorf(apiwallet.ENOTFOUND, "plan not found")
	}
	c := *p
	return &c, nil
}

func (f *fakeStore) FindWorkspaceBilling(_ context.Context, id string) (*apiwallet.WorkspaceBilling, error) {
	if f.ws == nil || f.ws.Workspace.ID != id {
		return nil, apiwallet.Errorf(apiwallet.ENOTFOUND, "workspace not found")
	}
	return f.ws, nil
}

func (f *fakeStore) FindPlanChanges(_ context.Context, _ string, since time.Time) ([]*apiwallet.PlanChange, error) {
	var out []*apiwallet.PlanChange
	for _, c := range f.changes {
		if !c.CreatedAt.Before(since) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeStore) BillingSnapshot(context.Context, time.Time, time.Time) (*apiwallet.BillingSnapshot, error) {
	return f.snap, nil
}

type fakeUsage struct {
	apiwallet.UsageStore
	calls, premium int64
}

func (u fakeUsage) WorkspaceUsage(context.Context, string, time.Time, time.Time) (apiwallet.UsageSummary, error) {
	return apiwallet.UsageSummary{UsageTotals: apiwallet.UsageTotals{Calls: u.calls, Premium: u.premium}}, nil
}

func seededPlans() map[string]*apiwallet.Plan {
	ent := professional()
	ent.ID, ent.Name, ent.PriceMicros, ent.IncludedCalls = "enterprise", "Enterprise", 199_000_000, 1_000_000
	custom := professional()
	custom.ID, custom.Name, custom.PriceMicros, custom.IncludedCalls = "custom", "Custom", 0, 0
	return map[string]*apiwallet.Plan{"free": free(), "professional": professional(), "enterprise": ent, "custom": custom}
}

// A past month is billed on the plan the workspace had at its end, found
// from the changes made since; months before the workspace existed and
// months not yet begun have no invoice.
func TestInvoicePlanHistory(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	st := &fakeStore{plans: seededPlans(), ws: &apiwallet.WorkspaceBilling{
		Workspace: &apiwallet.Workspace{ID: "ws_1", Plan: "free", CreatedAt: time.Date(2026, 2, 20, 0, 0, 0, 0, time.UTC)}}}
	// Professional from February until 2 May, free since.
	st.changes = []*apiwallet.PlanChange{
		{FromPlan: "free", ToPlan: "professional", CreatedAt: time.Date(2026, 2, 21, 0, 0, 0, 0, time.UTC)},
		{FromPlan: "professional", ToPlan: "free", CreatedAt: time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC)},
	}
	s := New(st, fakeUsage{calls: 150_000}, Options{Now: func() time.Time { return now }})
	ctx := context.Background()
	for _, tc := range []struct {
		month, plan, status string
		total               int64
	}{
		{"2026-02", "professional", InvoiceClosed, 29_000_000 + 5_000_000},
		{"2026-04", "professional", InvoiceClosed, 29_000_000 + 5_000_000},
		{"2026-05", "free", InvoiceOpen, 0},
	} {
		inv, err := s.Invoice(ctx, "ws_1", tc.month)
		if err != nil {
			t.Fatalf("%s: %v", tc.month, err)
		}
		if inv.Plan.ID != tc.plan || inv.Status != tc.status || inv.TotalMicros != tc.total {
			t.Errorf("%s: plan %s status %s total %d; want %s %s %d", tc.month, inv.Plan.ID, inv.Status, inv.TotalMicros,
				tc.plan, tc.status, tc.total)
		}
	}
	for _, month := range []string{"2026-01", "2026-06", "2031-01"} {
		if _, err := s.Invoice(ctx, "ws_1", month); apiwallet.ErrorCode(err) != apiwallet.ENOTFOUND {
			t.Errorf("%s: %v, want ENOTFOUND", month, err)
		}
	}
	if _, err := s.Invoice(ctx, "ws_1", "2026-5"); apiwallet.ErrorCode(err) != apiwallet.EINVALID {
		t.Errorf("malformed month: %v", err)
	}
}

// DEFAULT_FREE_QUOTA replaces the free plan's included calls everywhere
// the service shows them, and no administrator edit can contradict it.
func TestFreeQuotaOverride(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	st := &fakeStore{plans: seededPlans(), ws: &apiwallet.WorkspaceBilling{
		Workspace: &apiwallet.Workspace{ID: "ws_1", Plan: "free", CreatedAt: now.Add(-time.Hour)}}}
	q := int64(250)
	s := New(st, fakeUsage{calls: 100}, Options{FreeQuota: &q, RatePerMinute: 600, Now: func() time.Time { return now }})
	ctx := context.Background()
	status, err := s.Plan(ctx, "ws_1")
	if err != nil {
		t.Fatal(err)
	}
	if status.IncludedCalls != 250 || status.RemainingCalls != 150 || status.RatePerMinute != 600 || status.Plan.IncludedCalls != 250 {
		t.Fatalf("Plan = %+v", status)
	}
	if inc, stop, err := s.PlanFor(ctx, "ws_1"); inc != 250 || !stop || err != nil {
		t.Fatalf("PlanFor = %d, %v, %v", inc, stop, err)
	}
	admin := &apiwallet.User{ID: "usr_admin", Role: apiwallet.RoleAdmin}
	calls := int64(5000)
	_, err = s.UpdatePlan(ctx, admin, "free", apiwallet.PlanUpdate{IncludedCalls: &calls})
	if e, ok := err.(*apiwallet.Error); !ok || len(e.Fields) != 1 || e.Fields[0].Field != "includedCalls" {
		t.Fatalf("UpdatePlan(free includedCalls) = %v", err)
	}
	_, err = s.UpdatePlan(ctx, &apiwallet.User{ID: "usr_x", Role: apiwallet.RoleUser}, "free", apiwallet.PlanUpdate{IncludedCalls: &calls})
	if apiwallet.ErrorCode(err) != apiwallet.EFORBIDDEN {
		t.Fatalf("UpdatePlan by a USER = %v", err)
	}
}

func TestBusinessReport(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	st := &fakeStore{plans: seededPlans(), snap: &apiwallet.BillingSnapshot{
		Plans: []apiwallet.PlanCount{
			{Plan: "enterprise", Workspaces: 1},
			{Plan: "free", Workspaces: 10, AnalyticsAddon: 1},
			{Plan: "legacy", Workspaces: 2},
			{Plan: "professional", Workspaces: 3, AnalyticsAddon: 2},
		},
		StartPlans: []apiwallet.PlanCount{{Plan: "enterprise", Workspaces: 1}, {Plan: "free", Workspaces: 8},
			{Plan: "professional", Workspaces: 3}},
		Moves: []apiwallet.PlanMove{{WorkspaceID: "a", From: "professional", To: "free"},
			{WorkspaceID: "b", From: "free", To: "professional"}, {WorkspaceID: "c", From: "professional", To: "enterprise"}},
		ActiveWorkspaces: 7,
	}}
	s := New(st, fakeUsage{}, Options{Now: func() time.Time { return now }})
	r, err := s.BusinessReport(context.Background(), &apiwallet.User{Role: apiwallet.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	// Fees: 199 + 3 x 29 = 286; add-ons: 1 (on free) + 2 = 3 x 5 = 15.
	// Paying: 1 + 3 + the free workspace with the add-on = 5.
	if r.PlanFeesMicros != 286_000_000 || r.AddonFeesMicros != 15_000_000 || r.MRRMicros != 301_000_000 ||
		r.PayingWorkspaces != 5 || r.ARPUMicros != 60_200_000 || r.Workspaces != 16 || r.ActiveWorkspaces != 7 {
		t.Fatalf("report = %+v", r)
	}
	// Paid at start: 1 + 3; churned: a (professional to free) only.
	if r.Churn.PaidAtStart != 4 || r.Churn.Churned != 1 || r.Churn.RateBasisPoints != 2500 || r.Churn.Rate() != "0.2500" {
		t.Fatalf("churn = %+v", r.Churn)
	}
	var mix []string
	for _, m := range r.PlanMix {
		mix = append(mix, fmt.Sprintf("%s:%d:%d", m.Plan, m.Workspaces, m.MRRMicros))
	}
	if want := "[free:10:5000000 custom:0:0 professional:3:97000000 enterprise:1:199000000 legacy:2:0]"; fmt.Sprint(mix) != want {
		t.Fatalf("plan mix = %v, want %s", mix, want)
	}
	if _, err := s.BusinessReport(context.Background(), &apiwallet.User{Role: apiwallet.RoleUser}); apiwallet.ErrorCode(err) != apiwallet.EFORBIDDEN {
		t.Fatalf("report for a USER: %v", err)
	}
}
