package main_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
	"github.com/apikeywallet/apiwallet/internal/storetest"
	"github.com/apikeywallet/apiwallet/internal/testenv"
	"github.com/apikeywallet/apiwallet/internal/vault"
)

// rotate-master-key draws a progress bar over the data keys it rewraps
// when stdout is a terminal (here a pseudo-terminal of script(1)), and
// prints only its summary when it is not.
func TestRotationProgress(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		if testenv.CI() {
			t.Fatal("script(1) is not installed but CI=true")
		}
		t.Skip("script(1) not installed")
	}
	ctx := context.Background()
	dir := t.TempDir()
	dsn := filepath.Join(dir, "wallet.db")
	keys := []string{strings.Repeat("ab", 32), strings.Repeat("cd", 32), strings.Repeat("ef", 32)}
	db, err := sqldb.Open(ctx, dsn, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	root, _ := vault.ParseRootKey(keys[0])
	svc, err := vault.NewService(ctx, db, root)
	if err != nil {
		t.Fatal(err)
	}
	const workspaces = 5
	for i := range workspaces {
		ws := storetest.MustCreateUser(t, db, fmt.Sprintf("progress%d@example.com", i)).PersonalWorkspaceID
		if _, err := svc.CreateKey(ctx, apiwallet.KeyCreate{WorkspaceID: ws, Secret: fmt.Sprintf("sk_live_progress%d-0123456789", i),
			Service: "stripe", Tier: apiwallet.TierFree}, nil); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	env := func(from, to int) []string {
		return cleanEnv("APIWALLET_DATA_DIR="+dir, "DATABASE_URL="+dsn, "JWT_SECRET=test-secret-test-secret-test-secret-0123",
			"ENCRYPTION_KEY="+keys[from], "NEW_ENCRYPTION_KEY="+keys[to], "LOG_LEVEL=error", "SHELL=/bin/sh")
	}

	// On a terminal: the bar, ending at 5/5, then the summary.
	cmd := exec.Command(script, "-qec", bin+" rotate-master-key", "/dev/null")
	cmd.Env = env(0, 1)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rotate on a terminal: %v\n%s", err, out)
	}
	s := string(out)
	// The terminal turns \n into \r\n.
	if !strings.Contains(s, "\rrewrapping data keys [") || !strings.Contains(s, "]  20% 1/5 ") ||
		!strings.Contains(s, "] 100% 5/5 ") || !strings.Contains(s, "\x1b[K\r\nrotated the root key from version 1 to 2: rewrapped 5 data keys") {
		t.Fatalf("terminal output:\n%q", s)
	}

	// Not a terminal: no bar.
	cmd = exec.Command(bin, "rotate-master-key")
	cmd.Env = env(1, 2)
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("rotate into a pipe: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "\r") || strings.Contains(string(out), "rewrapping data keys") ||
		!strings.HasPrefix(string(out), "rotated the root key from version 2 to 3: rewrapped 5 data keys") {
		t.Fatalf("piped output:\n%q", out)
	}
}
