package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
	"github.com/apikeywallet/apiwallet/internal/storetest"
	"github.com/apikeywallet/apiwallet/internal/vault"
)

// apiwallet rotate-master-key takes both keys from the environment only,
// rewraps everything so the new key opens every secret and the old key
// nothing, reports what it did, and refuses bad input without changing
// anything.
func TestRotateMasterKeyCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dsn := filepath.Join(dir, "wallet.db")
	oldHex, newHex := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	base := []string{"APIWALLET_DATA_DIR=" + dir, "DATABASE_URL=" + dsn,
		"JWT_SECRET=test-secret-test-secret-test-secret-0123"}
	run := func(args []string, env ...string) (string, error) {
		var out bytes.Buffer
		err := Run(ctx, append([]string{"rotate-master-key"}, args...), strings.NewReader(""), &out, io.Discard,
			append(append([]string{}, base...), env...))
		return out.String(), err
	}

	db, err := sqldb.Open(ctx, dsn, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	oldRoot, _ := vault.ParseRootKey(oldHex)
	newRoot, _ := vault.ParseRootKey(newHex)
	svc, err := vault.NewService(ctx, db, oldRoot)
	if err != nil {
		t.Fatal(err)
	}
	ws := storetest.MustCreateUser(t, db, "rotate-cmd@example.com").PersonalWorkspaceID
	secret := "sk_live_rotate-command-0123456789"
	k, err := svc.CreateKey(ctx, apiwallet.KeyCreate{WorkspaceID: ws, Secret: secret, Service: "stripe", Tier: apiwallet.TierFree}, nil)
	if err != nil {
		t.Fatal(err)
	}

	var u usageError
	// Refusals, each changing nothing.
	if _, err := run([]string{newHex}, "ENCRYPTION_KEY="+oldHex); !errors.As(err, &u) {
		t.Fatalf("a key as an argument: %v; want a usage error", err)
	}
	if _, err := run(nil, "ENCRYPTION_KEY="+oldHex); err == nil || !strings.Contains(err.Error(), "NEW_ENCRYPTION_KEY is not set") {
		t.Fatalf("without NEW_ENCRYPTION_KEY: %v", err)
	}
	if _, err := run(nil, "ENCRYPTION_KEY="+oldHex, "NEW_ENCRYPTION_KEY=short"); err == nil ||
		!strings.Contains(err.Error(), "NEW_ENCRYPTION_KEY") || strings.Contains(err.Error(), "short") {
		t.Fatalf("bad NEW_ENCRYPTION_KEY: %v", err)
	}
	if _, err := run(nil, "ENCRYPTION_KEY="+oldHex, "NEW_ENCRYPTION_KEY="+oldHex); err == nil {
		t.Fatal("rotation to the same key succeeded")
	}
	wrong := strings.Repeat("ef", 32)
	if _, err := run(nil, "ENCRYPTION_KEY="+wrong, "NEW_ENCRYPTION_KEY="+newHex); !errors.Is(err, vault.ErrRootKeyMismatch) ||
		strings.Contains(err.Error(), wrong) {
		t.Fatalf("wrong old key: %v", err)
	}
	if rk, _ := db.FindRootKey(ctx); rk.Version != 1 {
		t.Fatalf("a refused rotation changed the root to version %d", rk.Version)
	}

	// The real thing, with the keys in variables named by flags.
	out, err := run([]string{"--old-env", "OLD_KEY", "--new-env", "ENCRYPTION_KEY"}, "OLD_KEY="+oldHex, "ENCRYPTION_KEY="+newHex)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "from version 1 to 2") || !strings.Contains(out, "rewrapped 1 data keys (protecting 1 keys)") ||
		strings.Contains(out, oldHex) || strings.Contains(out, newHex) {
		t.Fatalf("output: %q", out)
	}
	if _, err := svc.Reveal(ctx, ws, k.ID); !errors.Is(err, vault.ErrRootKeyMismatch) {
		t.Fatalf("an instance with the old key: %v; want ErrRootKeyMismatch", err)
	}
	if _, err := vault.NewService(ctx, db, oldRoot); !errors.Is(err, vault.ErrRootKeyMismatch) {
		t.Fatalf("restart with the old key: %v; want ErrRootKeyMismatch", err)
	}
	cur, err := vault.NewService(ctx, db, newRoot)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := cur.Reveal(ctx, ws, k.ID); err != nil || string(plain) != secret {
		t.Fatalf("after rotation: %v", err)
	}
	evs, _ := db.FindAuditEvents(ctx, apiwallet.AuditFilter{Action: "vault.rotate_root"})
	if len(evs) != 1 || evs[0].Details["data_keys"] != "1" || evs[0].ActorType != apiwallet.ActorSystem {
		t.Fatalf("rotation events: %+v", evs)
	}
	// Running it again with the same old key is refused.
	if _, err := run([]string{"--old-env", "OLD_KEY", "--new-env", "ENCRYPTION_KEY"}, "OLD_KEY="+oldHex, "ENCRYPTION_KEY="+newHex); err == nil {
		t.Fatal("a second rotation from the retired key succeeded")
	}
}

// With the development secrets file (no ENCRYPTION_KEY in the
// environment) the old key is read from it, and the command says to update
// it.
func TestRotateMasterKeyFromSecretsFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	env := []string{"APIWALLET_DATA_DIR=" + dir, "NEW_ENCRYPTION_KEY=" + strings.Repeat("cd", 32)}
	var out bytes.Buffer
	if err := Run(ctx, []string{"rotate-master-key"}, strings.NewReader(""), &out, io.Discard, env); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), filepath.Join(dir, "secrets.json")) {
		t.Fatalf("output does not point at the secrets file: %q", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "secrets.json")); err != nil {
		t.Fatal(err)
	}
}
