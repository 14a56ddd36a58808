package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/apikeywallet/apiwallet"
)

// storeKey stores an upstream key through the API and returns its id.
func (ts *testServer) storeKey(a account, wsID, secret string) string {
	ts.t.Helper()
	r := ts.do("POST", "/keys", a.Token, map[string]any{"key": secret, "service": "stripe", "tier": "free",
		"metadata": map[string]any{"type": "payment", "quota": 1000, "description": "test key"}},
		"X-Workspace-Id", wsID).want(ts.t, 201)
	return r.JSON()["id"].(string)
}

// workspaceTables lists every table with a workspace_id column.
func (ts *testServer) workspaceTables() []string {
	ts.t.Helper()
	q := `SELECT m.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
		WHERE m.type = 'table' AND p.name = 'workspace_id'`
	if ts.db.Dialect() == "postgres" {
		q = `SELECT table_name FROM information_schema.columns
			WHERE table_schema = current_schema() AND column_name = 'workspace_id'`
	}
	rows, err := ts.db.SQL().QueryContext(context.Background(), q)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			ts.t.Fatal(err)
		}
		names = append(names, n)
	}
	return names
}

// The export holds the caller's profile, memberships, invitations, audit
// events, keys and tokens — masked — and never a password hash or secret.
func TestAccountExport(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		ann, ben := ts.register("ann@example.com"), ts.register("ben@example.com")
		wsID := ts.createTeam(ben, "Ben's team")
		ts.join(ben, wsID, ann, "member")
		ts.invite(ben, ts.createTeam(ben, "Other"), ann.Email, "viewer")
		secret := "sk_live_" + strings.Repeat("a1B2", 6) + "Zz9x"
		keyID := ts.storeKey(ann, ann.WorkspaceID, secret)
		bensKey := ts.storeKey(ben, wsID, "sk_live_"+strings.Repeat("q7", 12)+"W3rt")
		tok := ts.do("POST", "/tokens", ann.Token, map[string]any{"name": "ci"}).want(t, 201).JSON()
		tokSecret := tok["token"].(string)

		r := ts.do("GET", "/account/export", ann.Token, nil).want(t, 200)
		if !strings.Contains(r.Header.Get("Content-Disposition"), "attachment") {
			t.Fatalf("Content-Disposition = %q", r.Header.Get("Content-Disposition"))
		}
		body := string(r.Body)
		for _, leak := range []string{secret, tokSecret, "argon2", "password", "passwordHash", "sealed", "ben@example.com", bensKey} {
			if strings.Contains(body, leak) {
				t.Fatalf("the export contains %q:\n%s", leak, body)
			}
		}
		var ex struct {
			Profile     map[string]any   `json:"profile"`
			Memberships []map[string]any `json:"memberships"`
			Invitations []map[string]any `json:"invitations"`
			AuditEvents []map[string]any `json:"auditEvents"`
			Keys        []map[string]any `json:"keys"`
			Tokens      []map[string]any `json:"tokens"`
		}
		if err := json.Unmarshal(r.Body, &ex); err != nil {
			t.Fatal(err)
		}
		if ex.Profile["id"] != ann.ID || ex.Profile["email"] != ann.Email || len(ex.Memberships) != 2 {
			t.Fatalf("profile/memberships: %v %v", ex.Profile, ex.Memberships)
		}
		if len(ex.Invitations) != 2 { // the accepted one and the pending one
			t.Fatalf("invitations: %v", ex.Invitations)
		}
		actions := map[string]bool{}
		for _, ev := range ex.AuditEvents {
			actions[ev["action"].(string)] = true
		}
		if !actions["user.create"] || !actions["invitation.accept"] || !actions["key.create"] || actions["invitation.create"] {
			t.Fatalf("audit events by the caller only: %v", actions)
		}
		if len(ex.Keys) != 1 || ex.Keys[0]["id"] != keyID || ex.Keys[0]["maskedKey"] != "sk_live_…Zz9x" {
			t.Fatalf("keys: %v", ex.Keys)
		}
		if len(ex.Tokens) != 1 || ex.Tokens[0]["id"] != tok["id"] || !strings.HasPrefix(ex.Tokens[0]["masked"].(string), "awk_…") {
			t.Fatalf("tokens: %v", ex.Tokens)
		}
		ts.do("GET", "/account/export", "", nil).want(t, 401)
	})
}

