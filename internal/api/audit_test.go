package api_test

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// auditEvents fetches GET /audit with query q and returns its events.
func auditEvents(t *testing.T, ts *testServer, bearer, q string, headers ...string) []map[string]any {
	t.Helper()
	m := ts.do("GET", "/audit"+q, bearer, nil, headers...).want(t, http.StatusOK).JSON()
	var evs []map[string]any
	for _, ev := range m["events"].([]any) {
		evs = append(evs, ev.(map[string]any))
	}
	return evs
}

func login(t *testing.T, ts *testServer, email string) string {
	t.Helper()
	return ts.do("POST", "/auth/login", "", map[string]string{"email": email, "password": "correct horse battery"}).
		want(t, http.StatusOK).JSON()["token"].(string)
}

// A user sees the events of the workspace it acts in and its own, and
// never another user's events elsewhere, filters or not.
func TestAuditScopedToCaller(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		a, b := ts.register("a@example.com"), ts.register("b@example.com")
		mustCreateToken(t, ts, a.Token, map[string]any{"name": "a's app"})
		mustCreateToken(t, ts, b.Token, map[string]any{"name": "b's app"})
		login(t, ts, a.Email)

		for _, q := range []string{"", "?user=" + a.ID, "?action=token.", "?action=auth.login", "?limit=499"} {
			for _, ev := range auditEvents(t, ts, b.Token, q) {
				if ev["workspaceId"] != b.WorkspaceID && ev["actorId"] != b.ID {
					t.Fatalf("b sees %v with %q", ev, q)
				}
				if ev["actorId"] == a.ID || ev["workspaceId"] == a.WorkspaceID {
					t.Fatalf("b sees a's event %v with %q", ev, q)
				}
			}
		}
		if evs := auditEvents(t, ts, b.Token, "?user="+a.ID); len(evs) != 0 {
			t.Fatalf("b filtering by a gets %d events", len(evs))
		}

		evs := auditEvents(t, ts, a.Token, "")
		actions := map[string]int{}
		for _, ev := range evs {
			actions[ev["action"].(string)]++
			if ev["workspaceId"] != a.WorkspaceID && ev["actorId"] != a.ID {
				t.Fatalf("a sees %v", ev)
			}
			for _, k := range []string{"id", "seq", "workspaceId", "actorType", "actorId", "action", "targetType",
				"targetId", "outcome", "clientIp", "requestId", "details", "createdAt", "hash"} {
				if _, ok := ev[k]; !ok {
					t.Fatalf("event lacks %s: %v", k, ev)
				}
			}
		}
		if actions["user.create"] != 1 || actions["token.create"] != 1 || actions["auth.login"] != 1 {
			t.Fatalf("a's actions: %v", actions)
		}
		for i := 1; i < len(evs); i++ {
			if evs[i]["seq"].(float64) >= evs[i-1]["seq"].(float64) {
				t.Fatal("events are not newest first")
			}
		}

		// A team workspace's events are visible to its members, but a
		// member's events in its own workspace stay its own.
		addMember(t, ts, a.WorkspaceID, b.ID, apiwallet.WorkspaceViewer)
		inA := auditEvents(t, ts, b.Token, "", "X-Workspace-Id", a.WorkspaceID)
		seen := false
		for _, ev := range inA {
			seen = seen || ev["action"] == "token.create" && ev["actorId"] == a.ID
			if ev["workspaceId"] == b.WorkspaceID && ev["actorId"] != b.ID {
				t.Fatalf("leak: %v", ev)
			}
		}
		if !seen {
			t.Fatal("a member of a's workspace does not see its token event")
		}
		// a does not see b's personal workspace events.
		for _, ev := range auditEvents(t, ts, a.Token, "?limit=499") {
			if ev["workspaceId"] == b.WorkspaceID {
				t.Fatalf("a sees b's workspace event %v", ev)
			}
		}
	})
}

