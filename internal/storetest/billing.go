package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
)

func testBilling(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("SeededPlans", func(t *testing.T) { testSeededPlans(t, newStore(t)) })
	t.Run("PlanCRUD", func(t *testing.T) { testPlanCRUD(t, newStore(t)) })
	t.Run("Settings", func(t *testing.T) { testBillingSettings(t, newStore(t)) })
	t.Run("PlanChanges", func(t *testing.T) { testPlanChanges(t, newStore(t)) })
	t.Run("Snapshot", func(t *testing.T) { testBillingSnapshot(t, newStore(t)) })
}

// The migration seeds DESIGN.md's plans, so a new wallet bills correctly
// before any administrator touches it.
func testSeededPlans(t *testing.T, s Store) {
	ctx := context.Background()
	plans, err := s.FindPlans(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range plans {
		got = append(got, fmt.Sprintf("%s %q %d %d %v %d %d %d %d %v", p.ID, p.Name, p.PriceMicros, p.IncludedCalls,
			p.HardStop, p.RatePerMinute, p.OverageMicrosPerCall, p.PremiumMicrosPerCall, p.AnalyticsAddonMicros, p.Active))
	}
	want := []string{
		`custom "Custom" 0 0 false 0 100 200 5000000 true`,
		`free "Free" 0 1000 true 0 0 0 5000000 true`,
		`professional "Professional" 29000000 100000 false 0 100 200 5000000 true`,
		`enterprise "Enterprise" 199000000 1000000 false 0 100 200 5000000 true`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("seeded plans:\n%s\nwant\n%s", got, want)
	}
	p, err := s.FindPlanByID(ctx, "professional")
	if err != nil || p.PriceMicros != 29_000_000 || !p.Paid() || time.Since(p.CreatedAt) > time.Hour ||
		!p.UpdatedAt.Equal(p.CreatedAt) {
		t.Fatalf("FindPlanByID(professional) = %+v, %v", p, err)
	}
	_, err = s.FindPlanByID(ctx, "gold")
	wantCode(t, err, apiwallet.ENOTFOUND)
}

func testPlanCRUD(t *testing.T, s Store) {
	ctx := context.Background()
	admin := MustCreateUser(t, s, "plans-admin@example.com")
	p := &apiwallet.Plan{ID: "startup", Name: "Startup", PriceMicros: 9_000_000, IncludedCalls: 20_000,
		RatePerMinute: 120, OverageMicrosPerCall: 150, PremiumMicrosPerCall: 250, AnalyticsAddonMicros: 3_000_000, Active: true}
	ev := apiwallet.NewAuditEvent(ctx, admin.PersonalWorkspaceID, apiwallet.ActorUser, admin.ID, "plan.create", "plan", "")
	if err := s.CreatePlan(ctx, p, ev); err != nil {
		t.Fatal(err)
	}
	if p.CreatedAt.IsZero() || ev.Seq == 0 || ev.TargetID != "startup" || ev.Details["price_micros"] != "9000000" {
		t.Fatalf("CreatePlan: plan %+v, event %+v", p, ev)
	}
	got, err := s.FindPlanByID(ctx, "startup")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "Startup" || got.PriceMicros != 9_000_000 || got.IncludedCalls != 20_000 || got.HardStop ||
		got.RatePerMinute != 120 || got.OverageMicrosPerCall != 150 || got.PremiumMicrosPerCall != 250 ||
		got.AnalyticsAddonMicros != 3_000_000 || !got.Active || !got.CreatedAt.Equal(p.CreatedAt) {
		t.Fatalf("FindPlanByID = %+v, want %+v", got, p)
	}
	dup := *p
	wantCode(t, s.CreatePlan(ctx, &dup, nil), apiwallet.ECONFLICT)

	// An update changes only the fields it names.
	price, retired := int64(0), false
	upd, err := s.UpdatePlan(ctx, "startup", apiwallet.PlanUpdate{PriceMicros: &price, Active: &retired}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if upd.PriceMicros != 0 || upd.Active || upd.Name != "Startup" || upd.IncludedCalls != 20_000 || upd.RatePerMinute != 120 {
		t.Fatalf("UpdatePlan = %+v", upd)
	}
	if got, _ := s.FindPlanByID(ctx, "startup"); got.PriceMicros != 0 || got.Active || got.OverageMicrosPerCall != 150 {
		t.Fatalf("after UpdatePlan: %+v", got)
	}
	_, err = s.UpdatePlan(ctx, "gold", apiwallet.PlanUpdate{PriceMicros: &price}, nil)
	wantCode(t, err, apiwallet.ENOTFOUND)

	// Two administrators editing different fields at once both keep their
	// change: each update reads the row under its lock.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 10 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("Startup %d", i)
			_, err := s.UpdatePlan(ctx, "startup", apiwallet.PlanUpdate{Name: &name}, nil)
			errs <- err
		}()
		go func() {
			defer wg.Done()
			calls := int64(30_000)
			_, err := s.UpdatePlan(ctx, "startup", apiwallet.PlanUpdate{IncludedCalls: &calls}, nil)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.FindPlanByID(ctx, "startup"); got.IncludedCalls != 30_000 || got.Name == "Startup" {
		t.Fatalf("concurrent updates lost one: %+v", got)
	}
}

func testBillingSettings(t *testing.T, s Store) {
	ctx := context.Background()
	u := MustCreateUser(t, s, "settings@example.com")
	ws := u.PersonalWorkspaceID

	// New workspaces: free plan, premium routing on, no add-on.
	b, err := s.FindWorkspaceBilling(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if b.Workspace.ID != ws || b.Workspace.Plan != apiwallet.PlanFree || b.Settings.AnalyticsAddon ||
		!b.Settings.PremiumRouting || b.Workspace.CreatedAt.IsZero() {
		t.Fatalf("FindWorkspaceBilling = %+v %+v", b.Workspace, b.Settings)
	}
	_, err = s.FindWorkspaceBilling(ctx, "ws_missing")
	wantCode(t, err, apiwallet.ENOTFOUND)

	on, off := true, false
	ev := apiwallet.NewAuditEvent(ctx, ws, apiwallet.ActorUser, u.ID, "billing.settings_update", "workspace", ws)
	b, err = s.UpdateBillingSettings(ctx, ws, apiwallet.BillingSettingsUpdate{AnalyticsAddon: &on}, ev)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Settings.AnalyticsAddon || !b.Settings.PremiumRouting || ev.Seq == 0 || ev.Details["analytics_addon"] != "true" {
		t.Fatalf("UpdateBillingSettings(addon on) = %+v, event %+v", b.Settings, ev)
	}
	b, err = s.UpdateBillingSettings(ctx, ws, apiwallet.BillingSettingsUpdate{PremiumRouting: &off}, nil)
	if err != nil || !b.Settings.AnalyticsAddon || b.Settings.PremiumRouting {
		t.Fatalf("UpdateBillingSettings(premium off) = %+v, %v", b, err)
	}
	if b, _ := s.FindWorkspaceBilling(ctx, ws); !b.Settings.AnalyticsAddon || b.Settings.PremiumRouting {
		t.Fatalf("settings read back as %+v", b.Settings)
	}
	_, err = s.UpdateBillingSettings(ctx, "ws_missing", apiwallet.BillingSettingsUpdate{AnalyticsAddon: &on}, nil)
	wantCode(t, err, apiwallet.ENOTFOUND)
}

func testPlanChanges(t *testing.T, s Store) {
	ctx := context.Background()
	u := MustCreateUser(t, s, "changes@example.com")
	other := MustCreateUser(t, s, "other-changes@example.com")
	ws := u.PersonalWorkspaceID
	t0 := time.Now().Add(-time.Second)

	ev := apiwallet.NewAuditEvent(ctx, ws, apiwallet.ActorUser, "usr_admin", "workspace.plan_change", "workspace", ws)
	w, err := s.ChangeWorkspacePlan(ctx, ws, apiwallet.PlanProfessional, apiwallet.PlanSourceAdmin, ev)
	if err != nil {
		t.Fatal(err)
	}
	if w.Plan != apiwallet.PlanProfessional || ev.Seq == 0 || ev.Details["from"] != "free" || ev.Details["to"] != "professional" ||
		ev.Details["source"] != "admin" {
		t.Fatalf("ChangeWorkspacePlan = %+v, event %+v", w, ev)
	}
	// The same plan again (a redelivered webhook) records nothing.
	if w, err := s.ChangeWorkspacePlan(ctx, ws, apiwallet.PlanProfessional, apiwallet.PlanSourceStripe, nil); err != nil || w.Plan != "professional" {
		t.Fatalf("no-op change: %+v, %v", w, err)
	}
	if _, err := s.ChangeWorkspacePlan(ctx, ws, apiwallet.PlanEnterprise, apiwallet.PlanSourceStripe,
		&apiwallet.AuditEvent{ActorType: apiwallet.ActorSystem, ActorID: "evt_stripe_1", Action: "workspace.plan_change"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ChangeWorkspacePlan(ctx, other.PersonalWorkspaceID, apiwallet.PlanEnterprise, apiwallet.PlanSourceAdmin, nil); err != nil {
		t.Fatal(err)
	}

	changes, err := s.FindPlanChanges(ctx, ws, t0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		if c.WorkspaceID != ws || c.CreatedAt.Before(t0) || c.CreatedAt.Location() != time.UTC {
			t.Fatalf("change %+v", c)
		}
		got = append(got, fmt.Sprintf("%s>%s by %s %s", c.FromPlan, c.ToPlan, c.Source, c.ActorID))
	}
	if want := "[free>professional by admin usr_admin professional>enterprise by stripe evt_stripe_1]"; fmt.Sprint(got) != want {
		t.Fatalf("FindPlanChanges = %v, want %s", got, want)
	}
	if len(changes) == 2 && changes[0].ID >= changes[1].ID {
		t.Fatalf("change ids not increasing: %d, %d", changes[0].ID, changes[1].ID)
	}
	if later, err := s.FindPlanChanges(ctx, ws, time.Now().Add(time.Hour)); err != nil || len(later) != 0 {
		t.Fatalf("FindPlanChanges(future) = %v, %v", later, err)
	}

	// Unknown and retired plans, and missing workspaces, change nothing.
	_, err = s.ChangeWorkspacePlan(ctx, ws, "gold", apiwallet.PlanSourceAdmin, nil)
	wantCode(t, err, apiwallet.EINVALID)
	retired := false
	if err := s.CreatePlan(ctx, &apiwallet.Plan{ID: "legacy", Name: "Legacy", PriceMicros: 1, Active: true}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdatePlan(ctx, "legacy", apiwallet.PlanUpdate{Active: &retired}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = s.ChangeWorkspacePlan(ctx, ws, "legacy", apiwallet.PlanSourceAdmin, nil)
	wantCode(t, err, apiwallet.EINVALID)
	_, err = s.ChangeWorkspacePlan(ctx, "ws_missing", apiwallet.PlanFree, apiwallet.PlanSourceAdmin, nil)
	wantCode(t, err, apiwallet.ENOTFOUND)
	if b, _ := s.FindWorkspaceBilling(ctx, ws); b.Workspace.Plan != apiwallet.PlanEnterprise {
		t.Fatalf("a refused change moved the workspace to %s", b.Workspace.Plan)
	}
	if n, _ := s.FindPlanChanges(ctx, ws, t0); len(n) != 2 {
		t.Fatalf("refused changes were recorded: %d changes", len(n))
	}

	// Erasing the account erases its plan history.
	if _, err := s.DeleteUserAccount(ctx, u.ID, nil); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.FindPlanChanges(ctx, ws, t0); len(n) != 0 {
		t.Fatalf("plan changes survived erasure: %d", len(n))
	}
	if n, _ := s.FindPlanChanges(ctx, other.PersonalWorkspaceID, t0); len(n) != 1 {
		t.Fatalf("another workspace's changes: %d, want 1", len(n))
	}
}

// The snapshot reconstructs each workspace's plan at the start of the
// period from the changes since, which is what churn is computed from.
func testBillingSnapshot(t *testing.T, s Store) {
	ctx := context.Background()
	change := func(ws, plan string) {
		t.Helper()
		if _, err := s.ChangeWorkspacePlan(ctx, ws, plan, apiwallet.PlanSourceAdmin, nil); err != nil {
			t.Fatal(err)
		}
	}
	var ws [5]string
	for i := range ws {
		ws[i] = MustCreateUser(t, s, fmt.Sprintf("snap%d@example.com", i)).PersonalWorkspaceID
	}
	// Before the period: 0 pays for professional, 1 for enterprise.
	change(ws[0], apiwallet.PlanProfessional)
	change(ws[1], apiwallet.PlanEnterprise)
	time.Sleep(5 * time.Millisecond)
	from := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	// In the period: 0 churns to free; 2 upgrades twice; 3 goes and comes
	// back (no move); 4 stays free; late is created now and upgrades (it
	// is in no start count).
	change(ws[0], apiwallet.PlanFree)
	change(ws[2], apiwallet.PlanProfessional)
	change(ws[2], apiwallet.PlanEnterprise)
	change(ws[3], apiwallet.PlanProfessional)
	change(ws[3], apiwallet.PlanFree)
	late := MustCreateUser(t, s, "snap-late@example.com").PersonalWorkspaceID
	change(late, apiwallet.PlanProfessional)
	on := true
	if _, err := s.UpdateBillingSettings(ctx, ws[1], apiwallet.BillingSettingsUpdate{AnalyticsAddon: &on}, nil); err != nil {
		t.Fatal(err)
	}
	// Calls: 0 and late in the period, 1 only two hours before it.
	mustInsertUsage(t, s, []apiwallet.Usage{
		newUsage(ws[0], "stripe", "key_a", from.Add(time.Minute), 1),
		newUsage(late, "stripe", "key_b", from.Add(time.Minute), 2),
		newUsage(late, "openai", "key_c", from.Add(2*time.Minute), 3),
		newUsage(ws[1], "stripe", "key_d", from.Add(-2*time.Hour), 4),
	})

	snap, err := s.BillingSnapshot(ctx, from, from.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("plans=%v start=%v moves=%v active=%d", snap.Plans, snap.StartPlans, snap.Moves, snap.ActiveWorkspaces)
	want := fmt.Sprintf("plans=[{enterprise 2 1} {free 3 0} {professional 1 0}] "+
		"start=[{enterprise 1 0} {free 3 0} {professional 1 0}] moves=%v active=2",
		sortedMoves(apiwallet.PlanMove{WorkspaceID: ws[0], From: "professional", To: "free"},
			apiwallet.PlanMove{WorkspaceID: ws[2], From: "free", To: "enterprise"}))
	if got != want {
		t.Fatalf("BillingSnapshot:\n got %s\nwant %s", got, want)
	}
}

func sortedMoves(a, b apiwallet.PlanMove) []apiwallet.PlanMove {
	if b.WorkspaceID < a.WorkspaceID {
		a, b = b, a
	}
	return []apiwallet.PlanMove{a, b}
}
