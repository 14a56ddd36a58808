package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// count runs a COUNT(*) query against the test database.
func (ts *testServer) count(q string, args ...any) int {
	ts.t.Helper()
	var n int
	if err := ts.db.SQL().QueryRowContext(context.Background(), q, args...).Scan(&n); err != nil {
		ts.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// createTeam makes a team workspace owned by owner and returns its id.
func (ts *testServer) createTeam(owner account, name string) string {
	ts.t.Helper()
	m := ts.do("POST", "/workspaces", owner.Token, map[string]string{"name": name}).want(ts.t, 201).JSON()
	return m["id"].(string)
}

// invite invites email to wsID as role and returns the invitation body.
func (ts *testServer) invite(by account, wsID, email, role string) map[string]any {
	ts.t.Helper()
	return ts.do("POST", "/workspaces/"+wsID+"/invitations", by.Token,
		map[string]string{"email": email, "role": role}).want(ts.t, 201).JSON()
}

// join invites a to wsID as role and accepts for a.
func (ts *testServer) join(by account, wsID string, a account, role string) {
	ts.t.Helper()
	tok := ts.invite(by, wsID, a.Email, role)["token"].(string)
	ts.do("POST", "/invitations/accept", a.Token, map[string]string{"token": tok}).want(ts.t, 200)
}

func (ts *testServer) roleIn(wsID, userID string) string {
	ts.t.Helper()
	var role string
	err := ts.db.SQL().QueryRowContext(context.Background(),
		`SELECT role FROM memberships WHERE workspace_id = $1 AND user_id = $2`, wsID, userID).Scan(&role)
	if err != nil {
		return ""
	}
	return role
}

// The whole team flow: create, invite, accept, change a role, remove; and
// a removed member's access ends with the very next request.
func TestTeamFlow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		owner, bob, carol := ts.register("owner@example.com"), ts.register("bob@example.com"), ts.register("carol@example.com")

		r := ts.do("POST", "/workspaces", owner.Token, map[string]string{"name": "  Acme  "}).want(t, 201)
		ws := r.JSON()
		wsID := ws["id"].(string)
		if ws["name"] != "Acme" || ws["personal"] != false || ws["role"] != "owner" || ws["plan"] != "free" ||
			r.Header.Get("Location") != "/workspaces/"+wsID {
			t.Fatalf("create workspace: %s", r.Body)
		}
		ts.do("POST", "/workspaces", owner.Token, map[string]string{"name": " "}).want(t, 400)
		ts.do("GET", "/workspaces/"+wsID, owner.Token, nil).want(t, 200)
		if list := ts.do("GET", "/workspaces", owner.Token, nil).want(t, 200).JSON()["workspaces"].([]any); len(list) != 2 {
			t.Fatalf("GET /workspaces: %v", list)
		}

		// The token is shown once and stored only as its SHA-256.
		inv := ts.invite(owner, wsID, "Bob@Example.com", "member")
		token := inv["token"].(string)
		exp, _ := time.Parse(time.RFC3339, inv["expiresAt"].(string))
		if !strings.HasPrefix(token, "awi_") || len(token) < 40 || inv["email"] != "bob@example.com" ||
			time.Until(exp) < 7*24*time.Hour-time.Minute || time.Until(exp) > 7*24*time.Hour+time.Minute {
			t.Fatalf("invitation: %v", inv)
		}
		sum := sha256.Sum256([]byte(token))
		if ts.count(`SELECT COUNT(*) FROM invitations WHERE token_hash = $1`, hex.EncodeToString(sum[:])) != 1 ||
			ts.count(`SELECT COUNT(*) FROM invitations WHERE token_hash = $1`, token) != 0 {
			t.Fatal("the invitation token is not stored as its hash")
		}
		list := ts.do("GET", "/workspaces/"+wsID+"/invitations", owner.Token, nil).want(t, 200)
		if strings.Contains(string(list.Body), token) || !strings.Contains(string(list.Body), inv["id"].(string)) {
			t.Fatalf("invitation list: %s", list.Body)
		}

		// Only the invited email accepts it, once.
		ts.do("POST", "/invitations/accept", carol.Token, map[string]string{"token": token}).want(t, 403)
		ts.do("GET", "/workspaces/"+wsID+"/members", bob.Token, nil).want(t, 404)
		acc := ts.do("POST", "/invitations/accept", bob.Token, map[string]string{"token": token}).want(t, 200).JSON()
		if w := acc["workspace"].(map[string]any); w["id"] != wsID || w["role"] != "member" {
			t.Fatalf("accept: %v", acc)
		}
		ts.do("POST", "/invitations/accept", bob.Token, map[string]string{"token": token}).want(t, 409)
		ts.do("POST", "/invitations/accept", bob.Token, map[string]string{"token": "awi_unknown"}).want(t, 404)
		ts.do("POST", "/invitations/accept", bob.Token, map[string]string{"token": ""}).want(t, 400)

		members := ts.do("GET", "/workspaces/"+wsID+"/members", bob.Token, nil).want(t, 200).JSON()["members"].([]any)
		if len(members) != 2 || members[0].(map[string]any)["userId"] != owner.ID || members[1].(map[string]any)["role"] != "member" {
			t.Fatalf("members: %v", members)
		}
		ts.do("GET", "/auth/me", bob.Token, nil, "X-Workspace-Id", wsID).want(t, 200)

		// Roles: an admin invites (not owners) and cannot touch owners;
		// the last owner cannot step down.
		m := ts.do("PATCH", "/workspaces/"+wsID+"/members/"+bob.ID, owner.Token, map[string]string{"role": "admin"}).want(t, 200).JSON()
		if m["role"] != "admin" || m["userId"] != bob.ID {
			t.Fatalf("role change: %v", m)
		}
		ts.do("PATCH", "/workspaces/"+wsID+"/members/"+bob.ID, owner.Token, map[string]string{"role": "boss"}).want(t, 400)
		ts.do("POST", "/workspaces/"+wsID+"/invitations", bob.Token, map[string]string{"email": carol.Email, "role": "owner"}).want(t, 403)
		ts.join(bob, wsID, carol, "viewer")
		ts.do("PATCH", "/workspaces/"+wsID+"/members/"+owner.ID, bob.Token, map[string]string{"role": "member"}).want(t, 403)
		ts.do("PATCH", "/workspaces/"+wsID+"/members/"+bob.ID, bob.Token, map[string]string{"role": "owner"}).want(t, 403)
		ts.do("DELETE", "/workspaces/"+wsID+"/members/"+owner.ID, bob.Token, nil).want(t, 403)
		ts.do("PATCH", "/workspaces/"+wsID+"/members/"+owner.ID, owner.Token, map[string]string{"role": "admin"}).want(t, 409)
		ts.do("DELETE", "/workspaces/"+wsID+"/members/"+owner.ID, owner.Token, nil).want(t, 409)
		if ts.roleIn(wsID, owner.ID) != "owner" || ts.roleIn(wsID, bob.ID) != "admin" {
			t.Fatal("a refused change changed a role")
		}

		// Removal ends access at once, on every route, and for the access
		// tokens the member created there.
		tok := ts.do("POST", "/tokens", bob.Token, map[string]any{"name": "ci"}, "X-Workspace-Id", wsID).want(t, 201).JSON()["token"].(string)
		if _, _, err := ts.tokenAuth().AuthenticateToken(t.Context(), tok); err != nil {
			t.Fatalf("member's access token: %v", err)
		}
		ts.do("DELETE", "/workspaces/"+wsID+"/members/"+bob.ID, owner.Token, nil).want(t, 204)
		if _, _, err := ts.tokenAuth().AuthenticateToken(t.Context(), tok); err == nil {
			t.Fatal("a removed member's access token still works")
		}
		ts.do("GET", "/workspaces/"+wsID+"/members", bob.Token, nil).want(t, 404)
		ts.do("GET", "/workspaces/"+wsID, bob.Token, nil).want(t, 404)
		ts.do("GET", "/auth/me", bob.Token, nil, "X-Workspace-Id", wsID).want(t, 404)
		ts.do("GET", "/keys", bob.Token, nil, "X-Workspace-Id", wsID).want(t, 404)
		// A member may leave on their own.
		ts.do("DELETE", "/workspaces/"+wsID+"/members/"+carol.ID, carol.Token, nil).want(t, 204)
		ts.do("GET", "/workspaces/"+wsID, carol.Token, nil).want(t, 404)

		// Each step left its audit event, with no email in it.
		evs, err := ts.db.FindAuditEvents(t.Context(), apiwallet.AuditFilter{WorkspaceID: wsID, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, ev := range evs {
			seen[ev.Action]++
			for _, v := range ev.Details {
				if strings.Contains(v, "@") {
					t.Fatalf("audit event %s holds an email: %v", ev.Action, ev.Details)
				}
			}
		}
		for action, n := range map[string]int{"workspace.create": 1, "invitation.create": 2, "invitation.accept": 2,
			"member.role_change": 1, "member.remove": 2} {
			if seen[action] != n {
				t.Fatalf("audit: %d %s events, want %d (all: %v)", seen[action], action, n, seen)
			}
		}
		if _, err := ts.db.VerifyAudit(t.Context()); err != nil {
			t.Fatal(err)
		}
		// The owner revokes a pending invitation; it can no longer be used.
		dave := ts.register("dave@example.com")
		pending := ts.invite(owner, wsID, dave.Email, "viewer")
		ts.do("DELETE", "/workspaces/"+wsID+"/invitations/"+pending["id"].(string), owner.Token, nil).want(t, 204)
		ts.do("POST", "/invitations/accept", dave.Token, map[string]string{"token": pending["token"].(string)}).want(t, 404)
	})
}

// An expired invitation cannot be accepted and changes nothing; the
// inviter's choice of expiry is bounded.
func TestInvitationExpiry(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		owner, bob := ts.register("owner@example.com"), ts.register("bob@example.com")
		wsID := ts.createTeam(owner, "Acme")
		inv := ts.invite(owner, wsID, bob.Email, "member")
		if _, err := ts.db.SQL().ExecContext(t.Context(), `UPDATE invitations SET expires_at = $1 WHERE id = $2`,
			time.Now().Add(-time.Second).UnixMicro(), inv["id"]); err != nil {
			t.Fatal(err)
		}
		r := ts.do("POST", "/invitations/accept", bob.Token, map[string]string{"token": inv["token"].(string)}).want(t, 400)
		if !strings.Contains(r.JSON()["detail"].(string), "expired") {
			t.Fatalf("expired: %s", r.Body)
		}
		if ts.roleIn(wsID, bob.ID) != "" || ts.count(`SELECT COUNT(*) FROM invitations WHERE accepted_at IS NOT NULL`) != 0 {
			t.Fatal("an expired invitation changed something")
		}

		at := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
		short := ts.do("POST", "/workspaces/"+wsID+"/invitations", owner.Token,
			map[string]string{"email": bob.Email, "expiresAt": at}).want(t, 201).JSON()
		if short["expiresAt"] != at || short["role"] != "member" {
			t.Fatalf("chosen expiry: %v", short)
		}
		for _, bad := range []string{time.Now().Add(-time.Hour).Format(time.RFC3339), time.Now().Add(31 * 24 * time.Hour).Format(time.RFC3339), "tomorrow"} {
			ts.do("POST", "/workspaces/"+wsID+"/invitations", owner.Token,
				map[string]string{"email": bob.Email, "expiresAt": bad}).want(t, 400)
		}
		ts.do("POST", "/workspaces/"+wsID+"/invitations", owner.Token, map[string]string{"email": "nope"}).want(t, 400)
		ts.do("POST", "/workspaces/"+wsID+"/invitations", owner.Token, map[string]string{"email": bob.Email, "role": "god"}).want(t, 400)
		ts.do("POST", "/workspaces/"+wsID+"/invitations", owner.Token, map[string]string{"email": owner.Email}).want(t, 409)
	})
}

