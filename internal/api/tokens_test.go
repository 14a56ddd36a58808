package api_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/auth"
)

var tokenFormat = regexp.MustCompile(`^awk_[a-z2-7]{52}$`)

// tokenAuth is a token service over ts's database with its own clock, so a
// test can move time for AuthenticateToken without racing the server.
func tokenAuth(ts *testServer, now func() time.Time) *auth.Service {
	return &auth.Service{Users: ts.db, Workspaces: ts.db, Audit: ts.db, Tokens: ts.db, Now: now}
}

// mustCreateToken creates a token through the API and returns the
// response body, secret included.
func mustCreateToken(t *testing.T, ts *testServer, bearer string, body any, headers ...string) map[string]any {
	t.Helper()
	m := ts.do("POST", "/tokens", bearer, body, headers...).want(t, http.StatusCreated).JSON()
	if !tokenFormat.MatchString(m["token"].(string)) {
		t.Fatalf("token %q is not awk_ + 52 base32 characters", m["token"])
	}
	return m
}

// wantTokenWorks asserts that secret authenticates at now (or not).
func wantTokenWorks(t *testing.T, svc *auth.Service, secret string, works bool) *apiwallet.AccessToken {
	t.Helper()
	tok, u, err := svc.AuthenticateToken(t.Context(), secret)
	if works && err != nil {
		t.Fatalf("AuthenticateToken: %v; want it to work", err)
	}
	if !works {
		if !auth.IsBadAccessToken(err) || tok != nil || u != nil {
			t.Fatalf("AuthenticateToken = %v, %v, %v; want the bad-token error", tok, u, err)
		}
		return nil
	}
	if u == nil || u.ID != tok.CreatedBy {
		t.Fatalf("AuthenticateToken returned user %+v for token by %s", u, tok.CreatedBy)
	}
	return tok
}

// addMember makes u a member of workspace ws with role, as an accepted
// invitation would.
func addMember(t *testing.T, ts *testServer, ws, userID string, role apiwallet.WorkspaceRole) {
	t.Helper()
	if _, err := ts.db.SQL().ExecContext(t.Context(), `INSERT INTO memberships (workspace_id, user_id, role, created_at)
		VALUES ($1, $2, $3, $4)`, ws, userID, string(role), time.Now().UnixMicro()); err != nil {
		t.Fatal(err)
	}
}

