package api_test

// Sweeps of the OWASP API Security Top 10 (2023) over the whole route
// table, on both backends: another user's ids in every route, another
// workspace named in every route, every admin route as an ordinary user and
// as an access token, mass assignment, SQL injection strings in every text
// field, and no secret in any answer, log line, metric or audit event.
// docs/SECURITY-TESTS.md maps each item to its tests.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet/internal/api"
)

// routePatterns are the authenticated routes of the wallet's route table
// (the one the mux registers from and the OpenAPI test reads): "METHOD
// /path/{param}". Public routes and the proxy's are left out.
func routePatterns(t *testing.T, ts *testServer) []string {
	t.Helper()
	var out []string
	for _, rt := range ts.api.Routes() {
		if rt.Auth == api.AuthLogin || rt.Auth == api.AuthLoginOrToken {
			out = append(out, rt.Pattern)
		}
	}
	if len(out) < 40 {
		t.Fatalf("only %d authenticated routes in the route table", len(out))
	}
	return out
}

// victim is an account with one of every object the API has ids for.
type victim struct {
	account
	member     account
	team       string
	keyID      string
	tokenID    string
	token      string
	invitation string
}

func newVictim(t *testing.T, ts *testServer) *victim {
	v := &victim{account: ts.register("victim@example.com"), member: ts.register("victim-member@example.com")}
	v.team = ts.createTeam(v.account, "Victim team")
	ts.join(v.account, v.team, v.member, "member")
	v.invitation = ts.invite(v.account, v.team, "pending@example.com", "viewer")["id"].(string)
	v.keyID = ts.do("POST", "/keys", v.Token, map[string]any{"key": "sk-victim-secret-0123456789", "service": "openai", "tier": "paid"}).
		want(t, 201).JSON()["id"].(string)
	tok := ts.do("POST", "/tokens", v.Token, map[string]any{"name": "victim app", "services": []string{"openai"}}).want(t, 201).JSON()
	v.tokenID, v.token = tok["id"].(string), tok["token"].(string)
	ts.do("PUT", "/alerts/settings", v.Token, map[string]any{"thresholds": []int{80, 100}}).want(t, 200)
	return v
}

// snapshot is everything the victim can read about its own objects; an
// attack that changes any of it has changed the victim's data.
func (v *victim) snapshot(t *testing.T, ts *testServer) string {
	t.Helper()
	var b bytes.Buffer
	for _, c := range []struct{ path, ws string }{
		{"/auth/me", ""}, {"/keys", ""}, {"/keys/" + v.keyID, ""}, {"/tokens", ""}, {"/alerts/settings", ""},
		{"/billing/plan", ""}, {"/workspaces", ""}, {"/workspaces/" + v.team, ""},
		{"/workspaces/" + v.team + "/members", ""}, {"/workspaces/" + v.team + "/invitations", ""},
		{"/keys", v.team}, {"/tokens", v.team},
	} {
		var h []string
		if c.ws != "" {
			h = []string{"X-Workspace-Id", c.ws}
		}
		r := ts.do("GET", c.path, v.Token, nil, h...)
		fmt.Fprintf(&b, "%s %d %s\n", c.path, r.Status, r.Body)
	}
	return b.String()
}

// fill replaces each {param} of a route pattern with the victim's id for
// it.
func (v *victim) fill(pattern string) string {
	_, path, _ := strings.Cut(pattern, " ")
	r := strings.NewReplacer(
		"/keys/{id}", "/keys/"+v.keyID,
		"/tokens/{id}", "/tokens/"+v.tokenID,
		"/workspaces/{id}", "/workspaces/"+v.team,
		"{userId}", v.member.ID,
		"{invitationId}", v.invitation,
		"/admin/users/{id}", "/admin/users/"+v.ID,
		"/admin/workspaces/{id}", "/admin/workspaces/"+v.WorkspaceID,
		"/admin/plans/{id}", "/admin/plans/pro",
		"{name}", "openai",
		"{month}", time.Now().UTC().Format("2006-01"),
		"{path...}", "v1/models",
	)
	return r.Replace(path)
}

// hostileBody is what an attacker sends to a route that takes one: every
// field a handler might read, pointing at the victim, with privileges.
func (v *victim) hostileBody() map[string]any {
	return map[string]any{
		"role": "owner", "plan": "enterprise", "enabled": false, "name": "pwned", "email": "attacker@example.com",
		"workspaceId": v.WorkspaceID, "ownerId": v.ID, "userId": v.ID, "key": "sk-attacker-0123456789", "secret": "sk-attacker-0123456789",
		"services": []string{"openai"}, "tier": "free", "token": "inv_bogus", "timezone": "UTC",
		"metadata": map[string]any{"quota": 1}, "priority": 1,
	}
}