// A global ADMIN sees everyone's events and filters them by user, action
// and time.
func TestAuditAdminSeesAllAndFilters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		a, b, c := ts.register("a@example.com"), ts.register("b@example.com"), ts.register("c@example.com")
		mustCreateToken(t, ts, b.Token, map[string]any{"name": "b1"})
		bt := mustCreateToken(t, ts, b.Token, map[string]any{"name": "b2"})
		ts.do("DELETE", "/tokens/"+bt["id"].(string), b.Token, nil).want(t, 204)
		mustCreateToken(t, ts, c.Token, map[string]any{"name": "c1"})

		admin := apiwallet.RoleAdmin
		if _, err := ts.db.UpdateUser(t.Context(), a.ID, apiwallet.UserUpdate{Role: &admin}, nil); err != nil {
			t.Fatal(err)
		}
		tok := login(t, ts, a.Email)

		all := auditEvents(t, ts, tok, "?limit=499")
		actors := map[string]bool{}
		for _, ev := range all {
			actors[ev["actorId"].(string)] = true
		}
		if !actors[b.ID] || !actors[c.ID] || !actors[a.ID] {
			t.Fatalf("admin sees actors %v", actors)
		}

		byB := auditEvents(t, ts, tok, "?user="+b.ID)
		if len(byB) != 4 { // user.create, two token.create, token.revoke
			t.Fatalf("admin ?user=b: %d events", len(byB))
		}
		for _, ev := range byB {
			if ev["actorId"] != b.ID {
				t.Fatalf("?user=b gave %v", ev)
			}
		}
		if evs := auditEvents(t, ts, tok, "?action=token."); len(evs) != 4 {
			t.Fatalf("?action=token. gave %d", len(evs))
		}
		if evs := auditEvents(t, ts, tok, "?action=token.create&user="+c.ID); len(evs) != 1 || evs[0]["actorId"] != c.ID {
			t.Fatalf("?action=token.create&user=c gave %v", evs)
		}
		if evs := auditEvents(t, ts, tok, "?action=token"); len(evs) != 0 {
			t.Fatalf("an action without a dot is exact, got %d", len(evs))
		}

		// Time filters: everything so far is before now and after an hour ago.
		now := time.Now().UTC()
		since := url.QueryEscape(now.Add(-time.Hour).Format(time.RFC3339))
		until := url.QueryEscape(now.Add(time.Second).Format(time.RFC3339))
		if evs := auditEvents(t, ts, tok, "?limit=499&since="+since+"&until="+until); len(evs) != len(all) {
			t.Fatalf("since/until window gave %d of %d", len(evs), len(all))
		}
		if evs := auditEvents(t, ts, tok, "?since="+url.QueryEscape(now.Add(time.Hour).Format(time.RFC3339))); len(evs) != 0 {
			t.Fatalf("since the future gave %d", len(evs))
		}
		if evs := auditEvents(t, ts, tok, "?until="+url.QueryEscape(now.Add(-time.Hour).Format(time.RFC3339))); len(evs) != 0 {
			t.Fatalf("until an hour ago gave %d", len(evs))
		}

		// The same user back as USER sees only its own scope again.
		user := apiwallet.RoleUser
		if _, err := ts.db.UpdateUser(t.Context(), a.ID, apiwallet.UserUpdate{Role: &user}, nil); err != nil {
			t.Fatal(err)
		}
		tok = login(t, ts, a.Email)
		if evs := auditEvents(t, ts, tok, "?user="+b.ID); len(evs) != 0 {
			t.Fatalf("a demoted admin still sees b's events: %d", len(evs))
		}
	})
}

// Pages follow next (a seq) through before, without gaps or repeats.
func TestAuditPaging(t *testing.T) {
	ts := newTestServer(t, t.TempDir()+"/w.db")
	a := ts.register("a@example.com")
	for range 6 {
		mustCreateToken(t, ts, a.Token, map[string]any{"name": "t"})
	}
	all := auditEvents(t, ts, a.Token, "")
	if len(all) != 7 {
		t.Fatalf("%d events, want 7", len(all))
	}
	var got []float64
	q := "?limit=3"
	for {
		m := ts.do("GET", "/audit"+q, a.Token, nil).want(t, 200).JSON()
		for _, ev := range m["events"].([]any) {
			got = append(got, ev.(map[string]any)["seq"].(float64))
		}
		if m["next"] == nil {
			break
		}
		q = "?limit=3&before=" + strconv.FormatInt(int64(m["next"].(float64)), 10)
	}
	if len(got) != 7 {
		t.Fatalf("pages gave %v", got)
	}
	for i, ev := range all {
		if got[i] != ev["seq"].(float64) {
			t.Fatalf("page order %v differs from %v", got, all)
		}
	}
}

func TestAuditBadQuery(t *testing.T) {
	ts := newTestServer(t, t.TempDir()+"/w.db")
	a := ts.register("a@example.com")
	for q, field := range map[string]string{
		"?since=yesterday":  "since",
		"?until=2030-13-01": "until",
		"?since=2030-01-02T00:00:00Z&until=2030-01-01T00:00:00Z": "until",
		"?before=0":             "before",
		"?before=x":             "before",
		"?limit=0":              "limit",
		"?limit=500":            "limit",
		"?action=key.create%25": "action",
		"?action=DROP%20TABLE":  "action",
	} {
		p := ts.do("GET", "/audit"+q, a.Token, nil).want(t, 400).JSON()
		found := false
		for _, e := range p["errors"].([]any) {
			found = found || e.(map[string]any)["field"] == field
		}
		if !found {
			t.Fatalf("%s: errors do not name %s: %v", q, field, p)
		}
	}
	ts.do("GET", "/audit", "", nil).want(t, 401)
}
