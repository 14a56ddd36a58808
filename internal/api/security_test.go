package api_test

// The port's HTTP security (issue 12): the headers a browser acts on, on
// every answer; plain HTTP held off the API in production; forwarded
// headers believed from trusted proxies only.

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// securityDefaults are the headers every answer carries unless its handler
// (or a proxied call's upstream) sets its own.
var securityDefaults = map[string]string{
	"X-Content-Type-Options":       "nosniff",
	"Referrer-Policy":              "no-referrer",
	"X-Frame-Options":              "DENY",
	"Content-Security-Policy":      "default-src 'none'; frame-ancestors 'none'",
	"Cross-Origin-Resource-Policy": "same-origin",
}

func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		// An upstream with its own policy, and one header it must not be
		// able to lift.
		w.Header().Set("X-Frame-Options", "SAMEORIGIN")
		w.Header().Set("Content-Security-Policy", "default-src 'self'")
		w.Header().Set("X-Content-Type-Options", "sniff-away")
		w.Header().Set("Strict-Transport-Security", "max-age=1; preload")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[]}`)
	})
	ts := proxySQLite(t, "OPENAI_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	pw.addKey("openai", "sk-proj-headersFAKEsecret00000000001", "paid", -1)
	_, tok := pw.token("openai")

	for _, tc := range []struct {
		name   string
		res    *response
		status int
		// override holds the values the answer's own side set.
		override map[string]string
	}{
		{name: "wallet answer", res: ts.do("GET", "/monitoring/health", "", nil), status: 200},
		{name: "problem", res: ts.do("GET", "/auth/me", "", nil), status: 401},
		{name: "wallet 404", res: ts.do("GET", "/keys/key_nothere", pw.acct.Token, nil), status: 404},
		{name: "404 at the root", res: ts.do("GET", "/no/such/thing", "", nil), status: 404},
		{name: "proxy refusal", res: ts.do("GET", "/proxy/openai/v1/models", "awk_not_a_token", nil), status: 401},
		{name: "proxied answer", res: pw.call("GET", "/proxy/openai/v1/models", tok, nil), status: 200,
			override: map[string]string{"X-Frame-Options": "SAMEORIGIN", "Content-Security-Policy": "default-src 'self'"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.res.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", tc.res.Status, tc.status, tc.res.Body)
			}
			for k, want := range securityDefaults {
				if v, ok := tc.override[k]; ok {
					want = v
				}
				if got := tc.res.Header.Values(k); len(got) != 1 || got[0] != want {
					t.Errorf("%s: %q, want %q alone", k, got, want)
				}
			}
			if tc.res.Header.Get("Permissions-Policy") == "" {
				t.Error("no Permissions-Policy")
			}
			// Outside production, and over plain HTTP, no HSTS: not the
			// wallet's, and not an upstream's for the wallet's host.
			if v := tc.res.Header.Get("Strict-Transport-Security"); v != "" {
				t.Errorf("Strict-Transport-Security %q over plain HTTP", v)
			}
		})
	}
}

// noRedirects is the test server's client, but showing redirects instead
// of following them.
func noRedirects(ts *testServer) *http.Client {
	return &http.Client{Transport: ts.Client().Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, url string, headers ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// TestProductionRequiresHTTPS: in production plain HTTP is redirected to
// HTTPS for pages and refused for the API, except the load balancer's
// probe and Prometheus's scrape; secure answers carry HSTS.
func TestProductionRequiresHTTPS(t *testing.T) {
	ts := proxySQLite(t, "APP_ENV=production")
	c := noRedirects(ts)

	for _, path := range []string{"/monitoring/health", "/metrics"} {
		if res := get(t, c, ts.URL+path); res.StatusCode != 200 || res.Header.Get("Strict-Transport-Security") != "" {
			t.Errorf("GET %s over plain HTTP: %d, HSTS %q; want 200 without HSTS", path, res.StatusCode, res.Header.Get("Strict-Transport-Security"))
		}
	}

	// API calls: refused with a problem, whatever the method.
	for _, tc := range []struct{ method, path, token string }{
		{"GET", "/auth/me", "x"},
		{"POST", "/auth/login", ""},
		{"GET", "/proxy/openai/v1/models", "awk_x"},
		{"POST", "/v1/charges", "awk_x"},
		{"GET", "/v1/charges", "awk_x"}, // at the root, with a credential: a proxied call
		{"DELETE", "/monitoring/health", ""},
	} {
		r := ts.do(tc.method, tc.path, tc.token, nil)
		r.want(t, http.StatusForbidden)
		if typ, _ := r.JSON()["type"].(string); !strings.HasSuffix(typ, "/https-required") {
			t.Errorf("%s %s: problem type %q", tc.method, tc.path, typ)
		}
		if r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s %s: refusal without nosniff", tc.method, tc.path)
		}
	}
	// A request carrying X-Api-Key is an API call too.
	if res := get(t, c, ts.URL+"/v1/messages", "X-Api-Key", "awk_x"); res.StatusCode != http.StatusForbidden {
		t.Errorf("GET with X-Api-Key: %d, want 403", res.StatusCode)
	}

	// Pages: sent to HTTPS, the port left out (the plain one is not the
	// TLS one), method kept.
	res := get(t, c, ts.URL+"/?tab=keys")
	if res.StatusCode != http.StatusPermanentRedirect || res.Header.Get("Location") != "https://127.0.0.1/?tab=keys" {
		t.Errorf("GET /: %d Location %q", res.StatusCode, res.Header.Get("Location"))
	}
	res = get(t, c, ts.URL+"/assets/app.js")
	if res.StatusCode != http.StatusPermanentRedirect || res.Header.Get("Location") != "https://127.0.0.1/assets/app.js" {
		t.Errorf("GET /assets/app.js: %d Location %q", res.StatusCode, res.Header.Get("Location"))
	}

	// X-Forwarded-Proto from a peer that is not a trusted proxy proves
	// nothing.
	if r := ts.do("GET", "/auth/me", "x", nil, "X-Forwarded-Proto", "https"); r.Status != http.StatusForbidden {
		t.Errorf("forged X-Forwarded-Proto believed: %d", r.Status)
	}
}

// TestProductionBehindTrustedProxy: a TLS-terminating proxy in
// TRUSTED_PROXIES that says the client used HTTPS is believed; the answer
// is served and carries HSTS.
func TestProductionBehindTrustedProxy(t *testing.T) {
	ts := proxySQLite(t, "APP_ENV=production", "TRUSTED_PROXIES=10.0.0.0/8,127.0.0.1", "GATEWAY_URL=https://wallet.example.com")
	r := ts.do("GET", "/auth/me", "x", nil, "X-Forwarded-Proto", "https")
	r.want(t, http.StatusUnauthorized)
	if got := r.Header.Get("Strict-Transport-Security"); got != "max-age=63072000; includeSubDomains" {
		t.Errorf("HSTS %q", got)
	}
	// The proxy said http: a page goes to the public HTTPS URL.
	res := get(t, noRedirects(ts), ts.URL+"/settings?x=1", "X-Forwarded-Proto", "http")
	if res.StatusCode != http.StatusPermanentRedirect || res.Header.Get("Location") != "https://wallet.example.com/settings?x=1" {
		t.Errorf("page over plain HTTP: %d Location %q", res.StatusCode, res.Header.Get("Location"))
	}
}

// TestTrustedProxies: X-Forwarded-For names the client only when the
// peer is a trusted proxy, and then it is walked from the right: entries a
// client wrote itself, left of the first untrusted hop, are not believed.
func TestTrustedProxies(t *testing.T) {
	cases := []struct {
		name    string
		trusted string
		xff     string
		want    string
	}{
		{"no trusted proxies", "", "203.0.113.9", "127.0.0.1"},
		{"peer not trusted", "10.0.0.0/8", "203.0.113.9", "127.0.0.1"},
		{"trusted peer", "127.0.0.1", "203.0.113.9", "203.0.113.9"},
		{"forged entries left of the client", "127.0.0.0/8", "1.1.1.1, 203.0.113.9", "203.0.113.9"},
		{"chain of trusted proxies", "127.0.0.1,10.0.0.0/8", "1.1.1.1, 203.0.113.9, 10.1.2.3, 10.9.9.9", "203.0.113.9"},
		{"hop with a port", "127.0.0.1", "203.0.113.9:4711", "203.0.113.9"},
		{"IPv6 hop", "127.0.0.1", "[2001:db8::7]:443", "2001:db8::7"},
		{"garbage stops the walk", "127.0.0.1,10.0.0.0/8", "203.0.113.9, nonsense, 10.1.2.3", "10.1.2.3"},
		{"all trusted", "127.0.0.1,10.0.0.0/8", "10.1.2.3", "10.1.2.3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var env []string
			if tc.trusted != "" {
				env = append(env, "TRUSTED_PROXIES="+tc.trusted)
			}
			ts := proxySQLite(t, env...)
			r := ts.do("GET", "/monitoring/health", "", nil, "X-Forwarded-For", tc.xff)
			if got := loggedClientIP(t, ts, r.Header.Get("X-Request-Id")); got != tc.want {
				t.Errorf("client IP %q, want %q", got, tc.want)
			}
		})
	}
}

// loggedClientIP is the client_ip of the request line logged for id.
func loggedClientIP(t *testing.T, ts *testServer, id string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(ts.logs.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Msg       string `json:"msg"`
			RequestID string `json:"request_id"`
			ClientIP  string `json:"client_ip"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "request" && line.RequestID == id {
			return line.ClientIP
		}
	}
	t.Fatalf("no request line logged for %s", id)
	return ""
}
