package api_test

// The dashboard's cookie session: what the cookie looks like, that the API
// takes it in place of a login token, that a change made with it needs the
// CSRF token and a same-origin request, that logging out revokes it, and
// that the proxy never takes it.

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apikeywallet/apiwallet/internal/auth"
	"github.com/apikeywallet/apiwallet/internal/web"
)

// browserLogin logs a registered user in through POST /auth/session and
// returns the Set-Cookie the wallet sent and the CSRF token.
func browserLogin(t *testing.T, ts *testServer, email string) (*http.Cookie, string) {
	t.Helper()
	r := ts.do("POST", "/auth/session", "", map[string]string{"email": email, "password": "correct horse battery"})
	r.want(t, http.StatusOK)
	res := http.Response{Header: r.Header}
	cookies := res.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("Set-Cookie = %q, want one cookie", r.Header.Values("Set-Cookie"))
	}
	m := r.JSON()
	if _, ok := m["token"]; ok || strings.Contains(string(r.Body), cookies[0].Value) {
		t.Fatalf("POST /auth/session body holds the session token: %s", r.Body)
	}
	csrf, _ := m["csrfToken"].(string)
	if csrf == "" {
		t.Fatalf("no csrfToken in %s", r.Body)
	}
	return cookies[0], csrf
}

func TestSessionCookieFlags(t *testing.T) {
	t.Run("development", func(t *testing.T) {
		ts := newTestServer(t, filepath.Join(t.TempDir(), "wallet.db"))
		ts.register("dev@example.com")
		c, _ := browserLogin(t, ts, "dev@example.com")
		if c.Name != auth.SessionCookie || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure ||
			c.Domain != "" || c.MaxAge <= 0 {
			t.Fatalf("cookie = %+v; want %s, HttpOnly, SameSite=Strict, Path=/, no Domain, not Secure over plain HTTP", c, auth.SessionCookie)
		}
	})
	t.Run("production", func(t *testing.T) {
		// Production serves HTTPS only, here behind a TLS-terminating proxy.
		ts := newTestServer(t, filepath.Join(t.TempDir(), "wallet.db"), "APP_ENV=production",
			"TRUSTED_PROXIES=127.0.0.1", "GATEWAY_URL=https://wallet.example.com")
		ts.do("POST", "/auth/register", "", map[string]string{"email": "prod@example.com", "password": "correct horse battery",
			"name": "Prod"}, "X-Forwarded-Proto", "https").want(t, http.StatusCreated)
		r := ts.do("POST", "/auth/session", "", map[string]string{"email": "prod@example.com", "password": "correct horse battery"},
			"X-Forwarded-Proto", "https").want(t, http.StatusOK)
		cookies := (&http.Response{Header: r.Header}).Cookies()
		if len(cookies) != 1 {
			t.Fatalf("Set-Cookie = %q", r.Header.Values("Set-Cookie"))
		}
		c := cookies[0]
		if c.Name != auth.SecureSessionCookie || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
			t.Fatalf("cookie = %+v; want %s, Secure, HttpOnly, SameSite=Strict, Path=/", c, auth.SecureSessionCookie)
		}
	})
}

func TestSessionCookieAuthenticatesAndNeedsCSRF(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		acct := ts.register("cookie@example.com")
		c, csrf := browserLogin(t, ts, acct.Email)
		cookie := c.Name + "=" + c.Value
		key := map[string]any{"key": "sk_test_cookie_1234567890", "service": "stripe", "tier": "paid"}

		if m := ts.do("GET", "/auth/session", "", nil, "Cookie", cookie).want(t, http.StatusOK).JSON(); m["csrfToken"] != csrf {
			t.Fatalf("GET /auth/session csrfToken = %v, want the one login returned", m["csrfToken"])
		}
		ts.do("GET", "/keys", "", nil, "Cookie", cookie).want(t, http.StatusOK)

		// Every refusal is a 403 problem and changes nothing.
		for name, h := range map[string][]string{
			"no CSRF header":    {"Cookie", cookie},
			"wrong CSRF header": {"Cookie", cookie, auth.CSRFHeader, csrf[:len(csrf)-2] + "xx"},
			"other session's":   {"Cookie", cookie, auth.CSRFHeader, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
			"cross-site Origin": {"Cookie", cookie, auth.CSRFHeader, csrf, "Origin", "https://evil.example"},
			"cross-site fetch":  {"Cookie", cookie, auth.CSRFHeader, csrf, "Sec-Fetch-Site", "cross-site"},
		} {
			r := ts.do("POST", "/keys", "", key, h...).want(t, http.StatusForbidden)
			if !strings.Contains(r.JSON()["detail"].(string), "CSRF") && !strings.Contains(r.JSON()["detail"].(string), "cross-site") {
				t.Errorf("%s: detail = %q", name, r.JSON()["detail"])
			}
		}
		if n := len(ts.do("GET", "/keys", acct.Token, nil).want(t, http.StatusOK).JSON()["keys"].([]any)); n != 0 {
			t.Fatalf("refused requests stored %d keys", n)
		}
		ts.do("POST", "/keys", "", key, "Cookie", cookie, auth.CSRFHeader, csrf,
			"Origin", ts.URL, "Sec-Fetch-Site", "same-origin").want(t, http.StatusCreated)

		// A bearer token needs no CSRF token: no browser sends it by itself.
		ts.do("POST", "/tokens", acct.Token, map[string]any{"name": "app", "services": []string{"stripe"}}).want(t, http.StatusCreated)

		// The proxy takes tokens only, never the cookie.
		r := ts.do("GET", "/proxy/stripe/v1/charges", "", nil, "Cookie", cookie)
		if r.Status != http.StatusUnauthorized {
			t.Fatalf("proxy with the session cookie: status %d, want 401; body %s", r.Status, r.Body)
		}
		ts.do("POST", "/proxy", "", map[string]any{"service": "stripe", "endpoint": "/v1/charges", "method": "GET"},
			"Cookie", cookie, auth.CSRFHeader, csrf).want(t, http.StatusUnauthorized)

		// A cookie holding an access token is not a session.
		tok := ts.do("POST", "/tokens", acct.Token, map[string]any{"name": "x"}).want(t, http.StatusCreated).JSON()["token"].(string)
		ts.do("GET", "/keys", "", nil, "Cookie", auth.SessionCookie+"="+tok).want(t, http.StatusUnauthorized)
	})
}

