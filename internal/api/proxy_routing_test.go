package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// keyEcho is an upstream that answers 200 with the Authorization it got.
func keyEcho(t *testing.T) *fakeUpstream {
	return newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
	})
}

// TestProxyRootServiceSelection: at the root the service comes from a
// "<service>." host prefix or the token's single service; anything else
// is a 400 naming the three ways, and wallet paths are never proxied.
func TestProxyRootServiceSelection(t *testing.T) {
	stripeUp, openaiUp := keyEcho(t), keyEcho(t)
	ts := proxySQLite(t, "STRIPE_BASE_URL="+stripeUp.URL, "OPENAI_BASE_URL="+openaiUp.URL)
	pw := newProxyWorld(t, ts)
	pw.addKey("stripe", "sk_test_rootSELECTfake000000000000s", "paid", -1)
	pw.addKey("openai", "sk-proj-rootSELECTfake00000000000000o", "paid", -1)
	_, stripeTok := pw.token("stripe")
	_, bothTok := pw.token("stripe", "openai")
	host := ts.Listener.Addr().String()

	// The token names the service.
	r := rawRequest(t, ts, "GET", "/v1/balance", "Authorization", "Bearer "+stripeTok)
	if r.Status != 200 || stripeUp.count("") != 1 {
		t.Fatalf("stripe-only token at the root: %d %s", r.Status, r.Body)
	}
	// The host names it, for any credential.
	for _, cred := range []string{pw.acct.Token, bothTok} {
		r = rawRequest(t, ts, "GET", "/v1/models", "Authorization", "Bearer "+cred, "Host", "openai."+host)
		if r.Status != 200 {
			t.Fatalf("openai.<host>: %d %s", r.Status, r.Body)
		}
	}
	if openaiUp.count("") != 2 {
		t.Fatalf("openai upstream saw %d requests, want 2", openaiUp.count(""))
	}
	// A host naming a service the token is not scoped to.
	r = rawRequest(t, ts, "GET", "/v1/models", "Authorization", "Bearer "+stripeTok, "Host", "openai."+host)
	if r.Status != 403 {
		t.Errorf("openai.<host> with a stripe token: %d %s", r.Status, r.Body)
	}
	// Ambiguous: 400 explaining the three ways, readable by stripe-go.
	for _, cred := range []string{pw.acct.Token, bothTok} {
		r = rawRequest(t, ts, "POST", "/v1/customers", "Authorization", "Bearer "+cred, "Content-Length", "0")
		if r.Status != 400 || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") {
			t.Fatalf("ambiguous root call: %d %s", r.Status, r.Body)
		}
		d := r.JSON()["detail"].(string)
		for _, way := range []string{"/proxy/{service}/", "scoped to one service", "<service>.<wallet host>"} {
			if !strings.Contains(d, way) {
				t.Errorf("detail %q does not explain %q", d, way)
			}
		}
		if em, _ := r.JSON()["error"].(map[string]any); em == nil || em["message"] != d {
			t.Errorf("no error member for SDKs: %s", r.Body)
		}
	}
	// Wallet paths are the wallet's, whatever the credential.
	for _, p := range []string{"/keys/nope/deeper", "/auth/nope", "/proxy", "/monitoring/nope"} {
		r = rawRequest(t, ts, "GET", p, "Authorization", "Bearer "+stripeTok)
		if r.Status != 404 && r.Status != 405 && r.Status != 401 && r.Status != 403 {
			t.Errorf("GET %s: %d %s", p, r.Status, r.Body)
		}
	}
	// No credential at the root: a plain 404.
	r = rawRequest(t, ts, "GET", "/v1/balance")
	if r.Status != 404 {
		t.Errorf("no credential: %d", r.Status)
	}
	if n := stripeUp.count(""); n != 1 {
		t.Errorf("stripe upstream saw %d requests, want 1", n)
	}
}

