package main_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// readme returns README.md.
func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// shBlocks returns the ```sh blocks of the README between two headings.
func shBlocks(t *testing.T, doc, from, to string) []string {
	t.Helper()
	i, j := strings.Index(doc, from), strings.Index(doc, to)
	if i < 0 || j < i {
		t.Fatalf("README has no section %q before %q", from, to)
	}
	var out []string
	for _, b := range docBlocks(doc[i:j]) {
		out = append(out, b.text)
	}
	return out
}

// The README's set-up commands are exactly two, and CI runs the test one.
func TestReadmeSetupCommands(t *testing.T) {
	blocks := shBlocks(t, readme(t), "## Set up", "## A first session")
	if len(blocks) != 1 {
		t.Fatalf("want one set-up block, got %d", len(blocks))
	}
	var cmds []string
	for _, line := range strings.Split(strings.TrimSpace(blocks[0]), "\n") {
		cmd, _, _ := strings.Cut(line, "#")
		cmds = append(cmds, strings.TrimSpace(cmd))
	}
	if len(cmds) != 2 || cmds[0] != "go run ./cmd/apiwallet serve" || cmds[1] != "make test" {
		t.Fatalf("set-up commands = %q", cmds)
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^(GOFLAGS="[^"]*" )?make test\b`).Match(ci) {
		t.Fatal(".ci/run does not run the README's test command")
	}
}

// Every command of the README's walk-through works, in order, against a
// fresh wallet whose Stripe points at a local stand-in.
func TestReadmeWalkthrough(t *testing.T) {
	var hits, wrongKey atomic.Int64
	stripe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("Authorization") != "Bearer sk_test_4eC39HqLyjWDarjtT1zdp7dc" {
			wrongKey.Add(1)
		}
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"ch_readme","object":"charge","amount":2000}`)
	}))
	defer stripe.Close()

	w := startWallet(t, t.TempDir(), "STRIPE_BASE_URL="+stripe.URL)
	w.waitHealth(t, 10*time.Second, "healthy")
	blocks := shBlocks(t, readme(t), "## A first session", "## Operating it")
	script := "set -euo pipefail\n" + strings.Join(blocks, "\n")
	script = strings.ReplaceAll(script, "http://localhost:6789", w.url)
	cmd := exec.Command("bash", "-c", script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("walk-through failed: %v\n%s", err, out)
	}
	for _, want := range []string{`"email":"dev@example.com"`, `"status":"healthy"`, `"errors":[`,
		`"maskedKey":"sk_test_…p7dc"`, `"id":"ch_readme"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("walk-through output lacks %s:\n%s", want, out)
		}
	}
	if hits.Load() != 3 || wrongKey.Load() != 0 {
		t.Fatalf("stripe saw %d calls (want 3), %d without the stored key", hits.Load(), wrongKey.Load())
	}
	if strings.Contains(string(out), "sk_test_4eC39HqLyjWDarjtT1zdp7dc") {
		t.Fatal("a response carried the stored secret")
	}
}

// The README's command-line examples work, in order, against a fresh
// wallet: the password on standard input, as a script gives it.
func TestReadmeCommandLine(t *testing.T) {
	w := startWallet(t, t.TempDir())
	w.waitHealth(t, 10*time.Second, "healthy")
	register(t, w.url, "dev@example.com", "correct horse battery")
	doc := readme(t)
	i := strings.Index(doc, "\n## Command line\n")
	if i < 0 {
		t.Fatal(`README has no "## Command line" section`)
	}
	section := doc[i+1:]
	if j := strings.Index(section, "\n## "); j >= 0 {
		section = section[:j]
	}
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1)
	if len(blocks) != 1 {
		t.Fatalf("want one command-line block, got %d", len(blocks))
	}
	home := t.TempDir()
	if err := os.WriteFile(home+"/stripe.key", []byte("sk_test_readmeCommandLine4242\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	script := "set -euo pipefail\napiwallet() { \"$BIN\" \"$@\"; }\n" +
		strings.ReplaceAll(blocks[0][1], "http://localhost:6789", w.url) + "\necho \"token: ${AWK:0:4}\"\n"
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = home
	cmd.Env = cleanEnv("HOME="+home, "BIN="+bin)
	cmd.Stdin = strings.NewReader("correct horse battery\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("command-line examples failed: %v\n%s", err, out)
	}
	for _, want := range []string{"logged in to " + w.url, "stored stripe key", "sk_test_…4242", "Stripe test",
		"token: awk_", "TOTAL", "healthy (database connected"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "readmeCommandLine4242") || strings.Contains(string(out), "correct horse") {
		t.Fatalf("a secret reached the output:\n%s", out)
	}
}
