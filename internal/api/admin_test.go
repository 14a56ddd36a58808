package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/auth"
	"github.com/apikeywallet/apiwallet/internal/ratelimit"
)

// makeAdmin gives a the global ADMIN role, as `apiwallet user create
// --admin` would, and logs it in again (the role change revoked its token).
func (ts *testServer) makeAdmin(a account) account {
	ts.t.Helper()
	role := apiwallet.RoleAdmin
	if _, err := ts.db.UpdateUser(ts.t.Context(), a.ID, apiwallet.UserUpdate{Role: &role}, nil); err != nil {
		ts.t.Fatal(err)
	}
	a.Token = ts.do("POST", "/auth/login", "", map[string]string{"email": a.Email, "password": "correct horse battery"}).
		want(ts.t, 200).JSON()["token"].(string)
	return a
}

// tokenAuth is an auth.Service over the test database, for checking wallet
// access tokens the way the proxy does.
func (ts *testServer) tokenAuth() *auth.Service {
	return &auth.Service{Users: ts.db, Workspaces: ts.db, Audit: ts.db, Tokens: ts.db, Limiter: ratelimit.NewMemory(time.Now)}
}

// Admin endpoints refuse a USER with 403 and change nothing.
func TestAdminRefusesUsers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		u, v := ts.register("u@example.com"), ts.register("v@example.com")
		before := ts.count(`SELECT COUNT(*) FROM audit_events`)
		ts.do("GET", "/admin/users", u.Token, nil).want(t, 403)
		ts.do("GET", "/admin/users/"+v.ID, u.Token, nil).want(t, 403)
		ts.do("PATCH", "/admin/users/"+v.ID, u.Token, map[string]any{"disabled": true}).want(t, 403)
		ts.do("PATCH", "/admin/users/"+u.ID, u.Token, map[string]any{"role": "ADMIN"}).want(t, 403)
		ts.do("PATCH", "/admin/workspaces/"+u.WorkspaceID, u.Token, map[string]any{"plan": "enterprise"}).want(t, 403)
		ts.do("GET", "/admin/users", "", nil).want(t, 401)
		if ts.count(`SELECT COUNT(*) FROM users WHERE role = 'ADMIN' OR disabled = $1`, true) != 0 ||
			ts.count(`SELECT COUNT(*) FROM workspaces WHERE plan <> 'free'`) != 0 ||
			ts.count(`SELECT COUNT(*) FROM audit_events`) != before {
			t.Fatal("a USER changed something through /admin")
		}
	})
}