// TestProxyChangesTakeEffectAtOnce: the proxy caches credentials, key sets
// and secrets, but a revoked token, a disabled or deleted key or a
// rotated secret takes effect on the next call.
func TestProxyChangesTakeEffectAtOnce(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	ts := proxySQLite(t, "STRIPE_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	const s1, s2, s3 = "sk_test_cacheONEfake00000000000000001", "sk_test_cacheTWOfake00000000000000002",
		"sk_test_cacheROTATEDfake0000000000003"
	k1 := pw.addKey("stripe", s1, "free", -1)
	k2 := pw.addKey("stripe", s2, "paid", -1)
	tokID, tok := pw.token("stripe")
	get := func() *response { return pw.call("GET", "/proxy/stripe/v1/balance", tok, nil) }
	if r := get().want(t, 200); r.Header.Get("X-Wallet-Key-Id") != k1 {
		t.Fatalf("first call used %s", r.Header.Get("X-Wallet-Key-Id"))
	}
	// Disable k1: k2 serves.
	pw.ts.do("PATCH", "/keys/"+k1, pw.acct.Token, map[string]any{"enabled": false}).want(t, 200)
	if r := get().want(t, 200); r.Header.Get("X-Wallet-Key-Id") != k2 {
		t.Fatalf("after disabling k1: %s", r.Header.Get("X-Wallet-Key-Id"))
	}
	// Rotate k2's secret: the new one goes upstream.
	pw.secrets.add(s3)
	rr := pw.ts.do("POST", "/keys/"+k2+"/rotate", pw.acct.Token, map[string]any{"key": s3})
	if rr.Status != 200 && rr.Status != 201 {
		t.Fatalf("rotate: %d %s", rr.Status, rr.Body)
	}
	get().want(t, 200)
	reqs := up.requests()
	if got := reqs[len(reqs)-1].auth(); got != "Bearer "+s3 {
		t.Fatalf("after rotation the upstream got %q", got)
	}
	// Delete k2: no usable key.
	pw.ts.do("DELETE", "/keys/"+k2, pw.acct.Token, nil)
	get().want(t, http.StatusServiceUnavailable)
	// Revoke the (cached) token: 401 at once.
	pw.revoke(tokID)
	r := get().want(t, http.StatusUnauthorized)
	if !strings.Contains(string(r.Body), "revoked") {
		t.Errorf("body %s", r.Body)
	}
	if n := up.count(""); n != 3 {
		t.Errorf("upstream saw %d requests, want 3", n)
	}
}

// TestProxyWorkspaceIsolation: a caller never reaches another workspace's
// keys.
func TestProxyWorkspaceIsolation(t *testing.T) {
	up := keyEcho(t)
	ts := proxySQLite(t, "STRIPE_BASE_URL="+up.URL)
	owner := newProxyWorld(t, ts)
	owner.addKey("stripe", "sk_test_isolatedOWNERfake000000000001", "paid", -1)
	other := newProxyWorld(t, ts)
	_, tok := other.token("stripe")
	other.secrets = owner.secrets
	other.call("GET", "/proxy/stripe/v1/balance", tok, nil).want(t, http.StatusServiceUnavailable)
	other.call("GET", "/proxy/stripe/v1/balance", other.acct.Token, nil).want(t, http.StatusServiceUnavailable)
	// Naming the owner's workspace does not help a non-member.
	r := other.call("GET", "/proxy/stripe/v1/balance", other.acct.Token, nil, "X-Workspace-Id", owner.acct.WorkspaceID)
	if r.Status != 404 && r.Status != 403 {
		t.Errorf("X-Workspace-Id of another workspace: %d %s", r.Status, r.Body)
	}
	if n := up.count(""); n != 0 {
		t.Fatalf("upstream saw %d requests", n)
	}
}

// TestProxyRetryPolicy: a POST that got a 5xx is not sent again to another
// key unless the client sent an Idempotency-Key; a GET is.
func TestProxyRetryPolicy(t *testing.T) {
	const bad, good = "sk_test_retryBADfake000000000000000b", "sk_test_retryGOODfake00000000000000g"
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") == "Bearer "+bad {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"error":{"message":"boom"}}`)
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	ts := proxySQLite(t, "STRIPE_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	a := pw.addKey("stripe", bad, "free", -1)
	b := pw.addKey("stripe", good, "paid", -1)
	// Keys made in the same millisecond have ids in random order: the
	// priorities decide which one the priority strategy tries first.
	ts.do("PATCH", "/keys/"+a, pw.acct.Token, map[string]any{"priority": 1}).want(t, 200)
	ts.do("PATCH", "/keys/"+b, pw.acct.Token, map[string]any{"priority": 2}).want(t, 200)
	_, tok := pw.token("stripe")

	r := pw.call("POST", "/proxy/stripe/v1/charges", tok, "amount=100", "X-Wallet-Strategy", "priority")
	if r.Status != 500 || r.Header.Get("X-Wallet-Key-Id") != a || r.Header.Get("X-Wallet-Attempts") != "1" {
		t.Fatalf("POST without Idempotency-Key: %d key %s attempts %s", r.Status, r.Header.Get("X-Wallet-Key-Id"),
			r.Header.Get("X-Wallet-Attempts"))
	}
	if r.Header.Get("X-Wallet-Strategy") != "priority" {
		t.Errorf("X-Wallet-Strategy = %q", r.Header.Get("X-Wallet-Strategy"))
	}
	// a is cooling down now; wait it out by forgetting: use a fresh
	// world with the same upstream.
	ts2 := proxySQLite(t, "STRIPE_BASE_URL="+up.URL)
	pw2 := newProxyWorld(t, ts2)
	pw2.addKey("stripe", bad, "free", -1)
	b2 := pw2.addKey("stripe", good, "paid", -1)
	_, tok2 := pw2.token("stripe")
	r = pw2.call("POST", "/proxy/stripe/v1/charges", tok2, "amount=100", "Idempotency-Key", "idem-1")
	if r.Status != 200 || r.Header.Get("X-Wallet-Key-Id") != b2 || r.Header.Get("X-Wallet-Attempts") != "2" {
		t.Fatalf("POST with Idempotency-Key: %d key %s attempts %s", r.Status, r.Header.Get("X-Wallet-Key-Id"),
			r.Header.Get("X-Wallet-Attempts"))
	}
	for _, s := range up.requests() {
		if s.Method == "POST" && string(s.Body) != "amount=100" {
			t.Errorf("upstream got body %q", s.Body)
		}
	}
	// GET: retried without asking.
	_ = b
	ts3 := proxySQLite(t, "STRIPE_BASE_URL="+up.URL)
	pw3 := newProxyWorld(t, ts3)
	pw3.addKey("stripe", bad, "free", -1)
	b3 := pw3.addKey("stripe", good, "paid", -1)
	_, tok3 := pw3.token("stripe")
	r = pw3.call("GET", "/proxy/stripe/v1/charges", tok3, nil)
	if r.Status != 200 || r.Header.Get("X-Wallet-Key-Id") != b3 {
		t.Fatalf("GET: %d key %s", r.Status, r.Header.Get("X-Wallet-Key-Id"))
	}
	pw3.call("GET", "/proxy/stripe/v1/charges", tok3, nil, "X-Wallet-Strategy", "fastest").want(t, 400)
}

// TestProxyLearnsAllowance: a key whose upstream said it has no requests
// left is not chosen until the reset, before it would answer 429.
func TestProxyLearnsAllowance(t *testing.T) {
	const a, b = "sk-proj-allowanceAfake0000000000000a", "sk-proj-allowanceBfake0000000000000b"
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") == "Bearer "+a {
			w.Header().Set("X-Ratelimit-Remaining-Requests", "0")
			w.Header().Set("X-Ratelimit-Reset-Requests", "30s")
		}
		_, _ = io.WriteString(w, `{"object":"list","data":[]}`)
	})
	ts := proxySQLite(t, "OPENAI_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	ka := pw.addKey("openai", a, "free", -1)
	kb := pw.addKey("openai", b, "paid", -1)
	_, tok := pw.token("openai")
	for i, want := range []string{ka, kb, kb} {
		r := pw.call("GET", "/proxy/openai/v1/models", tok, nil).want(t, 200)
		if got := r.Header.Get("X-Wallet-Key-Id"); got != want {
			t.Fatalf("call %d used %s, want %s", i+1, got, want)
		}
	}
}

