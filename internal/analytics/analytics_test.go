package analytics_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/analytics"
	"github.com/apikeywallet/apiwallet/internal/billing"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
	"github.com/apikeywallet/apiwallet/internal/storetest"
)

// catalog is the services of these tests.
type catalog map[string]analytics.ServiceInfo

func (c catalog) Service(name string) (analytics.ServiceInfo, bool) {
	s, ok := c[name]
	return s, ok
}

func openDB(t *testing.T) *sqldb.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, filepath.Join(t.TempDir(), "wallet.db"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	return db
}

// A workspace on Enterprise ($199) whose month is on course for about
// 650 calls is told that Free (1,000 calls, $0) would serve them: $199
// at stake.
func TestCheaperPlan(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	u := storetest.MustCreateUser(t, db, "plan@example.com")
	ws := u.PersonalWorkspaceID
	if _, err := db.ChangeWorkspacePlan(ctx, ws, "enterprise", apiwallet.PlanSourceAdmin, nil); err != nil {
		t.Fatal(err)
	}
	// 200 calls in the first 9.5 days of December: 200 × 744 h / 228 h
	// ≈ 652 calls projected for the month.
	now := time.Date(2026, 12, 10, 12, 0, 0, 0, time.UTC)
	var batch []apiwallet.Usage
	for i := range 200 {
		batch = append(batch, apiwallet.Usage{ID: apiwallet.NewID("use"), WorkspaceID: ws, Service: "openai", KeyID: "key_1",
			Status: 200, Attempted: "key_1:200", CostMicros: 2000,
			CreatedAt: now.Add(-time.Duration(i) * time.Hour)})
	}
	if err := db.InsertUsage(ctx, batch); err != nil {
		t.Fatal(err)
	}
	svc := &analytics.Service{Store: db, Keys: db, Tokens: db, Members: db,
		Services: catalog{"openai": {DisplayName: "OpenAI", PriceMicros: 2000}},
		Plans:    billing.New(db, db, billing.Options{}), Now: func() time.Time { return now }}
	recs, err := svc.Recommendations(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Kind == analytics.CheaperPlan {
			if r.SavingsMicros != 199_000_000 || r.Figures["suggestedPlan"] != "free" || r.Figures["projectedCalls"] != int64(652) {
				t.Errorf("cheaper plan: %+v", r)
			}
			return
		}
	}
	t.Errorf("no cheaper plan advice: %+v", recs)
}

// Day buckets follow the time zone, empty days included.
func TestReportDaysInZone(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	// New York leaves summer time at 06:00 UTC on 1 November 2026, so
	// that day is 25 hours long: 03:00 UTC on 2 November is still 22:00
	// on 1 November (EST, UTC-5), while the day began at 00:00 EDT.
	at := time.Date(2026, 11, 2, 3, 0, 0, 0, time.UTC)
	if err := db.InsertUsage(ctx, []apiwallet.Usage{{ID: "use_1", WorkspaceID: "ws_1", Service: "openai", KeyID: "k",
		Status: 200, CreatedAt: at}}); err != nil {
		t.Fatal(err)
	}
	svc := &analytics.Service{Store: db, Keys: db, Tokens: db, Members: db, Services: catalog{}}
	from := time.Date(2026, 10, 31, 0, 0, 0, 0, ny)
	rep, err := svc.Report(ctx, analytics.Request{WorkspaceID: "ws_1", From: from, To: from.AddDate(0, 0, 4), Loc: ny,
		GroupBy: analytics.GroupDay})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 4 {
		t.Fatalf("%d rows", len(rep.Rows))
	}
	for i, want := range []int64{0, 1, 0, 0} {
		if rep.Rows[i].Calls != want {
			t.Errorf("row %s: %d calls, want %d", rep.Rows[i].Group, rep.Rows[i].Calls, want)
		}
	}
	if rep.Rows[1].Group != "2026-11-01T00:00:00-04:00" {
		t.Errorf("1 November starts at %s", rep.Rows[1].Group)
	}
}