// The secret is shown in the create response and never again: not in the
// list, not in the database, not in the audit log, not in the logs.
func TestTokenShownOnceStoredHashed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		a := ts.register("a@example.com")
		exp := time.Now().Add(72 * time.Hour).UTC().Truncate(time.Second)
		created := mustCreateToken(t, ts, a.Token, map[string]any{"name": "ci", "services": []string{"OpenAI", "openai", "stripe"},
			"expires_at": exp.Format(time.RFC3339), "rate_limit_per_minute": 120})
		secret, id := created["token"].(string), created["id"].(string)
		if created["masked"] != "awk_…"+secret[len(secret)-4:] || created["createdBy"] != a.ID ||
			created["workspaceId"] != a.WorkspaceID || created["status"] != "active" ||
			created["rateLimitPerMinute"] != 120.0 || created["expiresAt"] != exp.Format(time.RFC3339) ||
			created["lastUsedAt"] != nil || created["revokedAt"] != nil {
			t.Fatalf("create response: %v", created)
		}
		if svcs := created["services"].([]any); len(svcs) != 2 || svcs[0] != "openai" || svcs[1] != "stripe" {
			t.Fatalf("services not normalised: %v", svcs)
		}

		list := ts.do("GET", "/tokens", a.Token, nil).want(t, 200)
		if strings.Contains(string(list.Body), secret) || strings.Contains(string(list.Body), `"token"`) {
			t.Fatalf("the list shows the secret: %s", list.Body)
		}
		toks := list.JSON()["tokens"].([]any)
		if len(toks) != 1 || toks[0].(map[string]any)["id"] != id || toks[0].(map[string]any)["masked"] != created["masked"] {
			t.Fatalf("list: %s", list.Body)
		}

		// The database holds the SHA-256 and the last four characters,
		// nothing more of the secret.
		sum := sha256.Sum256([]byte(secret))
		var hash string
		if err := ts.db.SQL().QueryRowContext(t.Context(), `SELECT hash FROM access_token_secrets WHERE token_id = $1`, id).Scan(&hash); err != nil {
			t.Fatal(err)
		}
		if hash != hex.EncodeToString(sum[:]) {
			t.Fatalf("stored hash %q is not the SHA-256 of the token", hash)
		}
		for _, table := range []string{"access_tokens", "access_token_secrets", "audit_events"} {
			if dump := dumpTable(t, ts, table); strings.Contains(dump, secret[4:]) || strings.Contains(dump, secret[len(secret)-20:]) {
				t.Fatalf("table %s holds the secret", table)
			}
		}
		audit := ts.do("GET", "/audit?action=token.", a.Token, nil).want(t, 200)
		if strings.Contains(string(audit.Body), secret[4:]) {
			t.Fatal("the audit log shows the secret")
		}
		evs := audit.JSON()["events"].([]any)
		if len(evs) != 1 {
			t.Fatalf("token events: %s", audit.Body)
		}
		ev := evs[0].(map[string]any)
		if ev["action"] != "token.create" || ev["targetId"] != id || ev["actorId"] != a.ID || ev["outcome"] != "success" ||
			ev["details"].(map[string]any)["services"] != "openai,stripe" || ev["requestId"] == "" || ev["clientIp"] == "" {
			t.Fatalf("create event: %v", ev)
		}

		// The secret authenticates, for its services only.
		tok := wantTokenWorks(t, tokenAuth(ts, time.Now), secret, true)
		if tok.ID != id || !tok.Allows("openai") || !tok.Allows("STRIPE") || tok.Allows("anthropic") {
			t.Fatalf("token %+v allows the wrong services", tok)
		}
		if strings.Contains(ts.logs.String(), secret[4:]) {
			t.Fatal("the logs show the secret")
		}
	})
}

// dumpTable returns every value of every row of table as text.
func dumpTable(t *testing.T, ts *testServer, table string) string {
	t.Helper()
	rows, err := ts.db.SQL().QueryContext(t.Context(), "SELECT * FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if bs, ok := v.([]byte); ok {
				v = string(bs)
			}
			fmt.Fprint(&b, v, "|")
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Revoking works at once: the very next authentication fails. Revoking
// again changes nothing; a revoked token cannot be rotated back to life.
func TestTokenRevoke(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		a := ts.register("a@example.com")
		created := mustCreateToken(t, ts, a.Token, map[string]any{"name": "app"})
		secret, id := created["token"].(string), created["id"].(string)
		svc := tokenAuth(ts, time.Now)
		wantTokenWorks(t, svc, secret, true)

		ts.do("DELETE", "/tokens/"+id, a.Token, nil).want(t, http.StatusNoContent)
		wantTokenWorks(t, svc, secret, false)
		tok := ts.do("GET", "/tokens", a.Token, nil).want(t, 200).JSON()["tokens"].([]any)[0].(map[string]any)
		if tok["status"] != "revoked" || tok["revokedAt"] == nil {
			t.Fatalf("revoked token listed as %v", tok)
		}
		ts.do("DELETE", "/tokens/"+id, a.Token, nil).want(t, http.StatusNoContent)
		evs := ts.do("GET", "/audit?action=token.revoke", a.Token, nil).want(t, 200).JSON()["events"].([]any)
		if len(evs) != 1 {
			t.Fatalf("%d revoke events, want 1", len(evs))
		}
		ts.do("POST", "/tokens/"+id+"/rotate", a.Token, nil).want(t, http.StatusConflict)
		wantTokenWorks(t, svc, secret, false)
		ts.do("DELETE", "/tokens/tok_doesnotexist", a.Token, nil).want(t, http.StatusNotFound)
	})
}

