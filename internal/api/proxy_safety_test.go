package api_test

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// rawRequest writes one request over a fresh connection exactly as given
// (no client-side path cleaning or escaping) and reads the answer.
func rawRequest(t *testing.T, ts *testServer, method, target string, headers ...string) *response {
	t.Helper()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", method, target)
	host := ts.Listener.Addr().String()
	for i := 0; i+1 < len(headers); i += 2 {
		if strings.EqualFold(headers[i], "Host") {
			host = headers[i+1]
			continue
		}
		fmt.Fprintf(&b, "%s: %s\r\n", headers[i], headers[i+1])
	}
	fmt.Fprintf(&b, "Host: %s\r\nConnection: close\r\n\r\n", host)
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %q: %v", method, target, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return &response{Status: res.StatusCode, Header: res.Header, Body: body}
}

// TestProxySSRFTable sends hostile paths, endpoints and headers: each is
// refused and the upstream sees none of them.
func TestProxySSRFTable(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	ts := proxySQLite(t, "STRIPE_BASE_URL="+up.URL+"/base", "OPENAI_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	pw.addKey("stripe", "sk_test_ssrfTABLEfake00000000000000s", "paid", -1)
	_, tok := pw.token("stripe")
	bearer := "Bearer " + tok

	// Raw request targets, as an attacker would write them on the wire.
	paths := []struct {
		target string
		status int // 0: any 4xx
	}{
		{"/proxy/stripe/../admin", 400},
		{"/proxy/stripe/v1/../../admin", 400},
		{"/proxy/stripe/v1/./charges", 400},
		{"/proxy/stripe/v1/%2e%2e/x", 400},
		{"/proxy/stripe/v1/%2E%2E/%2e%2E/x", 400},
		{"/proxy/stripe/v1/.%2e/x", 400},
		{"/proxy/stripe/v1%2F..%2F..%2Fadmin", 400},
		{"/proxy/stripe/v1%2fcharges", 400},
		{"/proxy/stripe/v1/%5c..%5cadmin", 400},
		{"/proxy/stripe/v1/%5C%5Cevil.com", 400},
		{`/proxy/stripe/v1\..\admin`, 400},
		{"/proxy/stripe//evil.com/x", 400},
		{"/proxy/stripe/v1//evil.com", 400},
		{"/proxy/stripe/v1/x%00", 400},
		{"/proxy/stripe/v1/x%00.json", 400},
		{"/proxy/stripe/v1/x%0d%0aHost:%20evil.com", 400},
		{"/proxy/stripe/v1/x%0aSet-Cookie:%20a=b", 400},
		{"/proxy/stripe/v1/x%09", 400},
		{"/proxy/stripe/v1/%252e%252e/x", 400},
		{"/proxy/evil.com/x", 404},
		{"/proxy/stripe@evil.com/v1/x", 404},
		{"/proxy/stripe:443@evil.com/v1/x", 404},
		{"/proxy/%2e%2e/admin", 404},
		{"/proxy/169.254.169.254/latest/meta-data", 404},
		// At the root (stripe-go style): the token names stripe.
		{"/v1/%2e%2e/admin", 400},
		{"/v1%2f..%2fadmin", 400},
		{"/v1/%5c%5cevil.com", 400},
		{"/v1/x%0d%0aHost:%20evil.com", 400},
		{"/v1/x%00", 400},
		// A root path is checked as sent, like /proxy/…: no cleaning, no
		// redirect (that could be an open one: "//evil.com/..." is
		// another host to a browser).
		{"/v1/../admin", 400},
		{"//evil.com/x", 400},
		{"//evil.com/v1/charges", 400},
		{"/auth/../v1/charges", 0},
	}
	// status 0: a wallet path; the router's own path cleaning answers
	// with a redirect to the cleaned path on the wallet itself.
	for _, tc := range paths {
		r := rawRequest(t, ts, "GET", tc.target, "Authorization", bearer)
		pw.assertNoSecretIn(tc.target, r)
		switch {
		case tc.status != 0 && r.Status != tc.status:
			t.Errorf("GET %s: status %d, want %d; body %s", tc.target, r.Status, tc.status, r.Body)
		case tc.status == 0 && (r.Status < 300 || r.Status > 399):
			t.Errorf("GET %s: status %d, want a redirect to the cleaned path; body %s", tc.target, r.Status, r.Body)
		case tc.status == 0:
			loc := r.Header.Get("Location")
			if !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") {
				t.Errorf("GET %s: redirect to %q", tc.target, loc)
			}
		}
		if r.Status >= 400 && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") &&
			r.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", tc.target, r.Header.Get("Content-Type"))
		}
	}

	// The seed's POST /proxy endpoints.
	endpoints := []string{
		"http://evil.com/x",
		"https://evil.com/v1/charges",
		"//evil.com/x",
		"///evil.com/x",
		"/v1/../../x",
		"/v1/..",
		"/./v1/charges",
		"https://169.254.169.254/latest/meta-data/",
		"http://127.0.0.1:6789/admin/users",
		"/v1/%2e%2e/",
		"/v1/%2E%2E%2Fadmin",
		"/v1%2fcharges",
		"/v1/%5c%5cevil.com",
		"/v1\r\nHost: evil",
		"/v1/charges HTTP/1.1\r\nHost: evil.com\r\n\r\nGET /x",
		"/v1/x%0d%0aX-Injected:%201",
		"/v1/x%00",
		"@evil.com/x",
		"evil.com/x",
		"v1/charges",
		`\\evil.com\x`,
		`/v1\..\admin`,
		"/v1/charges#fragment",
		"file:///etc/passwd",
		"gopher://127.0.0.1:6379/_INFO",
		" /v1/charges",
		"",
	}
	for _, ep := range endpoints {
		r := pw.call("POST", "/proxy", tok, map[string]any{"service": "stripe", "endpoint": ep, "method": "GET"})
		r.want(t, http.StatusBadRequest)
		if !strings.Contains(string(r.Body), `"endpoint"`) {
			t.Errorf("endpoint %q: the problem does not name the field: %s", ep, r.Body)
		}
	}
	// Hostile methods and headers in the seed's body.
	for _, body := range []map[string]any{
		{"service": "stripe", "endpoint": "/v1/charges", "method": "CONNECT"},
		{"service": "stripe", "endpoint": "/v1/charges", "method": "TRACE"},
		{"service": "stripe", "endpoint": "/v1/charges", "method": "GET\r\nX: y"},
		{"service": "stripe", "endpoint": "/v1/charges", "headers": map[string]string{"X-Evil\r\nHost": "evil.com"}},
		{"service": "stripe", "endpoint": "/v1/charges", "headers": map[string]string{"X-Ok": "a\r\nHost: evil.com"}},
		{"service": "stripe", "endpoint": "/v1/charges", "headers": map[string]string{"Bad Name": "x"}},
		{"service": "evil.com", "endpoint": "/v1/charges"},
		{"service": "../admin", "endpoint": "/v1/charges"},
	} {
		r := pw.call("POST", "/proxy", tok, body)
		r.want(t, http.StatusBadRequest)
	}
	if reqs := up.requests(); len(reqs) != 0 {
		for _, r := range reqs {
			t.Errorf("the upstream received %s %s", r.Method, r.RequestURI)
		}
	}

	// A well-formed call still works, below the base path.
	r := pw.call("POST", "/proxy", tok, map[string]any{"service": "stripe", "endpoint": "/v1/charges?limit=3", "method": "GET"}).want(t, 200)
	if reqs := up.requests(); len(reqs) != 1 || reqs[0].RequestURI != "/base/v1/charges?limit=3" {
		t.Fatalf("upstream requests = %+v", reqs)
	}
	_ = r
}