// Every team endpoint that takes an id answers 404, and changes nothing,
// for an id from a workspace the caller does not belong to: a foreign
// workspace, a foreign member, a foreign invitation.
func TestTeamForeignIDs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		a, b, bMember := ts.register("a@example.com"), ts.register("b@example.com"), ts.register("bm@example.com")
		wsA := ts.createTeam(a, "A")
		wsB := ts.createTeam(b, "B")
		ts.join(b, wsB, bMember, "member")
		invB := ts.invite(b, wsB, "someone@example.com", "viewer")
		invA := ts.invite(a, wsA, "someone@example.com", "viewer")

		for _, ws := range []string{wsB, b.WorkspaceID, "ws_doesnotexist"} {
			cases := []struct{ method, path string }{
				{"GET", "/workspaces/" + ws},
				{"GET", "/workspaces/" + ws + "/members"},
				{"PATCH", "/workspaces/" + ws + "/members/" + bMember.ID},
				{"DELETE", "/workspaces/" + ws + "/members/" + bMember.ID},
				{"POST", "/workspaces/" + ws + "/invitations"},
				{"GET", "/workspaces/" + ws + "/invitations"},
				{"DELETE", "/workspaces/" + ws + "/invitations/" + invB["id"].(string)},
			}
			for _, c := range cases {
				var body any
				if c.method == "POST" || c.method == "PATCH" {
					body = map[string]string{"role": "viewer", "email": "x@example.com"}
				}
				ts.do(c.method, c.path, a.Token, body).want(t, 404)
			}
		}
		// Ids of another workspace used inside the caller's own.
		ts.do("PATCH", "/workspaces/"+wsA+"/members/"+bMember.ID, a.Token, map[string]string{"role": "viewer"}).want(t, 404)
		ts.do("DELETE", "/workspaces/"+wsA+"/members/"+bMember.ID, a.Token, nil).want(t, 404)
		ts.do("DELETE", "/workspaces/"+wsA+"/members/"+b.ID, a.Token, nil).want(t, 404)
		ts.do("DELETE", "/workspaces/"+wsA+"/invitations/"+invB["id"].(string), a.Token, nil).want(t, 404)
		// And the workspace's own id paired with the header of another.
		ts.do("GET", "/workspaces/"+wsB+"/members", a.Token, nil, "X-Workspace-Id", wsA).want(t, 404)

		if ts.roleIn(wsB, bMember.ID) != "member" || ts.roleIn(wsB, a.ID) != "" ||
			ts.count(`SELECT COUNT(*) FROM invitations WHERE id IN ($1, $2)`, invA["id"], invB["id"]) != 2 ||
			ts.count(`SELECT COUNT(*) FROM invitations WHERE workspace_id = $1 AND accepted_at IS NULL`, wsB) != 1 {
			t.Fatal("a request with a foreign id changed something")
		}
	})
}

