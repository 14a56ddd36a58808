package sqldb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
)

// migrationProvider reads the dialect's embedded migrations. On PostgreSQL
// it holds a session advisory lock while it works, so that instances
// starting together migrate once and a status waits for a migration in
// progress.
func (db *DB) migrationProvider() (*goose.Provider, error) {
	sub, err := fs.Sub(migrations, "migrations/"+db.dialect.name)
	if err != nil {
		return nil, err
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	if db.dialect.sessionLck != nil {
		o, err := db.dialect.sessionLck()
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	p, err := goose.NewProvider(db.dialect.goose, db.db, sub, opts...)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return p, nil
}

// Migration is one schema migration the binary carries and whether the
// database has it.
type Migration struct {
	Version   int64
	Name      string    // the file name without its version and extension
	AppliedAt time.Time // zero while pending
}

// Applied reports whether the database has the migration.
func (m Migration) Applied() bool { return !m.AppliedAt.IsZero() }

// Migrations lists every migration this binary carries, oldest first, with
// when each was applied. It changes no schema but goose's own version
// table, which it creates on a database that never had one.
func (db *DB) Migrations(ctx context.Context) ([]Migration, error) {
	p, err := db.migrationProvider()
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	out := make([]Migration, 0, len(st))
	for _, s := range st {
		name := strings.TrimSuffix(path.Base(s.Source.Path), path.Ext(s.Source.Path))
		if _, rest, ok := strings.Cut(name, "_"); ok {
			name = rest
		}
		m := Migration{Version: s.Source.Version, Name: name}
		if s.State == goose.StateApplied {
			m.AppliedAt = s.AppliedAt.UTC()
			if m.AppliedAt.IsZero() { // applied, time unknown: still applied
				m.AppliedAt = time.Unix(0, 0).UTC()
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// ErrBackupNotSQLite is Backup's answer on PostgreSQL, whose own tools
// (pg_dump, or a base backup) make consistent copies.
var ErrBackupNotSQLite = errors.New("backup copies the embedded SQLite database; on PostgreSQL use pg_dump")

// Backup writes a consistent copy of the SQLite database to file while the
// wallet keeps serving: VACUUM INTO reads one snapshot (writers go on in
// the WAL meanwhile) and writes it compacted. It never overwrites: file
// must not exist. The copy is made readable by its owner only, synced, and
// checked with PRAGMA integrity_check before Backup returns its size.
//
// progress, when not nil, is called about every 200 ms with the bytes
// written so far and the size of the database, which the compacted copy
// may stay under.
func (db *DB) Backup(ctx context.Context, file string, progress func(written, total int64)) (int64, error) {
	if db.dialect.name != "sqlite" {
		return 0, ErrBackupNotSQLite
	}
	// Creating the file claims the name, atomically; VACUUM INTO accepts
	// an empty file.
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return 0, fmt.Errorf("%s already exists: backup never overwrites a file", file)
		}
		return 0, err
	}
	f.Close()
	done := false
	defer func() {
		if !done {
			os.Remove(file)
		}
	}()
	if progress != nil {
		var total int64
		_ = db.db.QueryRowContext(ctx, "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()").Scan(&total)
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					if fi, err := os.Stat(file); err == nil {
						progress(fi.Size(), total)
					}
				}
			}
		}()
	}
	if _, err := db.db.ExecContext(ctx, "VACUUM INTO $1", file); err != nil {
		return 0, fmt.Errorf("copy the database: %w", err)
	}
	// VACUUM INTO writes without syncing.
	f, err = os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return 0, err
	}
	fi, err := f.Stat()
	f.Close()
	if err != nil {
		return 0, err
	}
	if err := checkSQLiteFile(ctx, file); err != nil {
		return 0, err
	}
	if progress != nil {
		progress(fi.Size(), fi.Size())
	}
	done = true
	return fi.Size(), nil
}

// checkSQLiteFile runs SQLite's integrity check on the database in file.
func checkSQLiteFile(ctx context.Context, file string) error {
	c, err := openSQLite(file, "")
	if err != nil {
		return err
	}
	defer c.Close()
	var res string
	if err := c.db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		return fmt.Errorf("check the copy: %w", err)
	}
	if res != "ok" {
		return fmt.Errorf("the copy fails its integrity check: %s", res)
	}
	return nil
}

// SQLitePath returns the file the SQLite backend opens for dsn and
// dataDir, or "" when dsn names PostgreSQL.
func SQLitePath(dsn, dataDir string) string {
	if IsPostgresURL(dsn) {
		return ""
	}
	return sqliteFile(dsn, dataDir)
}
