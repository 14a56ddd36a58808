package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// cli runs the apiwallet client commands as a user would: the built
// binary, with HOME of its own (so the login lands in
// $HOME/.config/apiwallet/config.json), every argument recorded so the
// test can check that no secret was ever on a command line.
type cli struct {
	t    *testing.T
	home string
	env  []string
	argv [][]string
	outs []string // everything every command printed
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) out() string { return r.stdout + r.stderr }

func (c *cli) run(stdin string, args ...string) result {
	c.t.Helper()
	c.argv = append(c.argv, args)
	cmd := exec.Command(bin, args...)
	cmd.Dir = c.home
	cmd.Env = cleanEnv(append([]string{"HOME=" + c.home}, c.env...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	c.outs = append(c.outs, so.String()+se.String())
	return result{so.String(), se.String(), code}
}

// ok runs a command that must succeed.
func (c *cli) ok(stdin string, args ...string) string {
	c.t.Helper()
	r := c.run(stdin, args...)
	if r.code != 0 {
		c.t.Fatalf("apiwallet %s: exit %d\n%s", strings.Join(args, " "), r.code, r.out())
	}
	return r.stdout
}

func (c *cli) configFile() string {
	return filepath.Join(c.home, ".config", "apiwallet", "config.json")
}

func register(t *testing.T, url, email, password string) {
	t.Helper()
	res, err := http.Post(url+"/auth/register", "application/json",
		strings.NewReader(fmt.Sprintf(`{"email":%q,"password":%q,"name":"Dev"}`, email, password)))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d", res.StatusCode)
	}
}

// The client commands against a real wallet on SQLite: a wrong password
// fails clearly with status 1 and keeps nothing; login keeps its token in
// a 0600 file in a 0700 directory and later invocations use it; keys,
// tokens, usage and health work end to end; no secret reaches the output
// or an argument; a config file others may read is refused; logout forgets
// the token.
func TestClientCommands(t *testing.T) {
	var upstreamHits atomic.Int64
	stripe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamHits.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"ch_cli","object":"charge"}`)
	}))
	defer stripe.Close()
	w := startWallet(t, t.TempDir(), "STRIPE_BASE_URL="+stripe.URL)
	w.waitHealth(t, 15*time.Second, "healthy")
	const email, password = "cli@example.com", "correct horse battery staple"
	register(t, w.url, email, password)

	c := &cli{t: t, home: t.TempDir()}
	secrets := []string{password, "sk_test_cliFirstSecret0123456789", "sk_test_cliFromAFile98765432", "sk_test_cliRotated5555555555"}

	// Nothing works before a login, and the message says what to do.
	if r := c.run("", "keys", "list", "--url", w.url); r.code != 1 || !strings.Contains(r.stderr, "not logged in to "+w.url) {
		t.Fatalf("keys list before login: %d %s", r.code, r.out())
	}
	// A wrong password: a readable error, status 1, nothing kept.
	r := c.run("not the password\n", "login", "--url", w.url, "--email", email)
	if r.code != 1 || !strings.Contains(r.stderr, "401 unauthorized: invalid email or password") {
		t.Fatalf("wrong password: exit %d\n%s", r.code, r.out())
	}
	if _, err := os.Stat(c.configFile()); err == nil {
		t.Fatal("a failed login wrote the config file")
	}

	out := c.ok(password+"\n", "login", "--url", w.url, "--email", email)
	if !strings.Contains(out, "logged in to "+w.url+" as "+email) {
		t.Fatalf("login: %q", out)
	}
	fi, err := os.Stat(c.configFile())
	if err != nil {
		t.Fatal(err)
	}
	di, _ := os.Stat(filepath.Dir(c.configFile()))
	if fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
		t.Fatalf("config file %v in directory %v, want 0600 in 0700", fi.Mode().Perm(), di.Mode().Perm())
	}
	var cfg struct{ URL, Token string }
	b, _ := os.ReadFile(c.configFile())
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.URL != w.url || cfg.Token == "" || strings.Contains(string(b), password) {
		t.Fatalf("config file: %v %s", err, b)
	}
	if strings.Contains(out, cfg.Token) {
		t.Fatal("login printed the token")
	}

	// From here on no --url: the login's URL is used.
	if out := c.ok("", "health"); !strings.Contains(out, "healthy (database connected, redis not configured)") {
		t.Fatalf("health: %q", out)
	}
	var h struct{ Status string }
	if err := json.Unmarshal([]byte(c.ok("", "health", "--json")), &h); err != nil || h.Status != "healthy" {
		t.Fatalf("health --json: %v %+v", err, h)
	}

	// keys add: the secret from standard input, then from a file.
	out = c.ok(secrets[1]+"\n", "keys", "add", "--service", "stripe", "--tier", "paid", "--label", "Stripe test", "--quota", "5000")
	if !strings.Contains(out, "stored stripe key key_") || !strings.Contains(out, "sk_test_…6789") {
		t.Fatalf("keys add: %q", out)
	}
	keyID := strings.Fields(out)[3]
	file := filepath.Join(c.home, "openai.key")
	if err := os.WriteFile(file, []byte(secrets[2]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.ok("", "keys", "add", "--service", "openai", "--tier", "free", "--secret-file", file)
	list := c.ok("", "keys", "list")
	if !strings.Contains(list, keyID) || !strings.Contains(list, "Stripe test") || !strings.Contains(list, "openai") ||
		!strings.HasPrefix(list, "ID ") {
		t.Fatalf("keys list:\n%s", list)
	}
	var keys []struct {
		ID, Service, MaskedKey string
		Enabled                bool
		Version                int
		Metadata               struct{ Quota int64 }
	}
	if err := json.Unmarshal([]byte(c.ok("", "keys", "list", "--service", "stripe", "--json")), &keys); err != nil ||
		len(keys) != 1 || keys[0].ID != keyID || keys[0].Metadata.Quota != 5000 || !keys[0].Enabled {
		t.Fatalf("keys list --json: %v %+v", err, keys)
	}
	// A secret as an argument is refused before anything is sent, and
	// not echoed.
	if r := c.run("", "keys", "add", "--service", "stripe", "--secret="+"sk_test_onTheCommandLine"); r.code != 2 ||
		!strings.Contains(r.stderr, "never taken from the command line") || strings.Contains(r.out(), "onTheCommandLine") {
		t.Fatalf("keys add --secret: %d %s", r.code, r.out())
	}
	c.argv = c.argv[:len(c.argv)-1] // that one was on purpose

	rotated := filepath.Join(c.home, "rotated.key")
	if err := os.WriteFile(rotated, []byte(secrets[3]), 0o600); err != nil {
		t.Fatal(err)
	}
	out = c.ok("", "keys", "rotate", keyID, "--secret-file", rotated)
	if !strings.Contains(out, "rotated stripe key "+keyID+" to version 2 (sk_test_…5555)") {
		t.Fatalf("keys rotate: %q", out)
	}

	// An access token for an app: printed once, alone on stdout.
	r = c.run("", "tokens", "create", "--name", "checkout", "--service", "stripe", "--expires", "720h")
	if r.code != 0 || !strings.Contains(r.stderr, `"checkout" for stripe; it is shown only now`) {
		t.Fatalf("tokens create: %d %s", r.code, r.out())
	}
	appToken := strings.TrimSpace(r.stdout)
	if appToken == "" || strings.Contains(appToken, "\n") {
		t.Fatalf("tokens create stdout: %q", r.stdout)
	}
	secrets = append(secrets, appToken)
	// The app calls Stripe through the wallet with it.
	call := func() int {
		req, _ := http.NewRequest("POST", w.url+"/proxy/stripe/v1/charges", strings.NewReader("amount=2000"))
		req.Header.Set("Authorization", "Bearer "+appToken)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := call(); code != 200 || upstreamHits.Load() != 1 {
		t.Fatalf("proxy call with the new token: %d, %d upstream hits", code, upstreamHits.Load())
	}
	toks := c.ok("", "tokens", "list")
	if !strings.Contains(toks, "checkout") || !strings.Contains(toks, "active") {
		t.Fatalf("tokens list:\n%s", toks)
	}
	var tl []struct{ ID, Name, Status string }
	if err := json.Unmarshal([]byte(c.ok("", "tokens", "list", "--json")), &tl); err != nil || len(tl) != 1 {
		t.Fatalf("tokens list --json: %v %+v", err, tl)
	}

	// The call shows in the usage report once the recorder has flushed it.
	var rep struct {
		Totals struct{ Calls int64 }
		Rows   []struct {
			Group string
			Calls int64
		}
	}
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		raw := c.ok("", "usage", "--json")
		if err := json.Unmarshal([]byte(raw), &rep); err != nil {
			t.Fatalf("usage --json: %v\n%s", err, raw)
		}
		if rep.Totals.Calls == 1 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("usage --json after 10 s: %s", raw)
		}
	}
	if len(rep.Rows) != 1 || rep.Rows[0].Group != "stripe" || rep.Rows[0].Calls != 1 {
		t.Fatalf("usage rows: %+v", rep.Rows)
	}
	table := c.ok("", "usage", "--group-by", "service", "--from", time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly))
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 5 || !strings.Contains(lines[2], "GROUP") || !strings.Contains(strings.ToLower(lines[3]), "stripe") ||
		strings.Fields(lines[3])[1] != "1" || strings.Fields(lines[4])[0] != "TOTAL" {
		t.Fatalf("usage table:\n%s", table)
	}
	if r := c.run("", "usage", "--group-by", "planet"); r.code != 1 || !strings.Contains(r.stderr, "400 bad request") ||
		!strings.Contains(r.stderr, "group_by") {
		t.Fatalf("usage with a bad grouping: %d %s", r.code, r.out())
	}

	// Revoke and disable: the wallet refuses the token, and the key stays
	// but is off.
	out = c.ok("", "tokens", "revoke", tl[0].ID)
	if !strings.Contains(out, "revoked access token "+tl[0].ID) || call() != http.StatusUnauthorized {
		t.Fatalf("tokens revoke: %q", out)
	}
	if out := c.ok("", "tokens", "list"); !strings.Contains(out, "revoked") {
		t.Fatalf("tokens list after revoke:\n%s", out)
	}
	c.ok("", "keys", "disable", keyID)
	if err := json.Unmarshal([]byte(c.ok("", "keys", "list", "--service", "stripe", "--json")), &keys); err != nil ||
		keys[0].Enabled || keys[0].Version != 2 {
		t.Fatalf("after keys disable: %+v", keys)
	}
	if r := c.run("", "keys", "disable", "key_doesnotexist"); r.code != 1 || !strings.Contains(r.stderr, "404 not found") {
		t.Fatalf("disable a missing key: %d %s", r.code, r.out())
	}

	// APIWALLET_TOKEN, for scripts, wins over the kept login.
	c.env = []string{"APIWALLET_TOKEN=not-a-token"}
	if r := c.run("", "keys", "list"); r.code != 1 || !strings.Contains(r.stderr, "401 unauthorized") {
		t.Fatalf("keys list with a bad APIWALLET_TOKEN: %d %s", r.code, r.out())
	}
	c.env = nil

	// The token never goes to a wallet other than the one it came from.
	var sawAuth atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			sawAuth.Add(1)
		}
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer other.Close()
	if r := c.run("", "keys", "list", "--url", other.URL); r.code != 1 || sawAuth.Load() != 0 ||
		!strings.Contains(r.stderr, "not logged in to "+other.URL) {
		t.Fatalf("keys list against another wallet: %d %s (saw a token %d times)", r.code, r.out(), sawAuth.Load())
	}

	// health fails (status 1) when the wallet reports itself unhealthy.
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"status":"unhealthy","services":{"database":"disconnected","redis":"not configured"}}`)
	}))
	defer sick.Close()
	if r := c.run("", "health", "--url", sick.URL); r.code != 1 || !strings.Contains(r.stdout, "unhealthy (database disconnected") {
		t.Fatalf("health of an unhealthy wallet: %d %s", r.code, r.out())
	}

	// A config file others may read is refused, and nothing is sent.
	if err := os.Chmod(c.configFile(), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := c.run("", "keys", "list"); r.code != 1 || !strings.Contains(r.stderr, "mode 0644") || !strings.Contains(r.stderr, "chmod 600") {
		t.Fatalf("keys list with a 0644 config: %d %s", r.code, r.out())
	}
	if err := os.Chmod(c.configFile(), 0o600); err != nil {
		t.Fatal(err)
	}

	// Logout revokes the login at the wallet and forgets it here.
	if out := c.ok("", "logout"); !strings.Contains(out, "logged out of "+w.url) {
		t.Fatalf("logout: %q", out)
	}
	b, _ = os.ReadFile(c.configFile())
	if strings.Contains(string(b), cfg.Token) {
		t.Fatal("the token is still kept after logout")
	}
	req, _ := http.NewRequest("GET", w.url+"/auth/me", nil)
	req.Header.Set("Authorization", "Bearer "+cfg.Token)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the old login token after logout: %v %v", res.StatusCode, err)
	}
	if r := c.run("", "keys", "list"); r.code != 1 || !strings.Contains(r.stderr, "not logged in") {
		t.Fatalf("keys list after logout: %d %s", r.code, r.out())
	}

	// No secret was ever an argument, and none reached any output.
	for _, args := range c.argv {
		for _, s := range secrets {
			for _, a := range args {
				if strings.Contains(a, s) {
					t.Errorf("a secret was on the command line: %q", args)
				}
			}
		}
	}
	all := strings.Join(c.outs, "\n")
	for i, s := range append(secrets, cfg.Token) {
		if strings.Contains(w.Logs(), s) {
			t.Errorf("the wallet logged secret %d", i)
		}
		want := 0
		if s == appToken {
			want = 1 // tokens create shows it, once
		}
		if n := strings.Count(all, s); n != want {
			t.Errorf("secret %d is in the commands' output %d times, want %d", i, n, want)
		}
	}
}
