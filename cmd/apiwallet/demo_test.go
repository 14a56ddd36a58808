package main_test

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// seed --demo on SQLite fills a workspace that GET /usage shows as a
// month of calls across services and keys, with savings.
func TestSeedDemo(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(bin, "seed", "--demo")
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("seed --demo: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`log in with: (\S+)\npassword: (\S+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("seed --demo did not print the login:\n%s", out)
	}
	w := startWallet(t, dir)
	w.waitHealth(t, 10*time.Second, "healthy")

	c := http.Client{Timeout: 10 * time.Second}
	login, err := c.Post(w.url+"/auth/login", "application/json",
		strings.NewReader(`{"email":"`+m[1]+`","password":"`+m[2]+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Token string }
	_ = json.NewDecoder(login.Body).Decode(&tok)
	login.Body.Close()
	if tok.Token == "" {
		t.Fatalf("login failed: %d", login.StatusCode)
	}
	get := func(path string, v any) {
		t.Helper()
		req, _ := http.NewRequest("GET", w.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, res.StatusCode)
		}
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	from := time.Now().UTC().Add(-30 * 24 * time.Hour).Format(time.RFC3339)
	var days struct {
		Totals struct {
			Calls, SavingsMicros, CostMicros int64
			Errors                           struct{ Client, Server, Network, Refused int64 }
		}
		Rows []struct{ Calls int64 }
	}
	get("/usage?group_by=day&from="+from, &days)
	busy := 0
	for _, r := range days.Rows {
		if r.Calls > 0 {
			busy++
		}
	}
	if busy < 29 || days.Totals.Calls < 50_000 || days.Totals.SavingsMicros <= 0 || days.Totals.CostMicros <= 0 {
		t.Errorf("demo usage: %d days with calls of %d, totals %+v", busy, len(days.Rows), days.Totals)
	}
	if e := days.Totals.Errors; e.Client == 0 || e.Server == 0 || e.Network == 0 || e.Refused == 0 {
		t.Errorf("demo usage has no errors of some class: %+v", e)
	}
	var services struct{ Rows []struct{ Group string } }
	get("/usage?group_by=service&from="+from, &services)
	if len(services.Rows) < 4 {
		t.Errorf("demo usage covers %d services", len(services.Rows))
	}
	var health struct {
		Keys []struct {
			Status     string
			Calls      int64
			LastUsedAt string
		}
	}
	get("/usage/keys", &health)
	quarantined := 0
	for _, k := range health.Keys {
		if k.Status == "quarantined" {
			quarantined++
		}
		// A key that served calls shows when it last did.
		if k.Calls > 0 && k.LastUsedAt == "" {
			t.Errorf("a key with %d calls was never used: %+v", k.Calls, k)
		}
	}
	if len(health.Keys) < 6 || quarantined != 1 {
		t.Errorf("demo keys: %+v", health.Keys)
	}
}