// Rotation keeps the ID and gives a new secret; the old one works until
// the grace period ends, then stops.
func TestTokenRotateGrace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		a := ts.register("a@example.com")
		created := mustCreateToken(t, ts, a.Token, map[string]any{"name": "app", "services": []string{"openai"}})
		old, id := created["token"].(string), created["id"].(string)

		start := time.Now()
		r := ts.do("POST", "/tokens/"+id+"/rotate", a.Token, map[string]any{"grace_seconds": 3600}).want(t, 200).JSON()
		fresh := r["token"].(string)
		if r["id"] != id || fresh == old || !tokenFormat.MatchString(fresh) || r["masked"] != "awk_…"+fresh[len(fresh)-4:] ||
			r["rotatedAt"] == nil || len(r["services"].([]any)) != 1 {
			t.Fatalf("rotate response: %v", r)
		}
		until, err := time.Parse(time.RFC3339Nano, r["previousValidUntil"].(string))
		if err != nil || until.Before(start.Add(time.Hour-time.Minute)) || until.After(time.Now().Add(time.Hour)) {
			t.Fatalf("previousValidUntil = %v, %v; want in an hour", r["previousValidUntil"], err)
		}
		if list := ts.do("GET", "/tokens", a.Token, nil).want(t, 200); strings.Contains(string(list.Body), fresh) ||
			strings.Contains(string(list.Body), old) {
			t.Fatal("the list shows a secret after rotation")
		}

		now := tokenAuth(ts, time.Now)
		wantTokenWorks(t, now, old, true)
		wantTokenWorks(t, now, fresh, true)
		almost := tokenAuth(ts, func() time.Time { return until.Add(-time.Second) })
		wantTokenWorks(t, almost, old, true)
		later := tokenAuth(ts, func() time.Time { return until })
		wantTokenWorks(t, later, old, false)
		wantTokenWorks(t, later, fresh, true)

		// grace 0 ends the previous secret at once; the one before it too.
		r = ts.do("POST", "/tokens/"+id+"/rotate", a.Token, map[string]any{"grace_seconds": 0}).want(t, 200).JSON()
		third := r["token"].(string)
		wantTokenWorks(t, now, fresh, false)
		wantTokenWorks(t, now, old, false)
		wantTokenWorks(t, now, third, true)

		// No body: a day's grace.
		r = ts.do("POST", "/tokens/"+id+"/rotate", a.Token, nil).want(t, 200).JSON()
		until, _ = time.Parse(time.RFC3339Nano, r["previousValidUntil"].(string))
		if d := time.Until(until); d < 23*time.Hour || d > 24*time.Hour {
			t.Fatalf("default grace ends in %v, want 24h", d)
		}
		wantTokenWorks(t, now, third, true)
		wantTokenWorks(t, tokenAuth(ts, func() time.Time { return time.Now().Add(25 * time.Hour) }), third, false)
		wantTokenWorks(t, tokenAuth(ts, func() time.Time { return time.Now().Add(25 * time.Hour) }), r["token"].(string), true)

		evs := ts.do("GET", "/audit?action=token.rotate", a.Token, nil).want(t, 200).JSON()["events"].([]any)
		if len(evs) != 3 || evs[2].(map[string]any)["details"].(map[string]any)["grace_seconds"] != "3600" {
			t.Fatalf("rotate events: %v", evs)
		}

		for _, body := range []string{`{"grace_seconds":-1}`, `{"grace_seconds":2592001}`, `{"grace_seconds":"1h"}`, `{"grace":1}`, `[`} {
			p := ts.do("POST", "/tokens/"+id+"/rotate", a.Token, body).want(t, 400).JSON()
			if p["detail"] == "" {
				t.Fatalf("%s: %v", body, p)
			}
		}
		ts.do("POST", "/tokens/"+id+"/rotate", a.Token, map[string]any{"grace_seconds": 2592000}).want(t, 200)
	})
}

