package sqldb_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
	"github.com/apikeywallet/apiwallet/internal/storetest"
	"github.com/apikeywallet/apiwallet/internal/testenv"
)

// The set version must move on a write to any column of api_keys but
// last_used_at, including columns a later migration adds: the triggers
// name the columns they watch, and this reads the columns from the schema.
// Erasing the workspace leaves no version row behind.
func testKeySetTriggers(t *testing.T, db *sqldb.DB) {
	ctx := context.Background()
	u := storetest.MustCreateUser(t, db, "key-set-triggers@example.com")
	ws := u.PersonalWorkspaceID
	k := &apiwallet.Key{ID: apiwallet.NewID("key"), WorkspaceID: ws, Service: "stripe", Tier: apiwallet.TierPaid,
		Enabled: true, Sealed: []byte("sealed"), Fingerprint: "fp-triggers", Masked: "sk_…1"}
	if err := db.CreateKey(ctx, k, 0, nil); err != nil {
		t.Fatal(err)
	}
	q := `SELECT name FROM pragma_table_info('api_keys') ORDER BY name`
	if db.Dialect() == "postgres" {
		q = `SELECT column_name FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = 'api_keys' ORDER BY column_name`
	}
	rows, err := db.SQL().QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if len(cols) < 10 {
		t.Fatalf("api_keys columns = %v", cols)
	}
	last, err := db.KeySetVersion(ctx, ws, "stripe")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cols {
		if _, err := db.SQL().ExecContext(ctx, fmt.Sprintf(`UPDATE api_keys SET %s = %s WHERE id = $1`, c, c), k.ID); err != nil {
			t.Fatalf("update %s: %v", c, err)
		}
		v, err := db.KeySetVersion(ctx, ws, "stripe")
		if err != nil {
			t.Fatal(err)
		}
		if c == "last_used_at" {
			if v != last {
				t.Errorf("writing last_used_at moved the set version from %d to %d", last, v)
			}
			continue
		}
		if v <= last {
			t.Errorf("writing %s left the set version at %d; add the column to the triggers of migration 00011", c, v)
		}
		last = v
	}

	if _, err := db.DeleteUserAccount(ctx, u.ID, nil); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM api_key_sets WHERE workspace_id = $1`, ws).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("erased workspace left %d api_key_sets rows", n)
	}
}

func TestKeySetTriggers(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testKeySetTriggers(t, open(t, filepath.Join(t.TempDir(), "wallet.db"))) })
	t.Run("postgres", func(t *testing.T) {
		testenv.Require(t, testenv.PostgresEnv)
		testKeySetTriggers(t, open(t, testenv.PostgresURL(t)))
	})
}