// Erasure: a wrong password changes nothing; the right one deletes the
// user, every workspace it solely owns with all its rows (its data key
// first, so leftover ciphertext is unreadable), and its membership of
// shared ones, which stay. The audit chain still verifies and keeps a
// pseudonymous record.
func TestDeleteAccount(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		ann, ben := ts.register("ann@example.com"), ts.register("ben@example.com")
		solo := ts.createTeam(ann, "Ann's team")
		ts.join(ann, solo, ben, "admin")
		shared := ts.createTeam(ben, "Shared")
		ts.join(ben, shared, ann, "owner")
		ts.storeKey(ann, ann.WorkspaceID, "sk_live_"+strings.Repeat("p", 20)+"1111")
		ts.storeKey(ann, solo, "sk_live_"+strings.Repeat("s", 20)+"2222")
		ts.storeKey(ann, shared, "sk_live_"+strings.Repeat("h", 20)+"3333")
		ts.do("POST", "/tokens", ann.Token, map[string]any{"name": "ci"}, "X-Workspace-Id", solo).want(t, 201)
		ts.invite(ann, shared, "zed@example.com", "viewer")
		gone := []string{ann.WorkspaceID, solo}
		if n := ts.count(`SELECT COUNT(*) FROM data_keys WHERE workspace_id IN ($1, $2, $3)`, ann.WorkspaceID, solo, shared); n != 3 {
			t.Fatalf("setup: %d data keys", n)
		}
		tables := ts.workspaceTables()
		snapshot := func() string {
			var b strings.Builder
			// The audit log is left out: it records the refused attempts.
			for _, tbl := range append(tables, "users", "workspaces") {
				if tbl == "audit_events" {
					continue
				}
				fmt.Fprintf(&b, "%s=%d ", tbl, ts.count(`SELECT COUNT(*) FROM `+tbl))
			}
			return b.String()
		}

		// Wrong, missing or oversized passwords change nothing.
		before := snapshot()
		for _, body := range []any{map[string]string{"password": "not my password"}, map[string]string{}, nil,
			map[string]string{"password": strings.Repeat("x", 300)}} {
			r := ts.do("DELETE", "/account", ann.Token, body)
			if r.Status != 400 {
				t.Fatalf("DELETE /account %v: %d %s", body, r.Status, r.Body)
			}
		}
		ts.do("GET", "/auth/me", ann.Token, nil).want(t, 200)
		if after := snapshot(); after != before {
			t.Fatalf("a refused erasure changed rows:\n%s\n%s", before, after)
		}

		r := ts.do("DELETE", "/account", ann.Token, map[string]string{"password": "correct horse battery"}).want(t, 200).JSON()
		if fmt.Sprint(r["deletedWorkspaces"]) != fmt.Sprint([]any{gone[0], gone[1]}) &&
			fmt.Sprint(r["deletedWorkspaces"]) != fmt.Sprint([]any{gone[1], gone[0]}) {
			t.Fatalf("deleted: %v", r)
		}
		if fmt.Sprint(r["leftWorkspaces"]) != fmt.Sprint([]any{shared}) {
			t.Fatalf("left: %v", r)
		}
		// The session is dead and the account gone.
		ts.do("GET", "/auth/me", ann.Token, nil).want(t, 401)
		ts.do("POST", "/auth/login", "", map[string]string{"email": ann.Email, "password": "correct horse battery"}).want(t, 401)
		if ts.count(`SELECT COUNT(*) FROM users WHERE id = $1 OR email = $2`, ann.ID, ann.Email) != 0 {
			t.Fatal("the user row survived")
		}

		// Crypto-shredding: no data key, and no row at all, of a solely
		// owned workspace remains, in any table but the audit log.
		for _, ws := range gone {
			if ts.count(`SELECT COUNT(*) FROM data_keys WHERE workspace_id = $1`, ws) != 0 {
				t.Fatalf("the data key of %s survived", ws)
			}
			if ts.count(`SELECT COUNT(*) FROM workspaces WHERE id = $1`, ws) != 0 {
				t.Fatalf("workspace %s survived", ws)
			}
			for _, tbl := range tables {
				if tbl != "audit_events" && ts.count(`SELECT COUNT(*) FROM `+tbl+` WHERE workspace_id = $1`, ws) != 0 {
					t.Fatalf("%s still holds rows of erased workspace %s", tbl, ws)
				}
			}
		}
		if ts.count(`SELECT COUNT(*) FROM invitations WHERE email = $1 OR invited_by = $2 OR accepted_by = $2`, ann.Email, ann.ID) != 0 {
			t.Fatal("invitations naming the erased user survived")
		}
		// The shared workspace stays, with its key and data key, minus Ann.
		ts.do("GET", "/workspaces/"+solo, ben.Token, nil).want(t, 404)
		members := ts.do("GET", "/workspaces/"+shared+"/members", ben.Token, nil).want(t, 200).JSON()["members"].([]any)
		if len(members) != 1 || members[0].(map[string]any)["userId"] != ben.ID {
			t.Fatalf("shared members: %v", members)
		}
		keys := ts.do("GET", "/keys", ben.Token, nil, "X-Workspace-Id", shared).want(t, 200).JSON()["keys"].([]any)
		if len(keys) != 1 || ts.count(`SELECT COUNT(*) FROM data_keys WHERE workspace_id = $1`, shared) != 1 {
			t.Fatalf("shared workspace lost its key: %v", keys)
		}

		// The chain verifies; the deletion is recorded by id, without email.
		if _, err := ts.db.VerifyAudit(t.Context()); err != nil {
			t.Fatal(err)
		}
		evs, _ := ts.db.FindAuditEvents(t.Context(), apiwallet.AuditFilter{Action: "user.delete"})
		var ok, failed int
		for _, ev := range evs {
			if ev.ActorID != ann.ID || ev.TargetID != ann.ID {
				t.Fatalf("user.delete event: %+v", ev)
			}
			if ev.Outcome == apiwallet.OutcomeSuccess {
				ok++
			} else {
				failed++
			}
		}
		if ok != 1 || failed != 2 { // two wrong passwords reached the check
			t.Fatalf("user.delete events: %d success, %d failure", ok, failed)
		}
		if n := ts.count(`SELECT COUNT(*) FROM audit_events WHERE details LIKE $1 OR target_id LIKE $1 OR actor_id LIKE $1`, "%ann@example.com%"); n != 0 {
			t.Fatalf("%d audit events hold the erased email", n)
		}
	})
}

// Erasure attempts are throttled per account.
func TestDeleteAccountThrottle(t *testing.T) {
	ts := newTestServer(t, t.TempDir()+"/w.db")
	a := ts.register("a@example.com")
	var last *response
	for range 6 {
		last = ts.do("DELETE", "/account", a.Token, map[string]string{"password": "wrong password!!"})
	}
	last.want(t, http.StatusTooManyRequests)
	ts.do("DELETE", "/account", a.Token, map[string]string{"password": "correct horse battery"}).want(t, 429)
	ts.do("GET", "/auth/me", a.Token, nil).want(t, 200)
}
