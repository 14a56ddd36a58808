package wallet

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
)

// An audit event that cannot be written is counted; one written is not.
func TestAuditWriteFailuresCounted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqldb.Open(ctx, filepath.Join(dir, "wallet.db"), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	a := newCountingAudit(db, reg)
	ev := apiwallet.NewAuditEvent(ctx, "ws_a", apiwallet.ActorUser, "usr_a", "auth.login_failed", "user", "usr_a")
	if err := a.AppendAudit(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(a.failures); n != 0 {
		t.Fatalf("failures = %v after a written event", n)
	}
	db.Close()
	ev = apiwallet.NewAuditEvent(ctx, "ws_a", apiwallet.ActorUser, "usr_a", "auth.login_failed", "user", "usr_a")
	if err := a.AppendAudit(ctx, ev); err == nil {
		t.Fatal("an append to a closed database succeeded")
	}
	if n, err := testutil.GatherAndCount(reg, "apiwallet_audit_write_failures_total"); err != nil || n != 1 {
		t.Fatalf("series = %d, %v", n, err)
	}
	if n := testutil.ToFloat64(a.failures); n != 1 {
		t.Fatalf("failures = %v, want 1", n)
	}
}
