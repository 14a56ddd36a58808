package sqldb_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
	"github.com/apikeywallet/apiwallet/internal/testenv"
)

// Period reads come from the hourly rollups, never the raw records: with
// the records gone, a month's summary and whole-hour key counts are the
// same.
func testUsageFromRollups(t *testing.T, db *sqldb.DB) {
	ctx := context.Background()
	month := time.Date(2031, 5, 1, 0, 0, 0, 0, time.UTC)
	var batch []apiwallet.Usage
	for i := range 1200 {
		batch = append(batch, apiwallet.Usage{
			ID: apiwallet.NewID("use"), WorkspaceID: "ws_r", Service: "stripe", KeyID: "key_1",
			Status: 200, CostMicros: 100, Premium: i%2 == 0, CreatedAt: month.Add(time.Duration(i) * 31 * time.Minute),
		})
	}
	if err := db.InsertUsage(ctx, batch); err != nil {
		t.Fatal(err)
	}
	next := month.AddDate(0, 1, 0)
	before, err := db.WorkspaceUsage(ctx, "ws_r", month, next)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := db.KeyUsageSince(ctx, "ws_r", "stripe", month)
	if err != nil {
		t.Fatal(err)
	}
	if before.Calls != 1200 || before.Premium != 600 || before.CostMicros != 120000 || keys["key_1"] != 1200 {
		t.Fatalf("WorkspaceUsage = %+v, KeyUsageSince = %v", before, keys)
	}
	if _, err := db.SQL().ExecContext(ctx, `DELETE FROM usage_records`); err != nil {
		t.Fatal(err)
	}
	after, err := db.WorkspaceUsage(ctx, "ws_r", month, next)
	if err != nil || after.Calls != before.Calls || after.CostMicros != before.CostMicros {
		t.Fatalf("without records: %+v, %v; want %+v", after, err, before)
	}
	keys, err = db.KeyUsageSince(ctx, "ws_r", "stripe", month)
	if err != nil || keys["key_1"] != 1200 {
		t.Fatalf("KeyUsageSince from an hour start without records = %v, %v", keys, err)
	}
}

func TestUsageFromRollups(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testUsageFromRollups(t, open(t, filepath.Join(t.TempDir(), "wallet.db"))) })
	t.Run("postgres", func(t *testing.T) {
		testenv.Require(t, testenv.PostgresEnv)
		testUsageFromRollups(t, open(t, testenv.PostgresURL(t)))
	})
}