// An expired token fails; expiry must lie in the future and be RFC 3339.
func TestTokenExpiry(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		a := ts.register("a@example.com")
		exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		created := mustCreateToken(t, ts, a.Token, map[string]any{"name": "short", "expires_at": exp.Format(time.RFC3339)})
		secret, id := created["token"].(string), created["id"].(string)
		wantTokenWorks(t, tokenAuth(ts, time.Now), secret, true)
		wantTokenWorks(t, tokenAuth(ts, func() time.Time { return exp.Add(-time.Second) }), secret, true)
		wantTokenWorks(t, tokenAuth(ts, func() time.Time { return exp }), secret, false)

		// Rotating does not revive it.
		r := ts.do("POST", "/tokens/"+id+"/rotate", a.Token, nil).want(t, 200).JSON()
		wantTokenWorks(t, tokenAuth(ts, func() time.Time { return exp.Add(time.Minute) }), r["token"].(string), false)

		ts.do("POST", "/tokens", a.Token, map[string]any{"name": "x", "expires_at": "2001-01-01T00:00:00Z"}).want(t, 400)
		ts.do("POST", "/tokens", a.Token, map[string]any{"name": "x", "expires_at": "tomorrow"}).want(t, 400)
		// An explicit null means no expiry.
		c := mustCreateToken(t, ts, a.Token, `{"name":"forever","expires_at":null}`)
		if c["expiresAt"] != nil {
			t.Fatalf("expiresAt = %v", c["expiresAt"])
		}
	})
}

// A token stops working at once when its creator leaves the workspace, is
// demoted to viewer, or is disabled; nothing is cached.
func TestTokenCreatorLosesAccess(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		owner, m := ts.register("owner@example.com"), ts.register("member@example.com")
		addMember(t, ts, owner.WorkspaceID, m.ID, apiwallet.WorkspaceMember)
		c := mustCreateToken(t, ts, m.Token, map[string]any{"name": "team app"}, "X-Workspace-Id", owner.WorkspaceID)
		if c["workspaceId"] != owner.WorkspaceID || c["createdBy"] != m.ID {
			t.Fatalf("token: %v", c)
		}
		secret := c["token"].(string)
		svc := tokenAuth(ts, time.Now)
		tok := wantTokenWorks(t, svc, secret, true)
		if tok.WorkspaceID != owner.WorkspaceID {
			t.Fatalf("token works in %s", tok.WorkspaceID)
		}
		// The owner sees it in the workspace's list.
		if toks := ts.do("GET", "/tokens", owner.Token, nil).want(t, 200).JSON()["tokens"].([]any); len(toks) != 1 {
			t.Fatalf("owner lists %d tokens", len(toks))
		}

		// Demoted to viewer: the token may no longer use keys.
		if _, err := ts.db.SQL().ExecContext(t.Context(), `UPDATE memberships SET role = 'viewer'
			WHERE workspace_id = $1 AND user_id = $2`, owner.WorkspaceID, m.ID); err != nil {
			t.Fatal(err)
		}
		wantTokenWorks(t, svc, secret, false)
		if _, err := ts.db.SQL().ExecContext(t.Context(), `UPDATE memberships SET role = 'member'
			WHERE workspace_id = $1 AND user_id = $2`, owner.WorkspaceID, m.ID); err != nil {
			t.Fatal(err)
		}
		wantTokenWorks(t, svc, secret, true)

		// Removed from the workspace.
		if _, err := ts.db.SQL().ExecContext(t.Context(), `DELETE FROM memberships
			WHERE workspace_id = $1 AND user_id = $2`, owner.WorkspaceID, m.ID); err != nil {
			t.Fatal(err)
		}
		wantTokenWorks(t, svc, secret, false)

		// Disabled: the member's token in its own workspace stops too.
		own := mustCreateToken(t, ts, m.Token, map[string]any{"name": "mine"})["token"].(string)
		wantTokenWorks(t, svc, own, true)
		disabled := true
		if _, err := ts.db.UpdateUser(t.Context(), m.ID, apiwallet.UserUpdate{Disabled: &disabled}, nil); err != nil {
			t.Fatal(err)
		}
		wantTokenWorks(t, svc, own, false)
	})
}

