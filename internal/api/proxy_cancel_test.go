package api_test

import (
	"context"
	"github.com/apikeywallet/apiwallet"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// A client that gives up mid-call says nothing about the key: the next
// call uses it at once. (Blaming the key put a workspace's only key in
// cooldown whenever a load generator closed its connections.)
func TestProxyClientCancelDoesNotBlameKey(t *testing.T) {
	var calls atomic.Int64
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		_, _ = io.WriteString(w, `{"id":"ch_1"}`)
	})
	ts := proxySQLite(t, "STRIPE_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	key := pw.addKey("stripe", "sk_test_cancelled0000000000001", "paid", -1)
	_, tok := pw.token("stripe")

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/proxy/stripe/v1/charges", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if res, err := ts.Client().Do(req); err == nil {
		res.Body.Close()
		t.Fatalf("the slow call answered %d; want the client to give up", res.StatusCode)
	}
	time.Sleep(100 * time.Millisecond) // the wallet notices the client is gone

	r := pw.call("GET", "/proxy/stripe/v1/charges", tok, nil).want(t, 200)
	if r.Header.Get("X-Wallet-Key-Id") != key || r.Header.Get("X-Wallet-Attempts") != "1" {
		t.Fatalf("after a cancelled call: key %s attempts %s", r.Header.Get("X-Wallet-Key-Id"), r.Header.Get("X-Wallet-Attempts"))
	}
}

// With premium routing off, a call goes to the first usable key in
// priority order, one attempt: no cost strategy and no fallback to another
// key, and the usage record is not premium.
func TestProxyWithoutPremiumRouting(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer sk_test_first000000000000000001" {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		_, _ = io.WriteString(w, `{"id":"ch_1"}`)
	})
	ts := proxySQLite(t, "STRIPE_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	// The paid first key is the priority choice; cost would pick the free
	// one. (Equal priorities would leave the order to the key ids, and two
	// ids made in the same millisecond are in random order.)
	first := pw.addKey("stripe", "sk_test_first000000000000000001", "paid", -1)
	second := pw.addKey("stripe", "sk_test_second00000000000000002", "free", 1000)
	ts.do("PATCH", "/keys/"+second, pw.acct.Token, map[string]any{"priority": 1}).want(t, 200)
	_, tok := pw.token("stripe")
	ts.do("PATCH", "/billing/settings", pw.acct.Token, map[string]any{"premiumRouting": false}).want(t, 200)

	r := pw.call("GET", "/proxy/stripe/v1/charges", tok, nil, "X-Wallet-Strategy", "cost")
	if r.Status != http.StatusTooManyRequests || r.Header.Get("X-Wallet-Key-Id") != first ||
		r.Header.Get("X-Wallet-Attempts") != "1" || r.Header.Get("X-Wallet-Strategy") != "priority" {
		t.Fatalf("without premium routing: %d key %s attempts %s strategy %s", r.Status,
			r.Header.Get("X-Wallet-Key-Id"), r.Header.Get("X-Wallet-Attempts"), r.Header.Get("X-Wallet-Strategy"))
	}
	rows := pw.waitUsage(1)
	if rows[0].Premium {
		t.Fatalf("usage record marked premium: %+v", rows[0])
	}
}

// The workspace's rate limit is its plan's: an admin who gives the Free
// plan 2 calls a minute makes the third call a 429 naming that limit.
func TestProxyRateLimitFollowsPlan(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"id":"ch_1"}`)
	})
	ts := proxySQLite(t, "STRIPE_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	pw.addKey("stripe", "sk_test_planrate00000000000001", "paid", -1)
	_, tok := pw.token("stripe")
	admin := ts.register("root@example.com")
	role := apiwallet.RoleAdmin
	if _, err := ts.db.UpdateUser(t.Context(), admin.ID, apiwallet.UserUpdate{Role: &role}, nil); err != nil {
		t.Fatal(err)
	}
	admin.Token = ts.do("POST", "/auth/login", "", map[string]string{"email": admin.Email,
		"password": "correct horse battery"}).want(t, 200).JSON()["token"].(string)
	ts.do("PUT", "/admin/plans/free", admin.Token, map[string]any{"ratePerMinute": 2}).want(t, 200)

	for i := range 2 {
		r := pw.call("GET", "/proxy/stripe/v1/charges", tok, nil).want(t, 200)
		if r.Header.Get("RateLimit-Limit") != "2" {
			t.Fatalf("call %d: RateLimit-Limit %q, want the plan's 2", i, r.Header.Get("RateLimit-Limit"))
		}
	}
	r := pw.call("GET", "/proxy/stripe/v1/charges", tok, nil).want(t, http.StatusTooManyRequests)
	if r.Header.Get("X-Wallet-Limit") != "workspace-rate" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("third call: limit %q retry %q", r.Header.Get("X-Wallet-Limit"), r.Header.Get("Retry-After"))
	}
}