// TestProxyHeaderSmuggling checks what crosses the proxy in each
// direction: the client's Host never changes the upstream host; the
// client's credentials, hop-by-hop and wallet headers are not forwarded;
// upstream cookies are dropped; an echo of the injected key is masked.
func TestProxyHeaderSmuggling(t *testing.T) {
	const secret = "sk_test_smuggleFAKEsecret0000000000x"
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Add("Set-Cookie", "session=upstream; Path=/")
		h.Add("Set-Cookie2", "old=1")
		h.Set("X-Echo-Authorization", r.Header.Get("Authorization"))
		h.Set("Connection", "X-Upstream-Hop")
		h.Set("X-Upstream-Hop", "hop")
		h.Set("Proxy-Authenticate", "Basic")
		h.Set("X-Upstream-Custom", "kept")
		if r.URL.Path == "/v1/denied" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: %s (from header %s)"}}`,
				strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), r.Header.Get("Authorization"))
			return
		}
		_, _ = io.WriteString(w, `{"object":"balance"}`)
	})
	ts := proxySQLite(t, "STRIPE_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	pw.addKey("stripe", secret, "paid", -1)
	_, tok := pw.token("stripe")
	upHost := strings.TrimPrefix(up.URL, "http://")

	hostile := []string{
		"Authorization", "Bearer " + tok,
		"Host", "evil.com",
		"X-Forwarded-For", "10.0.0.1",
		"X-Forwarded-Host", "evil.com",
		"X-Forwarded-Proto", "https",
		"Forwarded", "for=10.0.0.1;host=evil.com",
		"X-Real-Ip", "10.0.0.1",
		"Cookie", "wallet_session=secret",
		"X-Api-Key", "client-api-key",
		"Proxy-Authorization", "Basic Zm9vOmJhcg==",
		"Proxy-Connection", "keep-alive",
		"Keep-Alive", "timeout=5",
		"Te", "trailers",
		"Upgrade", "websocket",
		"X-Hop-Secret", "named-in-connection",
		"Connection", "X-Hop-Secret",
		"X-Workspace-Id", "ws_other",
		"X-Wallet-Debug", "1",
		"X-Client-Custom", "forwarded",
	}
	check := func(where string, r seenRequest) {
		t.Helper()
		if r.Host != upHost {
			t.Errorf("%s: upstream Host = %q, want %q", where, r.Host, upHost)
		}
		if r.auth() != "Bearer "+secret {
			t.Errorf("%s: upstream Authorization = %q", where, r.auth())
		}
		for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "X-Real-Ip",
			"Cookie", "X-Api-Key", "Proxy-Authorization", "Proxy-Connection", "Keep-Alive", "Te", "Upgrade",
			"X-Hop-Secret", "X-Workspace-Id", "X-Wallet-Debug"} {
			if v := r.Header.Get(h); v != "" {
				t.Errorf("%s: header %s: %q reached the upstream", where, h, v)
			}
		}
		if r.Header.Get("X-Client-Custom") != "forwarded" {
			t.Errorf("%s: an ordinary header was not forwarded", where)
		}
		assertNoWalletCredential(t, r, tok)
	}
	checkResponse := func(where string, r *response) {
		t.Helper()
		pw.assertNoSecretIn(where, r)
		for _, h := range []string{"Set-Cookie", "Set-Cookie2", "X-Upstream-Hop", "Proxy-Authenticate"} {
			if v := r.Header.Get(h); v != "" {
				t.Errorf("%s: upstream header %s: %q reached the client", where, h, v)
			}
		}
		if r.Header.Get("X-Upstream-Custom") != "kept" {
			t.Errorf("%s: an ordinary upstream header was dropped", where)
		}
		if got := r.Header.Get("X-Echo-Authorization"); got != "Bearer …"+secret[len(secret)-4:] {
			t.Errorf("%s: echoed key header = %q, want it masked", where, got)
		}
	}

	// Transparent route, raw on the wire so that Host is what we say.
	r := rawRequest(t, ts, "GET", "/proxy/stripe/v1/balance", hostile...)
	if r.Status != 200 {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	checkResponse("transparent", r)
	// Root route (stripe-go style).
	r = rawRequest(t, ts, "GET", "/v1/balance", hostile...)
	if r.Status != 200 {
		t.Fatalf("root: status %d: %s", r.Status, r.Body)
	}
	checkResponse("root", r)
	// Absolute-form request target naming another host.
	r = rawRequest(t, ts, "GET", "http://evil.com/proxy/stripe/v1/balance", hostile...)
	if r.Status != 200 {
		t.Fatalf("absolute form: status %d: %s", r.Status, r.Body)
	}
	checkResponse("absolute form", r)
	// The seed's POST /proxy with hostile headers in its body.
	hb := map[string]string{}
	for i := 2; i+1 < len(hostile); i += 2 {
		hb[hostile[i]] = hostile[i+1]
	}
	r = pw.call("POST", "/proxy", tok, map[string]any{"service": "stripe", "endpoint": "/v1/balance", "method": "GET", "headers": hb})
	r.want(t, 200)
	checkResponse("POST /proxy", r)

	reqs := up.requests()
	if len(reqs) != 4 {
		t.Fatalf("upstream saw %d requests, want 4", len(reqs))
	}
	for i, where := range []string{"transparent", "root", "absolute form", "POST /proxy"} {
		check(where, reqs[i])
	}

	// An upstream 401 that echoes the key in its message and a header.
	r = rawRequest(t, ts, "GET", "/proxy/stripe/v1/denied", "Authorization", "Bearer "+tok)
	if r.Status != 401 {
		t.Fatalf("status %d", r.Status)
	}
	pw.assertNoSecretIn("upstream 401", r)
	var e struct {
		Error struct{ Message string } `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &e); err != nil || !strings.Contains(e.Error.Message, "Invalid API Key provided: …") {
		t.Errorf("401 body = %s (%v), want the upstream's message with the key masked", r.Body, err)
	}
}

// TestProxySecretsNeverShown looks for stored secrets in every proxy
// response and log line over a mix of calls, in the query-parameter
// flavour too (where a careless proxy would log the URL).
func TestProxySecretsNeverShown(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("appid") == "" {
			w.WriteHeader(http.StatusUnauthorized)
		} else if r.URL.Path == "/data/2.5/fail" {
			// An upstream error that echoes the whole request URL.
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"cod":400,"message":"bad request %s"}`, r.URL.String())
			return
		}
		fmt.Fprintf(w, `{"cod":200,"name":"Paris","q":%q}`, r.URL.Query().Get("q"))
	})
	ts := proxySQLite(t, "OPENWEATHER_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	const secret = "owFAKEsecret0123456789abcdef0123"
	pw.addKey("openweather", secret, "free", -1)
	_, tok := pw.token("openweather")

	// The wallet token in the service's own query parameter, as an SDK
	// that puts its key there would send it.
	r := pw.call("GET", "/proxy/openweather/data/2.5/weather?q=Paris&appid="+url.QueryEscape(tok), "", nil).want(t, 200)
	if !strings.Contains(string(r.Body), `"Paris"`) {
		t.Fatalf("body %s", r.Body)
	}
	r = pw.call("GET", "/proxy/openweather/data/2.5/fail?appid="+url.QueryEscape(tok), "", nil)
	if r.Status != 400 || !strings.Contains(string(r.Body), "bad request") {
		t.Fatalf("status %d body %s", r.Status, r.Body)
	}
	for _, s := range up.requests() {
		assertNoWalletCredential(t, s, tok)
		if got := strings.Count(s.RawQuery, "appid="); got != 1 || !strings.Contains(s.RawQuery, "appid="+secret) {
			t.Errorf("upstream query %q, want exactly the stored key as appid", s.RawQuery)
		}
	}
	pw.waitUsage(2)
	pw.assertNoLeakInLogs()
}