// API1 (broken object level authorization): another user, logged in,
// names the victim's ids in every route that takes one and gets nothing
// and changes nothing.
func TestAttackObjectLevelAuthorization(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		v := newVictim(t, ts)
		attacker := ts.register("attacker@example.com")
		before := v.snapshot(t, ts)
		swept := 0
		for _, pattern := range routePatterns(t, ts) {
			// {month} names a month of the caller's own invoices, not
			// an object of the victim's; the workspace header sweep
			// covers it.
			if !strings.Contains(pattern, "{") || strings.Contains(pattern, "{month}") {
				continue
			}
			method, _, _ := strings.Cut(pattern, " ")
			path := v.fill(pattern)
			for _, header := range [][]string{nil, {"X-Workspace-Id", v.WorkspaceID}, {"X-Workspace-Id", v.team}} {
				var body any
				if method != "GET" && method != "DELETE" {
					body = v.hostileBody()
				}
				r := ts.do(method, path, attacker.Token, body, header...)
				if r.Status < 400 || r.Status >= 500 {
					t.Errorf("%s %s %v as another user: %d %s", method, path, header, r.Status, r.Body)
				}
				swept++
			}
		}
		if after := v.snapshot(t, ts); after != before {
			t.Fatalf("the sweep changed the victim's data:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		t.Logf("%d requests with the victim's ids, all refused; the victim's data unchanged", swept)
	})
}

