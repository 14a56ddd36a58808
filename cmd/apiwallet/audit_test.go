package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
)

// apiwallet audit verify reports an intact log with its size, and names
// the first bad event of a tampered one with a failing status.
func TestAuditVerifyCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dsn := filepath.Join(dir, "wallet.db")
	environ := []string{"APIWALLET_DATA_DIR=" + dir, "DATABASE_URL=" + dsn}
	verify := func() (string, error) {
		var out bytes.Buffer
		err := Run(ctx, []string{"audit", "verify"}, strings.NewReader(""), &out, io.Discard, environ)
		return out.String(), err
	}

	if out, err := verify(); err != nil || out != "audit log intact: 0 events\n" {
		t.Fatalf("empty log: %q, %v", out, err)
	}
	db, err := sqldb.Open(ctx, dsn, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	var evs []*apiwallet.AuditEvent
	for range 3 {
		ev := apiwallet.NewAuditEvent(ctx, "ws_a", apiwallet.ActorUser, "usr_a", "token.create", "token", "tok_1")
		if err := db.AppendAudit(ctx, ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	if out, err := verify(); err != nil || out != "audit log intact: 3 events\n" {
		t.Fatalf("intact log: %q, %v", out, err)
	}

	if _, err := db.SQL().ExecContext(ctx, `UPDATE audit_events SET outcome = 'failure' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	out, err := verify()
	var u usageError
	if err == nil || errors.As(err, &u) || out != "" {
		t.Fatalf("tampered log: %q, %v; want a failure", out, err)
	}
	if !strings.Contains(err.Error(), "#2") || !strings.Contains(err.Error(), evs[1].ID) {
		t.Fatalf("error %q does not name event #2 (%s)", err, evs[1].ID)
	}

	if err := Run(ctx, []string{"audit"}, nil, io.Discard, io.Discard, environ); !errors.As(err, &u) {
		t.Fatalf("apiwallet audit without verify: %v; want a usage error", err)
	}
}
