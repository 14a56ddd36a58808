package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet/internal/testenv"
)

// bin is the apiwallet binary built once for these end-to-end tests.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "apiwallet-bin")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "apiwallet")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cleanEnv is the environment with every wallet variable removed, so tests
// see only what they set.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "PATH" || k == "HOME" || k == "TMPDIR" || k == "GOCOVERDIR":
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Production mode refuses to start without explicit secrets and names each
// missing or wrong one.
func TestProductionRequiresSecrets(t *testing.T) {
	cases := []struct {
		name string
		env  []string
		want []string
	}{
		{"nothing set", []string{"APP_ENV=production"}, []string{"JWT_SECRET is not set", "ENCRYPTION_KEY is not set"}},
		{"seed NODE_ENV", []string{"NODE_ENV=production"}, []string{"JWT_SECRET is not set", "ENCRYPTION_KEY is not set"}},
		{"short JWT secret", []string{"APP_ENV=production", "JWT_SECRET=0123456789", "ENCRYPTION_KEY=" + strings.Repeat("a", 64)},
			[]string{"JWT_SECRET is 10 characters long; it must be at least 32"}},
		{"bad encryption key", []string{"APP_ENV=production", "JWT_SECRET=" + strings.Repeat("s", 40), "ENCRYPTION_KEY=tooshort"},
			[]string{"ENCRYPTION_KEY"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(bin, "serve")
			cmd.Dir = dir
			cmd.Env = cleanEnv(append(c.env, "PORT=0", "HOST=127.0.0.1")...)
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
				t.Fatalf("serve did not fail: %v\n%s", err, out)
			}
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output does not say %q:\n%s", w, out)
				}
			}
			if strings.Contains(string(out), "tooshort") {
				t.Error("the error echoes the key's value")
			}
			if _, err := os.Stat(filepath.Join(dir, "data", "secrets.json")); err == nil {
				t.Error("production mode generated secrets")
			}
		})
	}
}

// wallet is a running apiwallet serve process.
type wallet struct {
	cmd  *exec.Cmd
	url  string
	logs *bytes.Buffer
	mu   *sync.Mutex
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done is closed
}

func startWallet(t *testing.T, dir string, env ...string) *wallet {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(bin, "serve")
	cmd.Dir = dir
	cmd.Env = cleanEnv(append([]string{"HOST=127.0.0.1", fmt.Sprintf("PORT=%d", port)}, env...)...)
	w := &wallet{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", port), logs: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := pr.Read(b)
			w.mu.Lock()
			w.logs.Write(b[:n])
			w.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.err = cmd.Wait(); pw.Close(); close(w.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-w.done
	})
	return w
}

func (w *wallet) Logs() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.logs.String()
}

// waitLog reports whether the wallet logs s within 2 s: lines are written
// as the handler returns and reach the output in batches.
func (w *wallet) waitLog(s string) bool {
	for range 100 {
		if strings.Contains(w.Logs(), s) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

type health struct {
	Status   string `json:"status"`
	Services struct {
		Database string `json:"database"`
		Redis    string `json:"redis"`
	} `json:"services"`
}

func (w *wallet) health() (int, health, error) {
	c := http.Client{Timeout: 3 * time.Second}
	res, err := c.Get(w.url + "/monitoring/health")
	if err != nil {
		return 0, health{}, err
	}
	defer res.Body.Close()
	var h health
	err = json.NewDecoder(res.Body).Decode(&h)
	return res.StatusCode, h, err
}

// waitHealth polls until the health check reports want or the deadline.
func (w *wallet) waitHealth(t *testing.T, within time.Duration, want string) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if _, h, err := w.health(); err == nil && h.Status == want {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("health not %q within %v; logs:\n%s", want, within, w.Logs())
	return 0
}

// With no configuration at all, serve works: SQLite under ./data, secrets
// generated once with 0600 permissions, healthy quickly, and shut down
// cleanly on SIGTERM.
func TestZeroConfigServe(t *testing.T) {
	dir := t.TempDir()
	w := startWallet(t, dir)
	took := w.waitHealth(t, 10*time.Second, "healthy")
	t.Logf("healthy %v after start", took)
	fi, err := os.Stat(filepath.Join(dir, "data", "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("secrets.json mode %v, want 0600", fi.Mode().Perm())
	}
	if fi, err := os.Stat(filepath.Join(dir, "data", "apiwallet.db")); err != nil {
		t.Fatal(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Fatalf("apiwallet.db mode %v, want 0600", fi.Mode().Perm())
	}
	if !w.waitLog("generated JWT_SECRET and ENCRYPTION_KEY") {
		t.Fatal("no log line about the generated secrets")
	}
	first, _ := os.ReadFile(filepath.Join(dir, "data", "secrets.json"))

	// One request per log line, with the request id.
	res, err := http.Get(w.url + "/monitoring/health")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	rid := res.Header.Get("X-Request-Id")
	if rid == "" || !w.waitLog(`"request_id":"`+rid+`"`) {
		t.Fatalf("request id %q not in the logs", rid)
	}

	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.done:
		if w.err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", w.err, w.Logs())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit 15 s after SIGTERM")
	}
	if !strings.Contains(w.Logs(), `"msg":"stopped"`) {
		t.Fatalf("no clean stop in logs:\n%s", w.Logs())
	}

	// The secrets survive a restart unchanged.
	w2 := startWallet(t, dir)
	w2.waitHealth(t, 10*time.Second, "healthy")
	second, _ := os.ReadFile(filepath.Join(dir, "data", "secrets.json"))
	if !bytes.Equal(first, second) {
		t.Fatal("secrets changed across restarts")
	}
}

// The first admin is made by the operator, with the password on stdin.
func TestUserCreateAdmin(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(bin, "user", "create", "--email", "Root@Example.com", "--name", "Root", "--admin")
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader("a long admin passphrase\n")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "created ADMIN root@example.com") {
		t.Fatalf("user create: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "a long admin passphrase") {
		t.Fatal("the password was echoed")
	}
	w := startWallet(t, dir)
	w.waitHealth(t, 10*time.Second, "healthy")
	res, err := http.Post(w.url+"/auth/login", "application/json",
		strings.NewReader(`{"email":"root@example.com","password":"a long admin passphrase"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		User struct{ Role string } `json:"user"`
	}
	_ = json.NewDecoder(res.Body).Decode(&body)
	if res.StatusCode != 200 || body.User.Role != "ADMIN" {
		t.Fatalf("login as the new admin: %d %+v", res.StatusCode, body)
	}
}

// Losing PostgreSQL turns health to 503 "disconnected" within 5 s, and it
// recovers by itself when the database is back.
func TestHealthFollowsPostgres(t *testing.T) {
	dsn := testenv.PostgresURL(t)
	host := strings.SplitN(strings.SplitN(dsn, "@", 2)[1], "/", 2)[0]
	// Stopping the proxy looks to the wallet exactly like the database
	// going away.
	p := testenv.StartProxy(t, host)
	w := startWallet(t, t.TempDir(), "DATABASE_URL="+strings.Replace(dsn, host, p.Addr(), 1))
	w.waitHealth(t, 15*time.Second, "healthy")

	p.Stop()
	start := time.Now()
	for {
		code, h, err := w.health()
		if err == nil && code == http.StatusServiceUnavailable && h.Status == "unhealthy" && h.Services.Database == "disconnected" {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("health still %d %+v %v after 5 s", code, h, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("503 disconnected %v after the database went away", time.Since(start))

	p.Start()
	took := w.waitHealth(t, 10*time.Second, "healthy")
	t.Logf("healthy again %v after the database came back", took)
}