// API1 and API5 through the workspace header: every authenticated route,
// called as another user naming the victim's workspaces, is refused.
func TestAttackForeignWorkspaceHeader(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		v := newVictim(t, ts)
		attacker := ts.register("attacker@example.com")
		before := v.snapshot(t, ts)
		for _, pattern := range routePatterns(t, ts) {
			if strings.HasPrefix(pattern, "POST /invitations/accept") {
				continue
			}
			method, _, _ := strings.Cut(pattern, " ")
			path := v.fill(pattern)
			for _, ws := range []string{v.WorkspaceID, v.team} {
				var body any
				if method != "GET" && method != "DELETE" {
					body = v.hostileBody()
				}
				r := ts.do(method, path, attacker.Token, body, "X-Workspace-Id", ws)
				if r.Status < 400 || r.Status >= 500 {
					t.Errorf("%s %s naming workspace %s: %d %s", method, path, ws, r.Status, r.Body)
				}
			}
		}
		if after := v.snapshot(t, ts); after != before {
			t.Fatalf("the sweep changed the victim's data:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

// API5 (broken function level authorization): every /admin route is
// refused to an ordinary user (403), to a wallet access token (403: tokens
// never reach management routes) and to no credentials (401).
func TestAttackAdminRoutes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		v := newVictim(t, ts)
		// Another account's access token: using the victim's own would
		// move its last use.
		other := ts.register("token-holder@example.com")
		otherToken := ts.do("POST", "/tokens", other.Token, map[string]any{"name": "app", "services": []string{"openai"}}).
			want(t, 201).JSON()["token"].(string)
		before := v.snapshot(t, ts)
		n := 0
		for _, pattern := range routePatterns(t, ts) {
			method, _, _ := strings.Cut(pattern, " ")
			if !strings.Contains(pattern, " /admin/") {
				continue
			}
			path := v.fill(pattern)
			for _, c := range []struct {
				who, cred string
				want      int
			}{{"a user", v.Token, 403}, {"an access token", otherToken, 403}, {"nobody", "", 401}} {
				var body any
				if method != "GET" && method != "DELETE" {
					body = v.hostileBody()
				}
				if r := ts.do(method, path, c.cred, body); r.Status != c.want {
					t.Errorf("%s %s as %s: %d, want %d: %s", method, path, c.who, r.Status, c.want, r.Body)
				}
			}
			n++
		}
		if n < 8 {
			t.Fatalf("only %d admin routes found", n)
		}
		if after := v.snapshot(t, ts); after != before {
			t.Fatalf("an admin route refused to a user changed the victim's data:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

// API3 (broken object property level authorization): fields a caller may
// not set are ignored or refused, never applied: the role or plan at
// registration, a key's workspace, id or usage, a member making itself
// owner.
func TestAttackMassAssignment(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		v := newVictim(t, ts)
		r := ts.do("POST", "/auth/register", "", map[string]any{"email": "mass@example.com", "password": "correct horse battery",
			"name": "Mass", "role": "ADMIN", "plan": "enterprise", "personalWorkspaceId": v.WorkspaceID, "id": v.ID})
		if r.Status == 201 {
			me := ts.do("GET", "/auth/me", r.JSON()["token"].(string), nil).want(t, 200).JSON()
			u := me["user"].(map[string]any)
			if u["role"] == "ADMIN" || u["id"] == v.ID || u["personalWorkspaceId"] == v.WorkspaceID {
				t.Fatalf("registration took privileged fields: %v", u)
			}
			if plan := ts.do("GET", "/billing/plan", r.JSON()["token"].(string), nil).want(t, 200).JSON(); plan["plan"] == "enterprise" {
				t.Fatalf("registration chose its plan: %v", plan)
			}
		} else if r.Status != 400 {
			t.Fatalf("register with privileged fields: %d %s", r.Status, r.Body)
		}

		attacker := ts.register("attacker@example.com")
		k := ts.do("POST", "/keys", attacker.Token, map[string]any{"key": "sk-attacker-0123456789", "service": "openai", "tier": "paid",
			"workspaceId": v.WorkspaceID, "id": v.keyID, "usedCount": -5, "fingerprint": "forged"})
		if k.Status == 201 {
			m := k.JSON()
			if m["id"] == v.keyID || m["workspaceId"] == v.WorkspaceID || m["fingerprint"] == "forged" {
				t.Fatalf("a key took fields it may not set: %v", m)
			}
			ts.do("PATCH", "/keys/"+m["id"].(string), attacker.Token, map[string]any{"workspaceId": v.WorkspaceID, "id": v.keyID})
		} else if k.Status != 400 {
			t.Fatalf("create key with foreign fields: %d %s", k.Status, k.Body)
		}
		ts.do("GET", "/keys/"+v.keyID, v.Token, nil).want(t, 200)
		if n := ts.count(`SELECT COUNT(*) FROM api_keys WHERE workspace_id = $1`, v.WorkspaceID); n != 1 {
			t.Fatalf("the victim's workspace holds %d keys, want 1", n)
		}

		// A member promoting itself, or taking the workspace.
		for _, role := range []string{"owner", "admin"} {
			if r := ts.do("PATCH", "/workspaces/"+v.team+"/members/"+v.member.ID, v.member.Token, map[string]string{"role": role}); r.Status < 400 {
				t.Fatalf("a member made itself %s: %d %s", role, r.Status, r.Body)
			}
		}
		if got := ts.roleIn(v.team, v.member.ID); got != "member" {
			t.Fatalf("the member's role is %q", got)
		}
	})
}

// sqlInjections are strings that break a query built by concatenation, on
// either dialect.
var sqlInjections = []string{
	`' OR '1'='1`, `'; DROP TABLE users; --`, `" OR ""="`, `1; SELECT pg_sleep(5)--`, `') UNION SELECT id, email FROM users --`,
	`\'; DELETE FROM api_keys; --`, "x\x00y", `%' AND 1=1 --`, `$1`, `?`,
}

// SQL injection strings in every text field and filter: stored and shown
// back verbatim, refused as invalid, or matched as literals; never a 500,
// and every table is intact afterwards.
func TestAttackSQLInjection(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		a := ts.register("sqli@example.com")
		users := ts.count(`SELECT COUNT(*) FROM users`)
		noServerError := func(what string, r *response) {
			t.Helper()
			if r.Status >= 500 {
				t.Errorf("%s: %d %s", what, r.Status, r.Body)
			}
		}
		stored := 0
		for i, s := range sqlInjections {
			r := ts.do("POST", "/auth/register", "", map[string]any{"email": s, "password": "correct horse battery", "name": s})
			noServerError("register email "+s, r)
			r = ts.do("POST", "/auth/register", "", map[string]any{"email": fmt.Sprintf("sqli%d@example.com", i), "password": s + s + s, "name": s})
			noServerError("register name "+s, r)
			if r.Status == 201 && !strings.Contains(string(r.Body), jsonQuote(s)) {
				t.Errorf("name %q not stored verbatim: %s", s, r.Body)
			}
			noServerError("login "+s, ts.do("POST", "/auth/login", "", map[string]any{"email": s, "password": s}))
			k := ts.do("POST", "/keys", a.Token, map[string]any{"key": fmt.Sprintf("sk-sqli-%02d-0123456789", i), "service": "openai",
				"tier": "paid", "metadata": map[string]any{"description": s, "type": s}})
			noServerError("key description "+s, k)
			if k.Status == 201 {
				stored++
				got := ts.do("GET", "/keys/"+k.JSON()["id"].(string), a.Token, nil).want(t, 200)
				if !strings.Contains(string(got.Body), jsonQuote(s)) {
					t.Errorf("description %q not shown back verbatim: %s", s, got.Body)
				}
			}
			noServerError("token name "+s, ts.do("POST", "/tokens", a.Token, map[string]any{"name": s, "services": []string{"openai"}}))
			noServerError("workspace name "+s, ts.do("POST", "/workspaces", a.Token, map[string]any{"name": s}))
			q := urlQuery(s)
			for _, path := range []string{"/keys?service=" + q, "/keys?after=" + q, "/tokens?after=" + q, "/audit?action=" + q,
				"/usage?service=" + q, "/usage?group_by=" + q, "/usage?tz=" + q, "/usage?from=" + q, "/services/" + q, "/billing/invoices/" + q} {
				noServerError("GET "+path, ts.do("GET", path, a.Token, nil))
			}
		}
		if ts.count(`SELECT COUNT(*) FROM users`) < users {
			t.Fatal("users were deleted")
		}
		if n := ts.count(`SELECT COUNT(*) FROM api_keys WHERE workspace_id = $1`, a.WorkspaceID); n != stored || stored < len(sqlInjections)-1 {
			t.Fatalf("%d keys stored, %d acknowledged of %d", n, stored, len(sqlInjections))
		}
	})
}

// jsonQuote is s as it appears inside a JSON string.
func jsonQuote(s string) string {
	b, _ := json.Marshal(s)
	return strings.Trim(string(b), `"`)
}

func urlQuery(s string) string { return url.QueryEscape(s) }

// API8 (security misconfiguration): no CORS grant to another origin, no
// debug endpoints on the public port, and internal errors say nothing of
// their cause.
func TestAttackMisconfiguration(t *testing.T) {
	ts := newTestServer(t, t.TempDir()+"/w.db")
	a := ts.register("cors@example.com")
	r := ts.do("OPTIONS", "/keys", "", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "GET",
		"Access-Control-Request-Headers", "authorization")
	if r.Header.Get("Access-Control-Allow-Origin") != "" || r.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("preflight from another origin granted: %v", r.Header)
	}
	r = ts.do("GET", "/keys", a.Token, nil, "Origin", "https://evil.example")
	if r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("a cross-origin read was granted: %v", r.Header)
	}
	for _, path := range []string{"/debug/pprof/", "/debug/vars", "/debug/pprof/goroutine?debug=2", "/.env", "/server-status"} {
		r := ts.do("GET", path, "", nil)
		if r.Status < 400 || bytes.Contains(r.Body, []byte("goroutine 1 [")) {
			t.Errorf("GET %s: %d %.200s", path, r.Status, r.Body)
		}
	}
	// A 404 or 405 says nothing of the stack.
	for _, b := range [][]byte{ts.do("GET", "/nope", "", nil).Body, ts.do("PUT", "/keys", a.Token, "{").Body} {
		for _, leak := range []string{".go:", "goroutine", "panic", "sql:", "SQLSTATE", "pgx", "sqlite"} {
			if bytes.Contains(b, []byte(leak)) {
				t.Errorf("an error answer mentions %q: %s", leak, b)
			}
		}
	}
}

