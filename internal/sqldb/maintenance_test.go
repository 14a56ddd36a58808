package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/apikeywallet/apiwallet/internal/sqldb"
	"github.com/apikeywallet/apiwallet/internal/testenv"
)

// Backup's copy is a database holding what was committed, reported through
// progress up to its full size; it never writes over a file, and on
// PostgreSQL it refuses.
func TestBackupSQLite(t *testing.T) {
	ctx := context.Background()
	db := open(t, filepath.Join(t.TempDir(), "wallet.db"))
	if _, err := db.SQL().ExecContext(ctx, "CREATE TABLE backup_probe (n INTEGER)"); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := db.SQL().ExecContext(ctx, "INSERT INTO backup_probe VALUES ($1)", i); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "copy.db")
	var last, total atomic.Int64
	n, err := db.Backup(ctx, file, func(written, of int64) { last.Store(written); total.Store(of) })
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Size() != n || last.Load() != n || total.Load() != n {
		t.Fatalf("copy %d bytes (%v), reported %d; progress ended at %d of %d", fi.Size(), err, n, last.Load(), total.Load())
	}
	c, err := sql.Open("sqlite", "file:"+file+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var rows int
	if err := c.QueryRow("SELECT count(*) FROM backup_probe").Scan(&rows); err != nil || rows != 100 {
		t.Fatalf("the copy holds %d rows: %v", rows, err)
	}

	if _, err := db.Backup(ctx, file, nil); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("backup over an existing file: %v", err)
	}
	if fi2, _ := os.Stat(file); fi2.Size() != n {
		t.Fatal("the existing file changed")
	}
	if _, err := db.Backup(ctx, filepath.Join(t.TempDir(), "no", "such", "dir.db"), nil); err == nil {
		t.Fatal("backup into a missing directory succeeded")
	}
}

func TestBackupRefusedOnPostgres(t *testing.T) {
	db := open(t, testenv.PostgresURL(t))
	file := filepath.Join(t.TempDir(), "copy.db")
	if _, err := db.Backup(context.Background(), file, nil); !errors.Is(err, sqldb.ErrBackupNotSQLite) {
		t.Fatalf("backup on PostgreSQL: %v", err)
	}
	if _, err := os.Stat(file); err == nil {
		t.Fatal("a file was written")
	}
}

// Migrations names each migration as its file does, all applied after
// Migrate, on both backends.
func TestMigrationsListed(t *testing.T) {
	for _, dsn := range []func(*testing.T) string{
		func(t *testing.T) string { return filepath.Join(t.TempDir(), "wallet.db") },
		func(t *testing.T) string { return testenv.PostgresURL(t) },
	} {
		db := open(t, dsn(t))
		ms, err := db.Migrations(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join("migrations", db.Dialect(), "*.sql"))
		if len(ms) != len(files) || len(ms) == 0 {
			t.Fatalf("%s: %d migrations listed, %d files", db.Dialect(), len(ms), len(files))
		}
		for i, m := range ms {
			if m.Version != int64(i+1) || !m.Applied() || !strings.HasSuffix(files[i], "_"+m.Name+".sql") {
				t.Fatalf("%s: migration %d is %+v (file %s)", db.Dialect(), i, m, files[i])
			}
		}
	}
}
