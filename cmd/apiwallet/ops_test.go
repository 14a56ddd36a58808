package main_test

// The operator's commands on real processes: backup of a serving wallet,
// migrate and migrate --status on both backends, and the container's
// healthcheck.

import (
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver, to read the copy directly

	"github.com/apikeywallet/apiwallet/internal/testenv"
)

// authStub is a fake OpenAI that remembers the Authorization header of the
// last call it received: the key the wallet decrypted.
type authStub struct {
	*httptest.Server
	mu   sync.Mutex
	auth string
	hits atomic.Int64
}

func newAuthStub(t *testing.T) *authStub {
	t.Helper()
	s := &authStub{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		s.auth = r.Header.Get("Authorization")
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[]}`)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *authStub) lastAuth() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auth
}

// run runs the binary in dir with env and returns its combined output and
// exit code.
func run(t *testing.T, dir string, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = cleanEnv(env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), 0
}

// A backup taken while the wallet serves and writes is a consistent
// database: it passes SQLite's integrity check, holds the rows written
// before it, and a wallet started on it with the same secrets decrypts the
// stored key and proxies with it.
func TestBackupWhileServing(t *testing.T) {
	dir := t.TempDir()
	stub := newAuthStub(t)
	w := startWallet(t, dir, append([]string{"OPENAI_BASE_URL=" + stub.URL}, clusterSecrets...)...)
	w.waitHealth(t, 15*time.Second, "healthy")
	c := &cluster{t: t, wallets: []*wallet{w}, client: &http.Client{Timeout: 10 * time.Second}}
	const secret = "sk-backup-0123456789abcdef"
	reg := c.must(201, "POST", w.url+"/auth/register", "", map[string]string{
		"email": "backup@example.com", "password": "correct horse battery", "name": "Backup"})
	jwt := reg["token"].(string)
	c.must(201, "POST", w.url+"/keys", jwt, map[string]any{"key": secret, "service": "openai", "tier": "paid"})
	tok := c.must(201, "POST", w.url+"/tokens", jwt, map[string]any{"name": "app", "services": []string{"openai"}})["token"].(string)

	// Writers keep going through the backup: new keys (each a transaction
	// with its audit event) and proxied calls (usage records).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var keysAdded, calls atomic.Int64
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			st, _, _, err := c.do("POST", w.url+"/keys", jwt, map[string]any{
				"key": fmt.Sprintf("sk-extra-%08d-0123456789", i), "service": "anthropic", "tier": "paid"})
			if err == nil && st == 201 {
				keysAdded.Add(1)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if st, _, _, err := c.do("GET", w.url+"/proxy/openai/v1/models", tok, nil); err == nil && st == 200 {
				calls.Add(1)
			}
		}
	}()
	for keysAdded.Load() < 5 || calls.Load() < 5 {
		time.Sleep(10 * time.Millisecond)
	}
	copyPath := filepath.Join(t.TempDir(), "wallet-backup.db")
	out, code := run(t, dir, clusterSecrets, "backup", copyPath)
	addedBefore := keysAdded.Load()
	time.Sleep(100 * time.Millisecond) // writes go on after the copy too
	close(stop)
	wg.Wait()
	if code != 0 || !strings.Contains(out, "integrity ok") {
		t.Fatalf("backup exited %d:\n%s", code, out)
	}
	t.Logf("backup during %d key writes and %d proxied calls: %s", keysAdded.Load(), calls.Load(), strings.SplitN(out, "\n", 2)[0])
	fi, err := os.Stat(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %v, want 0600", fi.Mode().Perm())
	}

	db, err := sql.Open("sqlite", "file:"+copyPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	var integrity string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("integrity_check of the copy: %q %v", integrity, err)
	}
	users := countRows(t, db, "SELECT count(*) FROM users")
	keys := countRows(t, db, "SELECT count(*) FROM api_keys")
	db.Close()
	if users != 1 || keys < 1+5 || keys > 1+addedBefore+1 {
		t.Fatalf("the copy holds %d users and %d keys; %d extra keys were added before the backup ended", users, keys, addedBefore)
	}

	// Never over an existing file, and the file is left as it was.
	before, _ := os.ReadFile(copyPath)
	out, code = run(t, dir, clusterSecrets, "backup", copyPath)
	after, _ := os.ReadFile(copyPath)
	if code == 0 || !strings.Contains(out, "already exists") || !bytes.Equal(before, after) {
		t.Fatalf("a second backup to the same file exited %d (changed: %v):\n%s", code, !bytes.Equal(before, after), out)
	}

	// A wallet restored from the copy, with the same secrets, opens the key.
	restored := newAuthStub(t)
	w2 := startWallet(t, t.TempDir(), append([]string{"DATABASE_URL=" + copyPath, "OPENAI_BASE_URL=" + restored.URL}, clusterSecrets...)...)
	w2.waitHealth(t, 15*time.Second, "healthy")
	c.must(200, "POST", w2.url+"/auth/login", "", map[string]string{"email": "backup@example.com", "password": "correct horse battery"})
	c.must(200, "GET", w2.url+"/proxy/openai/v1/models", tok, nil)
	if got := restored.lastAuth(); got != "Bearer "+secret {
		t.Fatalf("the restored wallet sent Authorization %q upstream", got)
	}
}

// On PostgreSQL, backup names pg_dump and fails: it copies SQLite only.
func TestBackupRefusesPostgres(t *testing.T) {
	dir := t.TempDir()
	out, code := run(t, dir, []string{"DATABASE_URL=postgres://wallet@127.0.0.1:1/wallet"}, "backup", filepath.Join(dir, "x.db"))
	if code == 0 || !strings.Contains(out, "pg_dump") {
		t.Fatalf("backup on PostgreSQL exited %d:\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.db")); err == nil {
		t.Fatal("a file was written")
	}
	if out, code := run(t, dir, nil, "backup"); code != 2 || !strings.Contains(out, "usage: apiwallet backup FILE") {
		t.Fatalf("backup without FILE exited %d:\n%s", code, out)
	}
}

var statusRow = regexp.MustCompile(`(?m)^(\d+)\s+(\w+)\s+(pending|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$`)

// migrate --status lists every migration the binary carries, pending until
// migrate applies them; migrate says what it did; both backends.
func TestMigrateStatus(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			var env []string
			if backend == "postgres" {
				env = append(env, "DATABASE_URL="+testenv.PostgresURL(t))
			}
			files, err := filepath.Glob(filepath.Join("..", "..", "internal", "sqldb", "migrations", backend, "*.sql"))
			if err != nil || len(files) == 0 {
				t.Fatalf("migrations: %v %v", files, err)
			}
			n := len(files)

			rows := func(out string) [][]string {
				t.Helper()
				m := statusRow.FindAllStringSubmatch(out, -1)
				if len(m) != n || !strings.HasPrefix(out, "VERSION") {
					t.Fatalf("status lists %d migrations, want %d:\n%s", len(m), n, out)
				}
				return m
			}
			out, code := run(t, dir, env, "migrate", "--status")
			if code != 0 {
				t.Fatalf("status exited %d:\n%s", code, out)
			}
			for i, r := range rows(out) {
				if r[3] != "pending" || r[1] != fmt.Sprint(i+1) {
					t.Fatalf("fresh database, row %v:\n%s", r, out)
				}
			}
			if want := fmt.Sprintf("%s: 0 applied, %d pending; the schema is at version 0", backend, n); !strings.Contains(out, want) {
				t.Fatalf("status does not say %q:\n%s", want, out)
			}
			if backend == "sqlite" {
				if _, err := os.Stat(filepath.Join(dir, "data", "secrets.json")); err == nil {
					t.Fatal("migrate --status generated secrets")
				}
			}

			out, code = run(t, dir, env, "migrate")
			if want := fmt.Sprintf("%s: applied %d migrations; the schema is at version %d", backend, n, n); code != 0 || !strings.Contains(out, want) {
				t.Fatalf("migrate exited %d, want %q:\n%s", code, want, out)
			}
			out, _ = run(t, dir, env, "migrate", "--status")
			for _, r := range rows(out) {
				at, err := time.Parse(time.RFC3339, r[3])
				if err != nil || time.Since(at) > time.Hour || time.Until(at) > time.Minute {
					t.Fatalf("migration %s %s applied at %q:\n%s", r[1], r[2], r[3], out)
				}
			}
			out, code = run(t, dir, env, "migrate")
			if code != 0 || !strings.Contains(out, "applied 0 migrations") {
				t.Fatalf("a second migrate exited %d:\n%s", code, out)
			}
		})
	}
}

// healthcheck exits 0 while the wallet is healthy and 1 when it answers
// anything else or does not answer.
func TestHealthcheck(t *testing.T) {
	w := startWallet(t, t.TempDir())
	w.waitHealth(t, 15*time.Second, "healthy")
	port := w.url[strings.LastIndexByte(w.url, ':')+1:]
	if out, code := run(t, t.TempDir(), []string{"PORT=" + port}, "healthcheck"); code != 0 || !strings.Contains(out, "healthy") {
		t.Fatalf("healthy wallet: exit %d:\n%s", code, out)
	}
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"status":"unhealthy","services":{"database":"disconnected","redis":"not configured"}}`)
	}))
	defer sick.Close()
	if out, code := run(t, t.TempDir(), nil, "healthcheck", "--url", sick.URL+"/monitoring/health"); code != 1 || !strings.Contains(out, "503") {
		t.Fatalf("503: exit %d:\n%s", code, out)
	}
	if out, code := run(t, t.TempDir(), []string{fmt.Sprintf("PORT=%d", freePort(t))}, "healthcheck"); code != 1 || !strings.Contains(out, "unhealthy") {
		t.Fatalf("nothing listening: exit %d:\n%s", code, out)
	}
}
