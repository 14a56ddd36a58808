package sqldb_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
	"github.com/apikeywallet/apiwallet/internal/testenv"
)

// A panic inside a transaction rolls it back: what it wrote is gone, and
// the next transaction neither waits for its locks (SQLite's write lock,
// PostgreSQL's lock on the unique email it inserted) nor sees its rows.
func testPanicRollsBack(t *testing.T, db *sqldb.DB) {
	ctx := context.Background()
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Fatalf("recovered %v, want the transaction's own panic", v)
			}
		}()
		_ = db.Tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO workspaces (id, name, personal, plan, created_at)
				VALUES ('ws_panic', 'p', TRUE, 'free', 0)`); err != nil {
				t.Fatal(err)
			}
			panic("boom")
		})
	}()
	// With the transaction left open, this write waits for its lock until
	// its deadline.
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	u := &apiwallet.User{Email: "after@example.com", Name: "After", PasswordHash: "x", Role: apiwallet.RoleUser}
	if err := db.CreateUser(wctx, u, &apiwallet.Workspace{ID: "ws_panic", Name: "After"}, nil); err != nil {
		t.Fatalf("a write after a panicked transaction: %v", err)
	}
	if _, err := db.FindUserByID(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
}

func TestPanicRollsBackSQLite(t *testing.T) {
	testPanicRollsBack(t, open(t, filepath.Join(t.TempDir(), "wallet.db")))
}

func TestPanicRollsBackPostgres(t *testing.T) {
	testenv.Require(t, testenv.PostgresEnv)
	testPanicRollsBack(t, open(t, testenv.PostgresURL(t)))
}