// A wallet access token never manages anything: every management endpoint
// answers 403 to a valid one, and 401 to one that is not valid, whatever
// its shape.
func TestTokenRefusedOnManagementAPI(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		a := ts.register("a@example.com")
		c := mustCreateToken(t, ts, a.Token, map[string]any{"name": "app"})
		secret, id := c["token"].(string), c["id"].(string)
		routes := []struct{ method, path string }{
			{"GET", "/auth/me"}, {"POST", "/auth/logout"}, {"GET", "/workspaces"},
			{"GET", "/tokens"}, {"POST", "/tokens"}, {"DELETE", "/tokens/" + id}, {"POST", "/tokens/" + id + "/rotate"},
			{"GET", "/audit"}, {"GET", "/keys"}, {"POST", "/keys"},
		}
		for _, rt := range routes {
			r := ts.do(rt.method, rt.path, secret, nil).want(t, http.StatusForbidden)
			if !strings.Contains(r.JSON()["detail"].(string), "wallet access tokens can only call the proxy endpoints") {
				t.Fatalf("%s %s: %s", rt.method, rt.path, r.Body)
			}
			bad := []string{"awk_notarealtoken", secret[:len(secret)-1] + "x", "awk_", secret + "x", "not-a-jwt", "a.b.c"}
			for _, b := range bad {
				r := ts.do(rt.method, rt.path, b, nil).want(t, http.StatusUnauthorized)
				if r.Header.Get("WWW-Authenticate") == "" {
					t.Fatalf("%s %s with %q: no WWW-Authenticate", rt.method, rt.path, b)
				}
			}
		}
		// Nothing changed: the token is still there and still works.
		if toks := ts.do("GET", "/tokens", a.Token, nil).want(t, 200).JSON()["tokens"].([]any); len(toks) != 1 ||
			toks[0].(map[string]any)["status"] != "active" {
			t.Fatalf("tokens after refused calls: %v", toks)
		}
		wantTokenWorks(t, tokenAuth(ts, time.Now), secret, true)
	})
}

// Another workspace's token is a 404 for revoke and rotate, exactly like a
// missing one, and nothing changes; lists never show it.
func TestTokenOtherWorkspaceIsNotFound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		a, b := ts.register("a@example.com"), ts.register("b@example.com")
		c := mustCreateToken(t, ts, a.Token, map[string]any{"name": "a's app"})
		secret, id := c["token"].(string), c["id"].(string)
		mustCreateToken(t, ts, b.Token, map[string]any{"name": "b's app"})

		missing := ts.do("DELETE", "/tokens/tok_doesnotexist", b.Token, nil).want(t, 404).JSON()
		foreign := ts.do("DELETE", "/tokens/"+id, b.Token, nil).want(t, 404).JSON()
		if missing["detail"] != foreign["detail"] {
			t.Fatalf("a foreign token answers differently from a missing one: %v / %v", foreign, missing)
		}
		ts.do("POST", "/tokens/"+id+"/rotate", b.Token, map[string]any{"grace_seconds": 0}).want(t, 404)
		ts.do("POST", "/tokens/tok_doesnotexist/rotate", b.Token, nil).want(t, 404)
		ts.do("DELETE", "/tokens/"+id, b.Token, nil, "X-Workspace-Id", a.WorkspaceID).want(t, 404)
		ts.do("GET", "/tokens", b.Token, nil, "X-Workspace-Id", a.WorkspaceID).want(t, 404)

		list := ts.do("GET", "/tokens", b.Token, nil).want(t, 200)
		if strings.Contains(string(list.Body), id) || len(list.JSON()["tokens"].([]any)) != 1 {
			t.Fatalf("b's list: %s", list.Body)
		}
		wantTokenWorks(t, tokenAuth(ts, time.Now), secret, true)
		tok := ts.do("GET", "/tokens", a.Token, nil).want(t, 200).JSON()["tokens"].([]any)[0].(map[string]any)
		if tok["status"] != "active" || tok["rotatedAt"] != nil {
			t.Fatalf("a's token changed: %v", tok)
		}
	})
}