// The secrets the wallet holds — a stored key, an access token, a login
// token, a password, the root key and the JWT secret — never appear in an
// answer other than the one that issued them, a log line, the metrics or
// the audit log, whatever the caller does with them.
func TestAttackNoSecretAnywhere(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		const password = "correct horse battery"
		a := ts.register("secrets@example.com")
		keySecret := "sk-live-no-leak-0123456789abcdef"
		k := ts.do("POST", "/keys", a.Token, map[string]any{"key": keySecret, "service": "openai", "tier": "paid"}).want(t, 201).JSON()
		tok := ts.do("POST", "/tokens", a.Token, map[string]any{"name": "leak", "services": []string{"openai"}}).want(t, 201).JSON()["token"].(string)
		ts.do("POST", "/keys/"+k["id"].(string)+"/rotate", a.Token, map[string]any{"key": keySecret + "-rotated"})
		// Misuse that puts secrets where errors and logs might echo them.
		ts.do("POST", "/auth/login", "", map[string]any{"email": "secrets@example.com", "password": password + "x"})
		ts.do("GET", "/keys", tok, nil)
		ts.do("GET", "/proxy/openai/v1/models", keySecret, nil)
		ts.do("POST", "/keys", a.Token, map[string]any{"key": keySecret, "service": "no such service"})
		ts.do("GET", "/proxy/openai/v1/models?key="+keySecret, tok+"x", nil)
		ts.do("GET", "/auth/me", a.Token+"tampered", nil)

		var seen bytes.Buffer
		seen.WriteString(ts.logs.String())
		seen.Write(ts.do("GET", "/metrics", "", nil).Body)
		seen.Write(ts.do("GET", "/audit", a.Token, nil).want(t, 200).Body)
		seen.Write(ts.do("GET", "/keys", a.Token, nil).Body)
		seen.Write(ts.do("GET", "/tokens", a.Token, nil).Body)
		seen.Write(ts.do("GET", "/account/export", a.Token, nil).Body)
		for name, secret := range map[string]string{
			"stored key": keySecret, "access token": tok, "login token": a.Token, "password": password,
			"root key": strings.Repeat("ab", 32), "JWT secret": "test-secret-test-secret-test-secret-0123",
		} {
			if i := bytes.Index(seen.Bytes(), []byte(secret)); i >= 0 {
				t.Errorf("the %s appears in the logs, metrics, audit log or an answer: %q", name, seen.Bytes()[max(0, i-300):min(seen.Len(), i+100)])
			}
		}
		if seen.Len() < 1000 {
			t.Fatalf("only %d bytes of logs and answers were searched", seen.Len())
		}
	})
}

