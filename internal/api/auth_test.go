package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/apikeywallet/apiwallet"
)

// Register, login and me work the same on both backends, and me shows the
// personal workspace.
func TestRegisterLoginMe(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		a := ts.register("ann@example.com")
		r := ts.do("POST", "/auth/login", "", map[string]string{"email": "ANN@example.com", "password": "correct horse battery"}).want(t, 200)
		m := r.JSON()
		if m["token"] == "" || m["expiresAt"] == nil || m["user"].(map[string]any)["id"] != a.ID {
			t.Fatalf("login body: %s", r.Body)
		}
		me := ts.do("GET", "/auth/me", m["token"].(string), nil).want(t, 200).JSON()
		ws := me["workspace"].(map[string]any)
		if me["email"] != "ann@example.com" || ws["id"] != a.WorkspaceID || ws["personal"] != true || ws["role"] != "owner" {
			t.Fatalf("me: %v", me)
		}
		if strings.Contains(string(r.Body), "password") || strings.Contains(string(r.Body), "argon2") {
			t.Fatal("login response mentions the password hash")
		}
		list := ts.do("GET", "/workspaces", a.Token, nil).want(t, 200).JSON()["workspaces"].([]any)
		if len(list) != 1 {
			t.Fatalf("workspaces: %v", list)
		}
	})
}

// Naming a workspace the caller is not a member of is 404, whether it
// exists or not, so nothing leaks.
func TestForeignWorkspaceIsNotFound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		a, b := ts.register("a@example.com"), ts.register("b@example.com")
		ts.do("GET", "/auth/me", a.Token, nil, "X-Workspace-Id", b.WorkspaceID).want(t, 404)
		ts.do("GET", "/auth/me", a.Token, nil, "X-Workspace-Id", "ws_doesnotexist").want(t, 404)
		ts.do("GET", "/auth/me", a.Token, nil, "X-Workspace-Id", a.WorkspaceID).want(t, 200)
	})
}

func TestBadTokensAreRejected(t *testing.T) {
	ts := newTestServer(t, t.TempDir()+"/w.db")
	a := ts.register("a@example.com")
	claims := func(mut func(c jwt.MapClaims)) jwt.MapClaims {
		now := time.Now()
		c := jwt.MapClaims{"sub": a.ID, "ver": 0, "iss": ts.cfg.JWTIssuer, "aud": []string{ts.cfg.JWTAudience},
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		mut(c)
		return c
	}
	sign := func(c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(ts.cfg.JWTSecret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims(func(jwt.MapClaims) {})).SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, claims(func(jwt.MapClaims) {})).SignedString(ts.cfg.JWTSecret)
	tampered := a.Token[:len(a.Token)-3] + "AAA"
	if tampered == a.Token {
		tampered = a.Token[:len(a.Token)-3] + "BBB"
	}
	cases := map[string]string{
		"tampered":       tampered,
		"alg none":       none,
		"other alg":      hs512,
		"expired":        sign(claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() })),
		"no expiry":      sign(claims(func(c jwt.MapClaims) { delete(c, "exp") })),
		"wrong audience": sign(claims(func(c jwt.MapClaims) { c["aud"] = []string{"someone-else"} })),
		"wrong issuer":   sign(claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })),
		"wrong secret": func() string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(func(jwt.MapClaims) {})).SignedString([]byte("another-secret-another-secret-0123"))
			return s
		}(),
		"unknown user": sign(claims(func(c jwt.MapClaims) { c["sub"] = "usr_nobody" })),
		"garbage":      "not.a.jwt",
	}
	// The control: a well-formed token signed like ours is accepted.
	ts.do("GET", "/auth/me", sign(claims(func(jwt.MapClaims) {})), nil).want(t, 200)
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			r := ts.do("GET", "/auth/me", tok, nil).want(t, 401)
			if r.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	ts.do("GET", "/auth/me", "", nil).want(t, 401)

	// Logout revokes the token; a fresh login works again.
	ts.do("POST", "/auth/logout", a.Token, nil).want(t, 204)
	ts.do("GET", "/auth/me", a.Token, nil).want(t, 401)
	tok := ts.do("POST", "/auth/login", "", map[string]string{"email": a.Email, "password": "correct horse battery"}).want(t, 200).JSON()["token"].(string)
	ts.do("GET", "/auth/me", tok, nil).want(t, 200)

	// A password change revokes earlier tokens too.
	r := ts.do("POST", "/auth/password", tok, map[string]string{"currentPassword": "correct horse battery", "newPassword": "an even better passphrase"}).want(t, 200)
	ts.do("GET", "/auth/me", tok, nil).want(t, 401)
	ts.do("GET", "/auth/me", r.JSON()["token"].(string), nil).want(t, 200)
	ts.do("POST", "/auth/login", "", map[string]string{"email": a.Email, "password": "correct horse battery"}).want(t, 401)
}