// Viewers cannot create or revoke; members create and revoke their own;
// admins and owners revoke and rotate anyone's. Refusals are audited.
func TestTokenRoles(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		owner := ts.register("owner@example.com")
		admin, m1, m2, viewer := ts.register("admin@example.com"), ts.register("m1@example.com"),
			ts.register("m2@example.com"), ts.register("viewer@example.com")
		ws := owner.WorkspaceID
		addMember(t, ts, ws, admin.ID, apiwallet.WorkspaceAdmin)
		addMember(t, ts, ws, m1.ID, apiwallet.WorkspaceMember)
		addMember(t, ts, ws, m2.ID, apiwallet.WorkspaceMember)
		addMember(t, ts, ws, viewer.ID, apiwallet.WorkspaceViewer)
		in := "X-Workspace-Id"

		ts.do("POST", "/tokens", viewer.Token, map[string]any{"name": "v"}, in, ws).want(t, 403)
		t1 := mustCreateToken(t, ts, m1.Token, map[string]any{"name": "m1"}, in, ws)["id"].(string)
		t2 := mustCreateToken(t, ts, m1.Token, map[string]any{"name": "m1 second"}, in, ws)["id"].(string)
		t3 := mustCreateToken(t, ts, m2.Token, map[string]any{"name": "m2"}, in, ws)["id"].(string)
		t4 := mustCreateToken(t, ts, owner.Token, map[string]any{"name": "owner"}, in, ws)["id"].(string)

		// Viewers read the list but change nothing.
		if toks := ts.do("GET", "/tokens", viewer.Token, nil, in, ws).want(t, 200).JSON()["tokens"].([]any); len(toks) != 4 {
			t.Fatalf("viewer lists %d tokens", len(toks))
		}
		ts.do("DELETE", "/tokens/"+t1, viewer.Token, nil, in, ws).want(t, 403)
		ts.do("POST", "/tokens/"+t1+"/rotate", viewer.Token, nil, in, ws).want(t, 403)
		// A member manages only its own.
		ts.do("DELETE", "/tokens/"+t3, m1.Token, nil, in, ws).want(t, 403)
		ts.do("POST", "/tokens/"+t4+"/rotate", m1.Token, nil, in, ws).want(t, 403)
		ts.do("POST", "/tokens/"+t1+"/rotate", m1.Token, nil, in, ws).want(t, 200)
		ts.do("DELETE", "/tokens/"+t1, m1.Token, nil, in, ws).want(t, 204)
		// Admins and owners manage anyone's.
		ts.do("POST", "/tokens/"+t3+"/rotate", admin.Token, nil, in, ws).want(t, 200)
		ts.do("DELETE", "/tokens/"+t3, admin.Token, nil, in, ws).want(t, 204)
		ts.do("DELETE", "/tokens/"+t2, owner.Token, nil, in, ws).want(t, 204)

		toks := ts.do("GET", "/tokens", owner.Token, nil, in, ws).want(t, 200).JSON()["tokens"].([]any)
		status := map[string]string{}
		for _, tk := range toks {
			status[tk.(map[string]any)["id"].(string)] = tk.(map[string]any)["status"].(string)
		}
		if status[t1] != "revoked" || status[t2] != "revoked" || status[t3] != "revoked" || status[t4] != "active" {
			t.Fatalf("statuses: %v", status)
		}
		denied := 0
		for _, ev := range ts.do("GET", "/audit?action=token.", owner.Token, nil, in, ws).want(t, 200).JSON()["events"].([]any) {
			if ev.(map[string]any)["outcome"] == "denied" {
				denied++
			}
		}
		if denied != 5 {
			t.Fatalf("%d denied token events, want 5", denied)
		}
	})
}

// Bad input is a 400 naming each field, and creates nothing.
func TestTokenValidation(t *testing.T) {
	ts := newTestServer(t, t.TempDir()+"/w.db")
	a := ts.register("a@example.com")
	cases := []struct {
		body  string
		field string
	}{
		{`{}`, "name"},
		{`{"name":"  "}`, "name"},
		{`{"name":"` + strings.Repeat("x", 101) + `"}`, "name"},
		{`{"name":"x","services":["open ai"]}`, "services[0]"},
		{`{"name":"x","services":["openai",""]}`, "services[1]"},
		{`{"name":"x","services":"openai"}`, "services"},
		{`{"name":"x","rate_limit_per_minute":-1}`, "rate_limit_per_minute"},
		{`{"name":"x","expires_at":"2001-01-01T00:00:00Z"}`, "expires_at"},
		{`{"name":"x","expires_at":"next week"}`, "expires_at"},
		{`{"name":"x","expiresAt":"2099-01-01T00:00:00Z"}`, "expiresAt"},
		{`{"name":"x","token":"awk_chosen"}`, "token"},
	}
	for _, c := range cases {
		p := ts.do("POST", "/tokens", a.Token, c.body).want(t, 400).JSON()
		found := false
		for _, e := range p["errors"].([]any) {
			found = found || e.(map[string]any)["field"] == c.field
		}
		if !found {
			t.Fatalf("%s: errors do not name %q: %v", c.body, c.field, p)
		}
	}
	if toks := ts.do("GET", "/tokens", a.Token, nil).want(t, 200).JSON()["tokens"].([]any); len(toks) != 0 {
		t.Fatalf("bad input created %d tokens", len(toks))
	}
	ts.do("GET", "/tokens?limit=0", a.Token, nil).want(t, 400)
	ts.do("GET", "/tokens?limit=x", a.Token, nil).want(t, 400)
}