// TestProxyMaskEncodedAndLargeErrors: an upstream error body that echoes
// the key is masked however it arrives: chunked, compressed (the client's
// transport asks for gzip by itself), or larger than the wallet reads
// whole.
func TestProxyMaskEncodedAndLargeErrors(t *testing.T) {
	const secret = "sk_test_maskENCODEDfake0000000000m"
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		msg := `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: ` +
			strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") + `"}}`
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/chunked":
			w.WriteHeader(http.StatusUnauthorized)
			half := len(msg) - 20
			_, _ = io.WriteString(w, msg[:half])
			http.NewResponseController(w).Flush()
			_, _ = io.WriteString(w, msg[half:])
		case "/v1/gzip":
			if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				t.Errorf("client did not ask for gzip: %q", r.Header.Get("Accept-Encoding"))
			}
			w.Header().Set("Content-Encoding", "gzip")
			w.WriteHeader(http.StatusBadRequest)
			zw := gzip.NewWriter(w)
			_, _ = io.WriteString(zw, msg)
			_ = zw.Close()
		case "/v1/large":
			w.WriteHeader(http.StatusBadRequest)
			pad := strings.Repeat("x", 300<<10)
			_, _ = io.WriteString(w, `{"error":{"message":"`+pad+` key `+secret+` and across a read boundary `+
				strings.Repeat("y", 32<<10-7)+secret+`"}}`)
		}
	})
	ts := proxySQLite(t, "STRIPE_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	pw.addKey("stripe", secret, "paid", -1)
	_, tok := pw.token("stripe")
	// Codings the wallet could not read to mask an error body are not
	// asked of the upstream.
	for accept, want := range map[string]string{
		"br":                            "",
		"gzip, deflate, br, zstd":       "gzip",
		"br;q=1.0, gzip;q=0.8, *;q=0.1": "gzip;q=0.8",
		"identity":                      "identity",
	} {
		r := rawRequest(t, ts, "GET", "/proxy/stripe/v1/ok", "Authorization", "Bearer "+tok, "Accept-Encoding", accept)
		if r.Status != 200 {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
		reqs := up.requests()
		if got := reqs[len(reqs)-1].Header.Get("Accept-Encoding"); got != want {
			t.Errorf("client Accept-Encoding %q: upstream got %q, want %q", accept, got, want)
		}
	}
	// 401 quarantines the key: that one goes last.
	for _, path := range []string{"/v1/gzip", "/v1/large", "/v1/chunked"} {
		// ts.Client() is an ordinary Go client: its transport adds
		// Accept-Encoding: gzip and decompresses the answer.
		r := pw.call("GET", "/proxy/stripe"+path, tok, nil)
		if r.Status != 401 && r.Status != 400 {
			t.Fatalf("%s: status %d", path, r.Status)
		}
		if !strings.Contains(string(r.Body), "…"+secret[len(secret)-4:]) {
			t.Errorf("%s: body does not show the masked key: %.200s", path, r.Body)
		}
	}
}
