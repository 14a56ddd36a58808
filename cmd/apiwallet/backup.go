package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/apikeywallet/apiwallet/internal/config"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
)

// backupCmd writes a consistent copy of the SQLite database to FILE while
// serve may be running. It reads the configuration only to find the
// database: it neither migrates nor generates secrets, and it never creates
// a database that is not there.
func backupCmd(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	if len(args) != 1 || args[0] == "" || args[0][0] == '-' {
		return usageError{"usage: apiwallet backup FILE (FILE must not exist)"}
	}
	return backup(ctx, args[0], stdout, environ, nil)
}

// backup is backupCmd past its arguments; progress, when not nil, is
// called as the copy grows (sqldb.DB.Backup).
func backup(ctx context.Context, file string, stdout io.Writer, environ []string, progress func(written, total int64)) error {
	cfg, err := config.Load(environ)
	if err != nil {
		return err
	}
	src := sqldb.SQLitePath(cfg.DatabaseURL, cfg.DataDir)
	if src == "" {
		return errors.New("this wallet runs on PostgreSQL (DATABASE_URL): back it up with pg_dump -Fc, " +
			"and restore with pg_restore (docs/DEPLOYMENT.md); apiwallet backup copies the embedded SQLite database")
	}
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("no SQLite database to back up: %w", err)
	}
	db, err := sqldb.Open(ctx, cfg.DatabaseURL, cfg.DataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	start := time.Now()
	n, err := db.Backup(ctx, file, progress)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up %s to %s: %d bytes, integrity ok, in %v\n", src, file, n, time.Since(start).Round(time.Millisecond))
	fmt.Fprintln(stdout, "the copy's keys open only with the root key in use (ENCRYPTION_KEY, or secrets.json in the data directory): keep a copy of it apart from the backup")
	return nil
}