// Listing pages by ID with nextAfter.
func TestTokenListPaging(t *testing.T) {
	ts := newTestServer(t, t.TempDir()+"/w.db")
	a := ts.register("a@example.com")
	var ids []string
	for i := range 5 {
		ids = append(ids, mustCreateToken(t, ts, a.Token, map[string]any{"name": "t" + string(rune('0'+i))})["id"].(string))
	}
	var got []string
	after := ""
	for page := 0; ; page++ {
		m := ts.do("GET", "/tokens?limit=2&after="+after, a.Token, nil).want(t, 200).JSON()
		for _, tk := range m["tokens"].([]any) {
			got = append(got, tk.(map[string]any)["id"].(string))
		}
		next, _ := m["nextAfter"].(string)
		if next == "" {
			break
		}
		if page > 5 {
			t.Fatal("paging does not end")
		}
		after = next
	}
	// IDs order by creation time to the millisecond; within one, at random.
	slices.Sort(ids)
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("pages gave %v, want %v", got, ids)
	}
}

// Garbage never reaches the database and gets the one bad-token error.
func TestAuthenticateTokenRejectsGarbage(t *testing.T) {
	ts := newTestServer(t, t.TempDir()+"/w.db")
	a := ts.register("a@example.com")
	secret := mustCreateToken(t, ts, a.Token, map[string]any{"name": "app"})["token"].(string)
	svc := tokenAuth(ts, time.Now)
	flipped := []byte(secret)
	if flipped[10] == 'a' {
		flipped[10] = 'b'
	} else {
		flipped[10] = 'a'
	}
	for _, raw := range []string{"", "awk_", "awk_short", strings.ToUpper(secret), secret + "a", secret[:len(secret)-1],
		"xyz_" + secret[4:], string(flipped), "awk_" + strings.Repeat("1", 52), a.Token} {
		wantTokenWorks(t, svc, raw, false)
	}
	wantTokenWorks(t, svc, secret, true)
}

// Last use is recorded off the request path, at most once a minute per
// token.
func TestTokenLastUsed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		a := ts.register("a@example.com")
		secret := mustCreateToken(t, ts, a.Token, map[string]any{"name": "app"})["token"].(string)
		lastUsed := func() string {
			v, _ := ts.do("GET", "/tokens", a.Token, nil).want(t, 200).JSON()["tokens"].([]any)[0].(map[string]any)["lastUsedAt"].(string)
			return v
		}
		t0 := time.Now().UTC().Truncate(time.Second)
		now := t0
		svc := tokenAuth(ts, func() time.Time { return now })
		wantTokenWorks(t, svc, secret, true)
		svc.Wait()
		if got := lastUsed(); got != t0.Format(time.RFC3339) {
			t.Fatalf("lastUsedAt = %q, want %s", got, t0.Format(time.RFC3339))
		}
		now = t0.Add(30 * time.Second)
		for range 20 {
			wantTokenWorks(t, svc, secret, true)
		}
		svc.Wait()
		if got := lastUsed(); got != t0.Format(time.RFC3339) {
			t.Fatalf("lastUsedAt moved within the minute: %q", got)
		}
		now = t0.Add(2 * time.Minute)
		wantTokenWorks(t, svc, secret, true)
		svc.Wait()
		if got := lastUsed(); got != now.Format(time.RFC3339) {
			t.Fatalf("lastUsedAt = %q, want %s", got, now.Format(time.RFC3339))
		}
	})
}