// A viewer (and a member) reads the member list but changes nothing.
func TestViewerCannotChangeTeam(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		owner, viewer, member := ts.register("o@example.com"), ts.register("v@example.com"), ts.register("m@example.com")
		wsID := ts.createTeam(owner, "T")
		ts.join(owner, wsID, viewer, "viewer")
		ts.join(owner, wsID, member, "member")
		inv := ts.invite(owner, wsID, "x@example.com", "viewer")
		before := ts.count(`SELECT COUNT(*) FROM audit_events`)

		for _, who := range []account{viewer, member} {
			ts.do("GET", "/workspaces/"+wsID+"/members", who.Token, nil).want(t, 200)
			ts.do("GET", "/workspaces/"+wsID+"/invitations", who.Token, nil).want(t, 403)
			ts.do("POST", "/workspaces/"+wsID+"/invitations", who.Token, map[string]string{"email": "y@example.com", "role": "viewer"}).want(t, 403)
			ts.do("DELETE", "/workspaces/"+wsID+"/invitations/"+inv["id"].(string), who.Token, nil).want(t, 403)
			ts.do("PATCH", "/workspaces/"+wsID+"/members/"+owner.ID, who.Token, map[string]string{"role": "viewer"}).want(t, 403)
			ts.do("PATCH", "/workspaces/"+wsID+"/members/"+who.ID, who.Token, map[string]string{"role": "admin"}).want(t, 403)
		}
		ts.do("DELETE", "/workspaces/"+wsID+"/members/"+member.ID, viewer.Token, nil).want(t, 403)
		ts.do("DELETE", "/workspaces/"+wsID+"/members/"+viewer.ID, member.Token, nil).want(t, 403)

		if ts.roleIn(wsID, viewer.ID) != "viewer" || ts.roleIn(wsID, member.ID) != "member" || ts.roleIn(wsID, owner.ID) != "owner" ||
			ts.count(`SELECT COUNT(*) FROM invitations WHERE workspace_id = $1`, wsID) != 3 ||
			ts.count(`SELECT COUNT(*) FROM audit_events`) != before {
			t.Fatal("a viewer or member changed something")
		}
		// Requests without a session are refused before anything else.
		ts.do("POST", "/workspaces", "", map[string]string{"name": "x"}).want(t, http.StatusUnauthorized)
	})
}