func TestSessionLoginRefusesCrossSite(t *testing.T) {
	ts := newTestServer(t, filepath.Join(t.TempDir(), "wallet.db"))
	ts.register("x@example.com")
	r := ts.do("POST", "/auth/session", "", map[string]string{"email": "x@example.com", "password": "correct horse battery"},
		"Origin", "https://evil.example").want(t, http.StatusForbidden)
	if len(r.Header.Values("Set-Cookie")) != 0 {
		t.Fatal("a cross-site login set a cookie")
	}
	ts.do("POST", "/auth/session", "", map[string]string{"email": "x@example.com", "password": "wrong password!"}).
		want(t, http.StatusUnauthorized)
	ts.do("GET", "/auth/session", "", nil).want(t, http.StatusUnauthorized)
}

func TestSessionLogoutRevokes(t *testing.T) {
	ts := newTestServer(t, filepath.Join(t.TempDir(), "wallet.db"))
	acct := ts.register("bye@example.com")
	c, csrf := browserLogin(t, ts, acct.Email)
	cookie := c.Name + "=" + c.Value
	ts.do("DELETE", "/auth/session", "", nil, "Cookie", cookie).want(t, http.StatusForbidden)
	ts.do("GET", "/auth/me", "", nil, "Cookie", cookie).want(t, http.StatusOK)

	r := ts.do("DELETE", "/auth/session", "", nil, "Cookie", cookie, auth.CSRFHeader, csrf)
	if r.Status != http.StatusNoContent {
		t.Fatalf("logout: status %d, body %s", r.Status, r.Body)
	}
	cleared := (&http.Response{Header: r.Header}).Cookies()
	if len(cleared) != 1 || cleared[0].Name != c.Name || cleared[0].MaxAge >= 0 {
		t.Fatalf("logout Set-Cookie = %q, want the cookie cleared", r.Header.Values("Set-Cookie"))
	}
	// The cookie's JWT is revoked, not only forgotten by the browser; so
	// is every other login token of the user.
	ts.do("GET", "/auth/me", "", nil, "Cookie", cookie).want(t, http.StatusUnauthorized)
	ts.do("GET", "/auth/me", acct.Token, nil).want(t, http.StatusUnauthorized)
	// Logging out again with the dead cookie just clears it.
	if r := ts.do("DELETE", "/auth/session", "", nil, "Cookie", cookie); r.Status != http.StatusNoContent {
		t.Fatalf("second logout: status %d", r.Status)
	}
}

func TestPagesAreServedWithStrictHeaders(t *testing.T) {
	ts := newTestServer(t, filepath.Join(t.TempDir(), "wallet.db"))
	for _, p := range []string{"/", "/app/keys", "/app/usage?range=7d", "/static/js/main.js", "/static/app.css",
		"/static/vendor/uplot/uPlot.esm.js"} {
		r := ts.do("GET", p, "", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET %s: %d", p, r.Status)
		}
		if got := r.Header.Get("Content-Security-Policy"); got != web.PageCSP {
			t.Errorf("GET %s: CSP %q", p, got)
		}
		if r.Header.Get("X-Frame-Options") != "DENY" || r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: X-Frame-Options %q, X-Content-Type-Options %q", p, r.Header.Get("X-Frame-Options"),
				r.Header.Get("X-Content-Type-Options"))
		}
	}
	for _, c := range []struct{ path, ct string }{{"/", "text/html"}, {"/app/keys", "text/html"},
		{"/static/js/main.js", "text/javascript"}, {"/static/app.css", "text/css"}} {
		if got := ts.do("GET", c.path, "", nil).Header.Get("Content-Type"); !strings.HasPrefix(got, c.ct) {
			t.Errorf("GET %s: Content-Type %q, want %s", c.path, got, c.ct)
		}
	}
	for _, p := range []string{"/static/", "/static/vendor/", "/static/nope.js", "/static/index.html"} {
		if r := ts.do("GET", p, "", nil); r.Status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404 (no listings, the shell only at its addresses)", p, r.Status)
		}
	}
	// An app's call to / with credentials is not a page view: it goes
	// where any unknown path goes (here, no token scope: 401 from the
	// proxy), and other methods on / are not a 405 from the page route.
	if r := ts.do("GET", "/", "awk_nottoken", nil); strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET / with a token served the page")
	}
	if r := ts.do("POST", "/", "", "x"); r.Status == http.StatusMethodNotAllowed {
		t.Errorf("POST / is 405: the page route shadows the proxy")
	}
}