// TestProxyLargeBodies: a body larger than the retry buffer streams to the
// upstream intact; one larger than the limit is a 413 that the upstream
// never sees.
func TestProxyLargeBodies(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		sum := sha256.Sum256(mustRead(r.Body))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"sha256":%q}`, hex.EncodeToString(sum[:]))
	})
	ts := proxySQLite(t, "OPENAI_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	pw.addKey("openai", "sk-proj-largeBODYfake00000000000000l", "paid", -1)
	_, tok := pw.token("openai")
	big := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
	sum := sha256.Sum256(big)
	r := pw.call("POST", "/proxy/openai/v1/files", tok, big).want(t, 200)
	if r.JSON()["sha256"] != hex.EncodeToString(sum[:]) {
		t.Fatalf("upstream got a different body: %s", r.Body)
	}
	// Too large, said up front: refused before anything is sent.
	huge := bytes.Repeat([]byte("x"), 11<<20)
	pw.call("POST", "/proxy/openai/v1/files", tok, huge).want(t, http.StatusRequestEntityTooLarge)
	if n := up.count(""); n != 1 {
		t.Errorf("upstream saw %d requests, want 1", n)
	}
	// Too large, found out while streaming (chunked, no length): a 413
	// too, and the key is not blamed for it.
	req, _ := http.NewRequest("POST", ts.URL+"/proxy/openai/v1/files", io.MultiReader(bytes.NewReader(huge)))
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err == nil {
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked oversized body: status %d, want 413", res.StatusCode)
		}
	} // else the wallet closed the connection while the client was still sending: refused too
	r = pw.call("POST", "/proxy/openai/v1/files", tok, big).want(t, 200)
	if r.Header.Get("X-Wallet-Attempts") != "1" {
		t.Errorf("after an oversized body the key was put aside: attempts %s", r.Header.Get("X-Wallet-Attempts"))
	}
}

func mustRead(r io.Reader) []byte {
	b, _ := io.ReadAll(r)
	return b
}