// API4 (unrestricted resource consumption): a workspace may hold
// MAX_KEYS_PER_WORKSPACE keys and MAX_TOKENS_PER_WORKSPACE unrevoked
// tokens. One more is a 409 limit_reached problem that stores nothing;
// a delete or a revoke frees a place; another workspace has its own count.
func TestAttackWorkspaceCaps(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		a, b := ts.register("caps-a@example.com"), ts.register("caps-b@example.com")
		newKey := func(acc account, i int) *response {
			return ts.do("POST", "/keys", acc.Token, map[string]any{
				"key": fmt.Sprintf("sk-cap-%s-%04d-0123456789", acc.ID, i), "service": "openai", "tier": "paid"})
		}
		newToken := func(acc account, i int) *response {
			return ts.do("POST", "/tokens", acc.Token, map[string]any{"name": fmt.Sprint("app ", i)})
		}
		wantCap := func(r *response, limit int) {
			t.Helper()
			m := r.want(t, 409).JSON()
			if m["code"] != "limit_reached" || m["limit"] != float64(limit) {
				t.Fatalf("refusal at the cap: %s", r.Body)
			}
		}
		count := func(path string, acc account, list string) int {
			t.Helper()
			return len(ts.do("GET", path, acc.Token, nil).want(t, 200).JSON()[list].([]any))
		}

		var keyIDs []string
		for i := range 3 {
			keyIDs = append(keyIDs, newKey(a, i).want(t, 201).JSON()["id"].(string))
		}
		wantCap(newKey(a, 3), 3)
		if n := count("/keys", a, "keys"); n != 3 {
			t.Fatalf("%d keys after the refusal, want 3", n)
		}
		if after := ts.count(`SELECT COUNT(*) FROM audit_events WHERE workspace_id = $1 AND action = 'key.create'`, a.WorkspaceID); after != 3 {
			t.Fatalf("%d key.create events, want 3: the refusal was audited as a creation", after)
		}
		newKey(b, 0).want(t, 201) // b's count is its own
		ts.do("DELETE", "/keys/"+keyIDs[0], a.Token, nil).want(t, 204)
		newKey(a, 4).want(t, 201)
		wantCap(newKey(a, 5), 3)

		var tokenIDs []string
		for i := range 2 {
			tokenIDs = append(tokenIDs, newToken(a, i).want(t, 201).JSON()["id"].(string))
		}
		wantCap(newToken(a, 2), 2)
		if n := count("/tokens", a, "tokens"); n != 2 {
			t.Fatalf("%d tokens after the refusal, want 2", n)
		}
		newToken(b, 0).want(t, 201)
		// Revoking frees one place, however often it is repeated.
		for range 2 {
			ts.do("DELETE", "/tokens/"+tokenIDs[0], a.Token, nil)
		}
		newToken(a, 3).want(t, 201)
		wantCap(newToken(a, 4), 2)
	}, "MAX_KEYS_PER_WORKSPACE=3", "MAX_TOKENS_PER_WORKSPACE=2")
}