func TestAdminUsers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		root := ts.makeAdmin(ts.register("root@example.com"))
		bob, carol := ts.register("bob@example.com"), ts.register("carol@example.com")

		// Listing, filtering and paging.
		users := ts.do("GET", "/admin/users", root.Token, nil).want(t, 200).JSON()["users"].([]any)
		if len(users) != 3 {
			t.Fatalf("users: %v", users)
		}
		one := ts.do("GET", "/admin/users?email=BOB@example.com", root.Token, nil).want(t, 200).JSON()["users"].([]any)
		if len(one) != 1 || one[0].(map[string]any)["id"] != bob.ID || one[0].(map[string]any)["disabled"] != false {
			t.Fatalf("filter: %v", one)
		}
		page := ts.do("GET", "/admin/users?limit=2", root.Token, nil).want(t, 200).JSON()
		next, _ := page["next"].(string)
		rest := ts.do("GET", "/admin/users?limit=2&after="+next, root.Token, nil).want(t, 200).JSON()
		if len(page["users"].([]any)) != 2 || next == "" || len(rest["users"].([]any)) != 1 || rest["next"] != nil {
			t.Fatalf("paging: %v / %v", page, rest)
		}
		ts.do("GET", "/admin/users?limit=0", root.Token, nil).want(t, 400)
		got := ts.do("GET", "/admin/users/"+bob.ID, root.Token, nil).want(t, 200).JSON()
		if got["email"] != bob.Email || got["plan"] != "free" {
			t.Fatalf("get user: %v", got)
		}
		ts.do("GET", "/admin/users/usr_nobody", root.Token, nil).want(t, 404)

		// Disabling stops the user's login token and access tokens at once.
		tok := ts.do("POST", "/tokens", bob.Token, map[string]any{"name": "ci"}).want(t, 201).JSON()["token"].(string)
		if _, _, err := ts.tokenAuth().AuthenticateToken(t.Context(), tok); err != nil {
			t.Fatalf("access token before disabling: %v", err)
		}
		d := ts.do("PATCH", "/admin/users/"+bob.ID, root.Token, map[string]any{"disabled": true}).want(t, 200).JSON()
		if d["disabled"] != true {
			t.Fatalf("disable: %v", d)
		}
		ts.do("GET", "/auth/me", bob.Token, nil).want(t, 401)
		ts.do("POST", "/auth/login", "", map[string]string{"email": bob.Email, "password": "correct horse battery"}).want(t, 401)
		if _, _, err := ts.tokenAuth().AuthenticateToken(t.Context(), tok); err == nil {
			t.Fatal("a disabled user's access token still works")
		}
		// Enabling lets the user log in again (old JWTs stay revoked).
		ts.do("PATCH", "/admin/users/"+bob.ID, root.Token, map[string]any{"disabled": false}).want(t, 200)
		ts.do("GET", "/auth/me", bob.Token, nil).want(t, 401)
		ts.do("POST", "/auth/login", "", map[string]string{"email": bob.Email, "password": "correct horse battery"}).want(t, 200)

		// Plans: the user's personal workspace, or any workspace.
		p := ts.do("PATCH", "/admin/users/"+carol.ID, root.Token, map[string]any{"plan": "professional"}).want(t, 200).JSON()
		if p["plan"] != "professional" || ts.count(`SELECT COUNT(*) FROM workspaces WHERE id = $1 AND plan = 'professional'`, carol.WorkspaceID) != 1 {
			t.Fatalf("user plan: %v", p)
		}
		ws := ts.do("PATCH", "/admin/workspaces/"+carol.WorkspaceID, root.Token, map[string]any{"plan": "enterprise"}).want(t, 200).JSON()
		if ws["plan"] != "enterprise" || ws["id"] != carol.WorkspaceID {
			t.Fatalf("workspace plan: %v", ws)
		}
		ts.do("PATCH", "/admin/workspaces/ws_nope", root.Token, map[string]any{"plan": "free"}).want(t, 404)
		ts.do("PATCH", "/admin/workspaces/"+carol.WorkspaceID, root.Token, map[string]any{"plan": "gold"}).want(t, 400)

		// Bad input changes nothing.
		for _, body := range []map[string]any{{}, {"plan": "gold"}, {"role": "ROOT"}, {"disabled": "yes"}, {"email": "x@y.z"}} {
			ts.do("PATCH", "/admin/users/"+carol.ID, root.Token, body).want(t, 400)
		}
		ts.do("PATCH", "/admin/users/usr_nobody", root.Token, map[string]any{"disabled": true}).want(t, 404)

		// The last ADMIN can neither demote nor disable itself.
		ts.do("PATCH", "/admin/users/"+root.ID, root.Token, map[string]any{"role": "USER"}).want(t, http.StatusConflict)
		ts.do("PATCH", "/admin/users/"+root.ID, root.Token, map[string]any{"disabled": true}).want(t, http.StatusConflict)
		ts.do("GET", "/admin/users", root.Token, nil).want(t, 200)
		// With a second ADMIN it can; the role change revokes its session.
		ts.do("PATCH", "/admin/users/"+carol.ID, root.Token, map[string]any{"role": "ADMIN"}).want(t, 200)
		ts.do("PATCH", "/admin/users/"+root.ID, root.Token, map[string]any{"role": "USER"}).want(t, 200)
		ts.do("GET", "/admin/users", root.Token, nil).want(t, 401)

		// Every change is audited, by the admin, in the target's workspace.
		evs, _ := ts.db.FindAuditEvents(t.Context(), apiwallet.AuditFilter{ActorID: root.ID, Limit: 100})
		seen := map[string]int{}
		for _, ev := range evs {
			seen[ev.Action]++
			if ev.Action == "user.disable" && (ev.TargetID != bob.ID || ev.WorkspaceID != bob.WorkspaceID) {
				t.Fatalf("user.disable event: %+v", ev)
			}
		}
		if seen["user.disable"] != 1 || seen["user.enable"] != 1 || seen["user.role_change"] != 2 || seen["workspace.plan_change"] != 2 {
			t.Fatalf("admin audit events: %v", seen)
		}
		if _, err := ts.db.VerifyAudit(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}
