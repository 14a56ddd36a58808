package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/apikeywallet/apiwallet/internal/config"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
)

// migrate applies pending migrations (serve does too, on every start), or
// with --status lists every migration and whether it is applied.
func migrate(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	status := fs.Bool("status", false, "list the migrations, applied and pending, and change nothing")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{"apiwallet migrate takes no arguments besides --status"}
	}
	if *status {
		return migrateStatus(ctx, stdout, environ)
	}
	cfg, log, lw, err := loadConfig(stderr, environ)
	if err != nil {
		return err
	}
	defer lw.Close()
	db, err := sqldb.Open(ctx, cfg.DatabaseURL, cfg.DataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	before, err := db.Migrations(ctx)
	if err != nil {
		return err
	}
	if err := db.Migrate(ctx, log); err != nil {
		return err
	}
	after, err := db.Migrations(ctx)
	if err != nil {
		return err
	}
	applied, version := countApplied(after)
	fmt.Fprintf(stdout, "%s: applied %d migrations; the schema is at version %d\n", db.Dialect(), applied-countOf(before), version)
	return nil
}

// migrateStatus prints one row per migration. It reads the configuration
// without generating secrets: it needs none.
func migrateStatus(ctx context.Context, stdout io.Writer, environ []string) error {
	cfg, err := config.Load(environ)
	if err != nil {
		return err
	}
	db, err := sqldb.Open(ctx, cfg.DatabaseURL, cfg.DataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	ms, err := db.Migrations(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tAPPLIED AT")
	for _, m := range ms {
		at := "pending"
		if m.Applied() {
			at = m.AppliedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\n", m.Version, m.Name, at)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	applied, version := countApplied(ms)
	fmt.Fprintf(stdout, "%s: %d applied, %d pending; the schema is at version %d\n", db.Dialect(), applied, len(ms)-applied, version)
	return nil
}

func countOf(ms []sqldb.Migration) int { n, _ := countApplied(ms); return n }

// countApplied returns how many of ms are applied and the highest applied
// version.
func countApplied(ms []sqldb.Migration) (n int, version int64) {
	for _, m := range ms {
		if m.Applied() {
			n++
			version = max(version, m.Version)
		}
	}
	return n, version
}
