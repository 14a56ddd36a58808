package api_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Swapping two workspaces' ciphertext columns in the database makes both
// keys fail to decrypt with an error naming the key, and the proxy refuses
// to use them: it never sends a wrong or empty secret upstream.
func TestProxyRefusesSwappedCiphertext(t *testing.T) {
	const secretA, secretB = "sk_test_workspaceAsecret00000001", "sk_test_workspaceBsecret00000002"
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"id":"ch_1"}`)
	})
	ts := proxySQLite(t, "STRIPE_BASE_URL="+up.URL)
	a, b := newProxyWorld(t, ts), newProxyWorld(t, ts)
	keyA := a.addKey("stripe", secretA, "paid", -1)
	keyB := b.addKey("stripe", secretB, "paid", -1)
	_, tokA := a.token("stripe")
	_, tokB := b.token("stripe")

	db := ts.db.SQL()
	var sealedA, sealedB []byte
	if err := db.QueryRow(`SELECT sealed FROM api_keys WHERE id = $1`, keyA).Scan(&sealedA); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT sealed FROM api_keys WHERE id = $1`, keyB).Scan(&sealedB); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE api_keys SET sealed = $1 WHERE id = $2`, sealedB, keyA); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE api_keys SET sealed = $1 WHERE id = $2`, sealedA, keyB); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		w        *proxyWorld
		tok, key string
	}{{a, tokA, keyA}, {b, tokB, keyB}} {
		_, err := ts.keys.Reveal(t.Context(), c.w.acct.WorkspaceID, c.key)
		if err == nil || !strings.Contains(err.Error(), c.key) {
			t.Fatalf("Reveal of a swapped ciphertext: %v; want an error naming %s", err, c.key)
		}
		for range 2 {
			r := c.w.call("POST", "/proxy/stripe/v1/charges", c.tok, map[string]any{"amount": 100})
			if r.Status != http.StatusBadGateway && r.Status != http.StatusServiceUnavailable {
				t.Fatalf("proxy with an undecryptable key: %d %s", r.Status, r.Body)
			}
			if !strings.Contains(string(r.Body), c.key) {
				t.Fatalf("refusal does not name the key: %s", r.Body)
			}
		}
	}
	if n := len(up.requests()); n != 0 {
		t.Fatalf("the upstream received %d requests with undecryptable keys", n)
	}
	// The call that found the key undecryptable is recorded, but it reached
	// no upstream: its quota was refunded, and it is not billed.
	rows := a.waitUsage(1)
	if len(rows) != 1 || !rows[0].Unreached || !rows[0].Failed || rows[0].Premium {
		t.Fatalf("usage records: %+v; want one failed, unreached, not premium", rows)
	}
	plan := ts.do("GET", "/billing/plan", a.acct.Token, nil).want(t, 200).JSON()
	if used := plan["usedCalls"].(float64); used != 0 {
		t.Fatalf("usedCalls %v; a call that reached no upstream is not billed", used)
	}
	// The failure is logged naming the key, never with a secret.
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(ts.logs.String(), fmt.Sprintf(`"key_id":"%s"`, keyA)) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(ts.logs.String(), fmt.Sprintf(`"key_id":"%s"`, keyA)) {
		t.Fatal("no log line names the undecryptable key")
	}
}
