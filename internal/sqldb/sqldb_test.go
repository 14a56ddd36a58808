package sqldb_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/apikeywallet/apiwallet/internal/sqldb"
	"github.com/apikeywallet/apiwallet/internal/storetest"
	"github.com/apikeywallet/apiwallet/internal/testenv"
)

func open(t *testing.T, dsn string) *sqldb.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, dsn, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		return open(t, filepath.Join(t.TempDir(), "wallet.db"))
	})
}

func TestPostgres(t *testing.T) {
	testenv.Require(t, testenv.PostgresEnv)
	storetest.Run(t, func(t *testing.T) storetest.Store {
		return open(t, testenv.PostgresURL(t))
	})
}

// Migrating twice is a no-op: serve migrates on every start.
func TestMigrateIdempotent(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "wallet.db"))
	if err := db.Migrate(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
}
