package sqldb_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
	"github.com/apikeywallet/apiwallet/internal/testenv"
)

// auditLog appends n events and returns them, oldest first.
func auditLog(t *testing.T, db *sqldb.DB, n int) []*apiwallet.AuditEvent {
	t.Helper()
	ctx := context.Background()
	var evs []*apiwallet.AuditEvent
	for i := range n {
		ev := apiwallet.NewAuditEvent(ctx, "ws_a", apiwallet.ActorUser, "usr_a", "key.create", "key", fmt.Sprintf("key_%d", i+1))
		ev.Details = map[string]string{"service": "stripe"}
		if err := db.AppendAudit(ctx, ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func tamper(t *testing.T, db *sqldb.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.SQL().ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// wantBroken asserts that verification fails and names want (an event id
// and seq, or "the end").
func wantBroken(t *testing.T, db *sqldb.DB, want ...string) {
	t.Helper()
	_, err := db.VerifyAudit(context.Background())
	if err == nil {
		t.Fatal("VerifyAudit passed a tampered log")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("VerifyAudit = %q; want it to name %q", err, w)
		}
	}
}

// The audit log detects edits, deletions (in the middle and at the end)
// and reordering done by hand in SQL, and names the first bad event.
func testAuditTamper(t *testing.T, open func(t *testing.T) *sqldb.DB) {
	t.Run("intact", func(t *testing.T) {
		db := open(t)
		auditLog(t, db, 5)
		n, err := db.VerifyAudit(context.Background())
		if err != nil || n != 5 {
			t.Fatalf("VerifyAudit = %d, %v; want 5, nil", n, err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		n, err := open(t).VerifyAudit(context.Background())
		if err != nil || n != 0 {
			t.Fatalf("VerifyAudit = %d, %v; want 0, nil", n, err)
		}
	})
	t.Run("edited details", func(t *testing.T) {
		db := open(t)
		evs := auditLog(t, db, 5)
		tamper(t, db, `UPDATE audit_events SET details = $1 WHERE seq = 3`, `{"service":"openai"}`)
		wantBroken(t, db, "#3", evs[2].ID, "edited")
	})
	t.Run("edited actor", func(t *testing.T) {
		db := open(t)
		evs := auditLog(t, db, 5)
		tamper(t, db, `UPDATE audit_events SET actor_id = 'usr_someone_else' WHERE seq = 2`)
		wantBroken(t, db, "#2", evs[1].ID)
	})
	t.Run("edited and rehashed", func(t *testing.T) {
		// Recomputing the edited row's own hash is not enough: the next
		// event's previous-hash no longer matches.
		db := open(t)
		evs := auditLog(t, db, 5)
		tamper(t, db, `UPDATE audit_events SET hash = 'f00d' WHERE seq = 2`)
		wantBroken(t, db, "#2", evs[1].ID)
		tamper(t, db, `UPDATE audit_events SET hash = $1 WHERE seq = 2`, evs[1].Hash)
		tamper(t, db, `UPDATE audit_events SET prev_hash = 'f00d' WHERE seq = 3`)
		wantBroken(t, db, "#3", evs[2].ID)
	})
	t.Run("deleted middle", func(t *testing.T) {
		db := open(t)
		evs := auditLog(t, db, 5)
		tamper(t, db, `DELETE FROM audit_events WHERE seq = 3`)
		wantBroken(t, db, "#4", evs[3].ID, "deleted")
	})
	t.Run("deleted first", func(t *testing.T) {
		db := open(t)
		evs := auditLog(t, db, 5)
		tamper(t, db, `DELETE FROM audit_events WHERE seq = 1`)
		wantBroken(t, db, "#2", evs[1].ID)
	})
	t.Run("deleted newest", func(t *testing.T) {
		db := open(t)
		auditLog(t, db, 5)
		tamper(t, db, `DELETE FROM audit_events WHERE seq = 5`)
		wantBroken(t, db, "at the end", "5 events", "4 remain")
	})
	t.Run("deleted newest and head rewound", func(t *testing.T) {
		// Even an intruder who also rewinds the head leaves a chain whose
		// head hash no longer matches what was there; here the head's
		// hash is left, so the end is flagged.
		db := open(t)
		auditLog(t, db, 5)
		tamper(t, db, `DELETE FROM audit_events WHERE seq = 5`)
		tamper(t, db, `UPDATE audit_head SET seq = 4 WHERE id = 1`)
		wantBroken(t, db, "at the end")
	})
	t.Run("swapped seq", func(t *testing.T) {
		db := open(t)
		evs := auditLog(t, db, 5)
		tamper(t, db, `UPDATE audit_events SET seq = -2 WHERE seq = 2`)
		tamper(t, db, `UPDATE audit_events SET seq = 2 WHERE seq = 4`)
		tamper(t, db, `UPDATE audit_events SET seq = 4 WHERE seq = -2`)
		// Row 2 now holds event 4, whose previous-hash is event 3's.
		wantBroken(t, db, "#2", evs[3].ID)
	})
	t.Run("swapped targets", func(t *testing.T) {
		// Swapping everything but seq between two rows.
		db := open(t)
		evs := auditLog(t, db, 5)
		tamper(t, db, `UPDATE audit_events SET target_id = 'tmp' WHERE seq = 2`)
		tamper(t, db, `UPDATE audit_events SET target_id = $1 WHERE seq = 2`, evs[2].TargetID)
		tamper(t, db, `UPDATE audit_events SET target_id = $1 WHERE seq = 3`, evs[1].TargetID)
		wantBroken(t, db, "#2", evs[1].ID)
	})
}

func TestAuditTamperSQLite(t *testing.T) {
	testAuditTamper(t, func(t *testing.T) *sqldb.DB { return open(t, filepath.Join(t.TempDir(), "wallet.db")) })
}

func TestAuditTamperPostgres(t *testing.T) {
	testenv.Require(t, testenv.PostgresEnv)
	testAuditTamper(t, func(t *testing.T) *sqldb.DB { return open(t, testenv.PostgresURL(t)) })
}
