package sqldb_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
	"github.com/apikeywallet/apiwallet/internal/testenv"
)

// A read replica answers the analytics reads with what the primary
// wrote, once replayed; its sessions write nothing, even when the URL
// names a primary by mistake.
func TestOpenReadReplica(t *testing.T) {
	ctx := context.Background()
	if _, err := sqldb.OpenReadReplica(ctx, "./wallet.db"); err == nil {
		t.Fatal("a SQLite path was taken for a replica")
	}

	primaryURL, replicaURL := testenv.PostgresReplica(t)
	primary := open(t, primaryURL)
	now := time.Now().UTC()
	if err := primary.InsertUsage(ctx, []apiwallet.Usage{
		{ID: apiwallet.NewID("use"), WorkspaceID: "ws_r", Service: "openai", Status: 200, CreatedAt: now},
		{ID: apiwallet.NewID("use"), WorkspaceID: "ws_r", Service: "openai", Status: 200, CreatedAt: now},
	}); err != nil {
		t.Fatal(err)
	}
	replica, err := sqldb.OpenReadReplica(ctx, replicaURL)
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	q := apiwallet.UsageQuery{WorkspaceID: "ws_r", From: now.Add(-time.Hour), To: now.Add(time.Hour), GroupBy: apiwallet.DimService}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		g, err := replica.UsageGroups(ctx, q)
		if err == nil && len(g) == 1 && g[0].Calls == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica's usage 20 s on: %+v, %v", g, err)
		}
	}
	if err := replica.InsertUsage(ctx, []apiwallet.Usage{{ID: apiwallet.NewID("use"), WorkspaceID: "ws_r", Service: "openai"}}); err == nil ||
		!strings.Contains(err.Error(), "read-only") {
		t.Fatalf("a write on the replica: %v", err)
	}

	// The primary opened as a replica: read-only sessions all the same.
	ro, err := sqldb.OpenReadReplica(ctx, primaryURL)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := ro.InsertUsage(ctx, []apiwallet.Usage{{ID: apiwallet.NewID("use"), WorkspaceID: "ws_r", Service: "openai"}}); err == nil ||
		!strings.Contains(err.Error(), "read-only") {
		t.Fatalf("a write through a read-only session on the primary: %v", err)
	}
	if g, err := primary.UsageGroups(ctx, q); err != nil || len(g) != 1 || g[0].Calls != 2 {
		t.Fatalf("the primary's usage after the refused writes: %+v, %v", g, err)
	}
}