// Bad input gets a problem+json naming each bad field, and changes nothing.
func TestRegisterValidation(t *testing.T) {
	ts := newTestServer(t, t.TempDir()+"/w.db")
	cases := []struct {
		name   string
		body   string
		status int
		field  string
	}{
		{"bad email", `{"email":"not-an-email","password":"correct horse battery","name":"A"}`, 400, "email"},
		{"short password", `{"email":"a@example.com","password":"short","name":"A"}`, 400, "password"},
		{"missing name", `{"email":"a@example.com","password":"correct horse battery"}`, 400, "name"},
		{"wrong type", `{"email":"a@example.com","password":"correct horse battery","name":5}`, 400, "name"},
		{"unknown field", `{"email":"a@example.com","password":"correct horse battery","name":"A","role":"ADMIN"}`, 400, "role"},
		{"malformed", `{"email":`, 400, ""},
		{"not an object", `[1,2]`, 400, ""},
		{"trailing data", `{"email":"a@example.com","password":"correct horse battery","name":"A"} {}`, 400, ""},
		{"empty", ``, 400, ""},
		{"too large", `{"email":"a@example.com","password":"correct horse battery","name":"` + strings.Repeat("x", 2<<20) + `"}`, 413, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := ts.do("POST", "/auth/register", "", c.body).want(t, c.status)
			p := r.JSON()
			if p["type"] == "" || p["title"] == "" || int(p["status"].(float64)) != c.status || p["detail"] == "" {
				t.Fatalf("not a full problem: %s", r.Body)
			}
			if c.field != "" {
				errs, _ := p["errors"].([]any)
				found := false
				for _, e := range errs {
					found = found || e.(map[string]any)["field"] == c.field
				}
				if !found {
					t.Fatalf("errors[] does not name %q: %s", c.field, r.Body)
				}
			}
		})
	}
	users, _ := ts.db.FindUsers(t.Context(), apiwallet.UserFilter{})
	if len(users) != 0 {
		t.Fatalf("bad input created %d users", len(users))
	}
	// Duplicate registration is 409.
	ts.register("a@example.com")
	ts.do("POST", "/auth/register", "", map[string]string{"email": "A@example.com", "password": "correct horse battery", "name": "A"}).want(t, 409)
}

// Login is throttled per account: after the burst, even the right password
// gets 429 with Retry-After.
func TestLoginThrottle(t *testing.T) {
	ts := newTestServer(t, t.TempDir()+"/w.db")
	a := ts.register("a@example.com")
	var last *response
	for range 12 {
		last = ts.do("POST", "/auth/login", "", map[string]string{"email": a.Email, "password": "wrong password!!"})
	}
	last.want(t, http.StatusTooManyRequests)
	if last.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	ts.do("POST", "/auth/login", "", map[string]string{"email": a.Email, "password": "correct horse battery"}).want(t, 429)
	// Another account from the same address is not locked by this one.
	b := ts.register("b@example.com")
	ts.do("POST", "/auth/login", "", map[string]string{"email": b.Email, "password": "correct horse battery"}).want(t, 200)
}

func TestUnknownRouteAndMethod(t *testing.T) {
	ts := newTestServer(t, t.TempDir()+"/w.db")
	r := ts.do("GET", "/no/such/route", "", nil).want(t, 404)
	if r.Header.Get("X-Request-Id") == "" || r.JSON()["requestId"] != r.Header.Get("X-Request-Id") {
		t.Fatalf("request id missing or different: %s / %s", r.Header.Get("X-Request-Id"), r.Body)
	}
	r = ts.do("DELETE", "/auth/me", "", nil).want(t, 405)
	if r.Header.Get("Allow") != "GET" {
		t.Fatalf("Allow = %q", r.Header.Get("Allow"))
	}
}

// Metrics are labelled by route pattern, never by raw path.
func TestMetricsByRoutePattern(t *testing.T) {
	ts := newTestServer(t, t.TempDir()+"/w.db")
	ts.do("GET", "/monitoring/health", "", nil).want(t, 200)
	ts.do("GET", "/secret-looking/path/sk_live_123", "", nil).want(t, 404)
	body := string(ts.do("GET", "/metrics", "", nil).want(t, 200).Body)
	if !strings.Contains(body, `apiwallet_http_requests_total{method="GET",route="GET /monitoring/health",status="200"} 1`) {
		t.Fatalf("no health counter in:\n%s", body)
	}
	if strings.Contains(body, "sk_live_123") || !strings.Contains(body, `route="ANY /{path...}"`) {
		t.Fatal("metrics carry a raw path")
	}
}

func TestHealthShape(t *testing.T) {
	ts := newTestServer(t, t.TempDir()+"/w.db")
	m := ts.do("GET", "/monitoring/health", "", nil).want(t, 200).JSON()
	svc := m["services"].(map[string]any)
	if m["status"] != "healthy" || svc["database"] != "connected" || svc["redis"] != "not configured" {
		t.Fatalf("health: %v", m)
	}
	if _, err := time.Parse(time.RFC3339, m["timestamp"].(string)); err != nil {
		t.Fatalf("timestamp: %v", err)
	}
}
