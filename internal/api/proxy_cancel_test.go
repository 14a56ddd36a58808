package api_test

import (
	"context"
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
