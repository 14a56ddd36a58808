package api_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/vault"
)

// seedKeyPayload is the seed README's POST /keys body, verbatim but for the
// secret.
func seedKeyPayload(secret string) map[string]any {
	return map[string]any{
		"key": secret, "service": "stripe", "tier": "paid",
		"metadata": map[string]any{"type": "payment", "quota": 10000, "description": "Production Stripe key"},
	}
}

// keySecrets records every secret a test stores, so that it can look for
// them everywhere afterwards.
type keySecrets []string

func (s *keySecrets) add(secret string) string { *s = append(*s, secret); return secret }

// assertNoSecret fails if text holds any secret, verbatim or hex-encoded.
func (s keySecrets) assertNoSecret(t *testing.T, where, text string) {
	t.Helper()
	for _, sec := range s {
		if strings.Contains(text, sec) || strings.Contains(strings.ToLower(text), hex.EncodeToString([]byte(sec))) {
			t.Fatalf("%s contains a stored secret (%s)", where, vault.Mask(sec))
		}
	}
}

// keyDo is ts.do that also checks the response for secrets.
func (s keySecrets) keyDo(t *testing.T, ts *testServer, method, path, token string, body any, headers ...string) *response {
	t.Helper()
	r := ts.do(method, path, token, body, headers...)
	s.assertNoSecret(t, method+" "+path+" response", string(r.Body))
	for name, vs := range r.Header {
		s.assertNoSecret(t, "response header "+name, strings.Join(vs, " "))
	}
	return r
}

// joinWorkspace makes userID a member of ws with role directly in the
// database, as an accepted invitation would.
func joinWorkspace(t *testing.T, ts *testServer, ws, userID string, role apiwallet.WorkspaceRole) {
	t.Helper()
	if _, err := ts.db.SQL().ExecContext(context.Background(), `INSERT INTO memberships (workspace_id, user_id, role, created_at)
		VALUES ($1, $2, $3, 0)`, ws, userID, string(role)); err != nil {
		t.Fatal(err)
	}
}

// keyAuditActions lists the actions recorded in ws, oldest first.
func keyAuditActions(t *testing.T, ts *testServer, ws string) []string {
	t.Helper()
	evs, err := ts.db.FindAuditEvents(context.Background(), apiwallet.AuditFilter{WorkspaceID: ws, Action: "key.", Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(evs) - 1; i >= 0; i-- {
		out = append(out, evs[i].Action)
	}
	return out
}

// rawDatabase returns everything stored: on SQLite the bytes of the
// database file and its write-ahead log, on PostgreSQL every row of every
// table as text (bytea columns in hex, which assertNoSecret also checks).
func rawDatabase(t *testing.T, ts *testServer) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	if ts.db.Dialect() == "sqlite" {
		var seq int
		var name, file string
		if err := ts.db.SQL().QueryRowContext(ctx, `PRAGMA database_list`).Scan(&seq, &name, &file); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{file, file + "-wal"} {
			data, err := os.ReadFile(f)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			b.Write(data)
		}
		if b.Len() == 0 {
			t.Fatal("read nothing from the SQLite files")
		}
		return b.String()
	}
	rows, err := ts.db.SQL().QueryContext(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	for _, table := range tables {
		rows, err := ts.db.SQL().QueryContext(ctx, `SELECT t::text FROM "`+table+`" t`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			b.WriteString(line)
			b.WriteByte('\n')
		}
		rows.Close()
	}
	if !strings.Contains(b.String(), "sk_live_…") {
		t.Fatal("the PostgreSQL dump does not even hold the masked keys")
	}
	return b.String()
}

// Guarantee: the seed's payload is accepted verbatim, and every endpoint
// shows the key's metadata with a masked secret and short fingerprint,
// never the secret itself.
func TestKeysCRUD(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		var secrets keySecrets
		a := ts.register("keys-owner@example.com")
		secret := secrets.add("sk_live_51HxYzAbCdEfGhIjKlMnOpQr4f2a")

		r := secrets.keyDo(t, ts, "POST", "/keys", a.Token, seedKeyPayload(secret)).want(t, http.StatusCreated)
		k := r.JSON()
		id := k["id"].(string)
		meta := k["metadata"].(map[string]any)
		if !strings.HasPrefix(id, "key_") || k["service"] != "stripe" || k["tier"] != "paid" || k["maskedKey"] != "sk_live_…4f2a" ||
			len(k["fingerprint"].(string)) != 16 || k["status"] != "active" || k["enabled"] != true ||
			k["createdBy"] != a.ID || k["workspaceId"] != a.WorkspaceID || k["version"] != 1.0 ||
			meta["type"] != "payment" || meta["quota"] != 10000.0 || meta["description"] != "Production Stripe key" ||
			k["lastUsedAt"] != nil || k["rotatedAt"] != nil || k["createdAt"] == nil {
			t.Fatalf("created key: %s", r.Body)
		}
		if r.Header.Get("Location") != "/keys/"+id {
			t.Fatalf("Location = %q", r.Header.Get("Location"))
		}

		// The same secret again is 409, however it is labelled.
		dup := seedKeyPayload(secret)
		dup["service"], dup["tier"] = "other-service", "free"
		r = secrets.keyDo(t, ts, "POST", "/keys", a.Token, dup).want(t, http.StatusConflict)
		if !strings.Contains(string(r.Body), id) {
			t.Fatalf("conflict does not name the key holding the secret: %s", r.Body)
		}

		// A few more, for the list.
		secrets.keyDo(t, ts, "POST", "/keys", a.Token, map[string]any{"key": secrets.add("sk-proj-abcdefghijklmnop0001"),
			"service": "openai", "tier": "free", "label": "dev", "priority": 5, "enabled": false}).want(t, http.StatusCreated)
		for i := range 3 {
			secrets.keyDo(t, ts, "POST", "/keys", a.Token, map[string]any{"key": secrets.add(fmt.Sprintf("sk_test_listing-%02d-abcdefgh", i)),
				"service": "stripe", "tier": "free"}).want(t, http.StatusCreated)
		}

		list := func(q string) ([]any, string) {
			t.Helper()
			m := secrets.keyDo(t, ts, "GET", "/keys"+q, a.Token, nil).want(t, 200).JSON()
			next, _ := m["nextAfter"].(string)
			return m["keys"].([]any), next
		}
		all, next := list("")
		if len(all) != 5 || next != "" {
			t.Fatalf("GET /keys: %d keys, next %q", len(all), next)
		}
		if got, _ := list("?service=stripe"); len(got) != 4 {
			t.Fatalf("service filter: %d", len(got))
		}
		if got, _ := list("?service=stripe&tier=paid"); len(got) != 1 || got[0].(map[string]any)["id"] != id {
			t.Fatalf("service+tier filter: %v", got)
		}
		if got, _ := list("?enabled=false"); len(got) != 1 || got[0].(map[string]any)["status"] != "disabled" {
			t.Fatalf("enabled filter: %v", got)
		}
		page1, next := list("?limit=2")
		page2, next2 := list("?limit=2&after=" + next)
		page3, next3 := list("?limit=2&after=" + next2)
		if len(page1) != 2 || len(page2) != 2 || len(page3) != 1 || next3 != "" {
			t.Fatalf("pages: %d %d %d (next %q)", len(page1), len(page2), len(page3), next3)
		}
		if page2[0].(map[string]any)["id"] != all[2].(map[string]any)["id"] {
			t.Fatal("page 2 does not continue page 1")
		}
		for _, q := range []string{"?limit=0", "?limit=501", "?limit=x", "?tier=gold", "?enabled=maybe"} {
			secrets.keyDo(t, ts, "GET", "/keys"+q, a.Token, nil).want(t, http.StatusBadRequest)
		}

		got := secrets.keyDo(t, ts, "GET", "/keys/"+id, a.Token, nil).want(t, 200).JSON()
		if got["maskedKey"] != "sk_live_…4f2a" || got["fingerprint"] != k["fingerprint"] {
			t.Fatalf("GET /keys/{id}: %v", got)
		}

		// PATCH changes what it names; metadata is replaced whole.
		upd := secrets.keyDo(t, ts, "PATCH", "/keys/"+id, a.Token, map[string]any{"tier": "free", "priority": 3,
			"label": "primary", "enabled": false, "metadata": map[string]any{"type": "billing"}}).want(t, 200).JSON()
		um := upd["metadata"].(map[string]any)
		if upd["tier"] != "free" || upd["priority"] != 3.0 || upd["label"] != "primary" || upd["enabled"] != false ||
			upd["status"] != "disabled" || um["type"] != "billing" || um["quota"] != nil || upd["maskedKey"] != "sk_live_…4f2a" {
			t.Fatalf("PATCH: %v", upd)
		}
		secrets.keyDo(t, ts, "PATCH", "/keys/"+id, a.Token, map[string]any{}).want(t, http.StatusBadRequest)
		secrets.keyDo(t, ts, "PATCH", "/keys/"+id, a.Token, map[string]any{"key": secrets.add("sk_live_patch-may-not-set-1")}).want(t, http.StatusBadRequest)

		// Rotate keeps the id and bumps the version.
		next1 := secrets.add("sk_live_51HxYzAbCdEfGhIjKlMnOpQrROT8")
		rot := secrets.keyDo(t, ts, "POST", "/keys/"+id+"/rotate", a.Token, map[string]any{"key": next1}).want(t, 200).JSON()
		if rot["id"] != id || rot["maskedKey"] != "sk_live_…ROT8" || rot["version"] != 2.0 || rot["rotatedAt"] == nil ||
			rot["fingerprint"] == k["fingerprint"] || rot["label"] != "primary" {
			t.Fatalf("rotate: %v", rot)
		}
		plain, err := ts.keys.Reveal(context.Background(), a.WorkspaceID, id)
		if err != nil || string(plain) != next1 {
			t.Fatalf("Reveal after rotation: %v", err)
		}
		secrets.keyDo(t, ts, "POST", "/keys/"+id+"/rotate", a.Token, map[string]any{"key": next1}).want(t, http.StatusConflict)
		secrets.keyDo(t, ts, "POST", "/keys/"+id+"/rotate", a.Token, map[string]any{"key": "sk-proj-abcdefghijklmnop0001"}).want(t, http.StatusConflict)
		// The old secret is free again.
		secrets.keyDo(t, ts, "POST", "/keys", a.Token, seedKeyPayload(secret)).want(t, http.StatusCreated)

		secrets.keyDo(t, ts, "DELETE", "/keys/"+id, a.Token, nil).want(t, http.StatusNoContent)
		secrets.keyDo(t, ts, "GET", "/keys/"+id, a.Token, nil).want(t, http.StatusNotFound)
		secrets.keyDo(t, ts, "DELETE", "/keys/"+id, a.Token, nil).want(t, http.StatusNotFound)

		// Every operation left its event, in order, and no event holds a secret.
		want := []string{"key.create", "key.create", "key.create", "key.create", "key.create", "key.read",
			"key.update", "key.rotate", "key.create", "key.delete"}
		if got := keyAuditActions(t, ts, a.WorkspaceID); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("audit actions:\n got %v\nwant %v", got, want)
		}
		evs, _ := ts.db.FindAuditEvents(context.Background(), apiwallet.AuditFilter{WorkspaceID: a.WorkspaceID, Action: "key.rotate"})
		if len(evs) != 1 || evs[0].TargetID != id || evs[0].ActorID != a.ID || evs[0].Details["service"] != "stripe" ||
			evs[0].RequestID == "" || evs[0].ClientIP == "" {
			t.Fatalf("rotate event: %+v", evs)
		}
		if _, err := ts.db.VerifyAudit(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// Guarantee: bad input is a 400 naming each bad field, changes nothing,
// and never echoes the secret.
func TestKeysValidation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		var secrets keySecrets
		a := ts.register("keys-validation@example.com")
		cases := []struct {
			name  string
			body  any
			field string
		}{
			{"missing key", map[string]any{"service": "stripe", "tier": "free"}, "key"},
			{"short key", map[string]any{"key": "short", "service": "stripe", "tier": "free"}, "key"},
			{"key with space", map[string]any{"key": secrets.add("sk_live_has space-0123456789"), "service": "stripe", "tier": "free"}, "key"},
			{"key with newline", map[string]any{"key": secrets.add("sk_live_newline\n0123456789"), "service": "stripe", "tier": "free"}, "key"},
			{"key too long", map[string]any{"key": strings.Repeat("k", 4097), "service": "stripe", "tier": "free"}, "key"},
			{"key not a string", map[string]any{"key": 12345678, "service": "stripe", "tier": "free"}, "key"},
			{"missing service", map[string]any{"key": "sk_live_0123456789", "tier": "free"}, "service"},
			{"bad service", map[string]any{"key": "sk_live_0123456789", "service": "stripe api!", "tier": "free"}, "service"},
			{"long service", map[string]any{"key": "sk_live_0123456789", "service": strings.Repeat("s", 41), "tier": "free"}, "service"},
			{"missing tier", map[string]any{"key": "sk_live_0123456789", "service": "stripe"}, "tier"},
			{"bad tier", map[string]any{"key": "sk_live_0123456789", "service": "stripe", "tier": "gold"}, "tier"},
			{"negative quota", map[string]any{"key": "sk_live_0123456789", "service": "stripe", "tier": "free", "metadata": map[string]any{"quota": -1}}, "metadata.quota"},
			{"fractional quota", map[string]any{"key": "sk_live_0123456789", "service": "stripe", "tier": "free", "metadata": map[string]any{"quota": 1.5}}, "metadata.quota"},
			{"bad priority", map[string]any{"key": "sk_live_0123456789", "service": "stripe", "tier": "free", "priority": -1}, "priority"},
			{"unknown field", map[string]any{"key": "sk_live_0123456789", "service": "stripe", "tier": "free", "secret": "x"}, "secret"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := secrets.keyDo(t, ts, "POST", "/keys", a.Token, c.body).want(t, http.StatusBadRequest)
				found := false
				for _, e := range r.JSON()["errors"].([]any) {
					found = found || e.(map[string]any)["field"] == c.field
				}
				if !found {
					t.Fatalf("errors do not name %q: %s", c.field, r.Body)
				}
				if strings.Contains(string(r.Body), "sk_live_0123456789") || strings.Contains(string(r.Body), "kkkkkkkk") {
					t.Fatalf("the problem echoes the secret: %s", r.Body)
				}
			})
		}
		secrets.keyDo(t, ts, "POST", "/keys", a.Token, `{"key": "sk_live_0123456789", `).want(t, http.StatusBadRequest)
		if got, _ := ts.db.FindKeys(context.Background(), apiwallet.KeyFilter{WorkspaceID: a.WorkspaceID}); len(got) != 0 {
			t.Fatalf("bad input stored %d keys", len(got))
		}
		if got := keyAuditActions(t, ts, a.WorkspaceID); len(got) != 0 {
			t.Fatalf("bad input recorded %v", got)
		}
		secrets.assertNoSecret(t, "server log", ts.logs.String())
	})
}

// Guarantee: every /keys endpoint that takes an ID answers 404 for another
// workspace's key, exactly as for a missing one, and changes nothing — not
// the key, not its audit trail.
func TestKeysOtherWorkspaceIsNotFound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		var secrets keySecrets
		a, b := ts.register("keys-a@example.com"), ts.register("keys-b@example.com")
		id := secrets.keyDo(t, ts, "POST", "/keys", a.Token, seedKeyPayload(secrets.add("sk_live_owned-by-a-0123456789"))).
			want(t, http.StatusCreated).JSON()["id"].(string)
		secrets.keyDo(t, ts, "POST", "/keys", b.Token, seedKeyPayload(secrets.add("sk_live_owned-by-b-0123456789"))).want(t, http.StatusCreated)
		before := secrets.keyDo(t, ts, "GET", "/keys/"+id, a.Token, nil).want(t, 200).Body
		eventsBefore := len(keyAuditActions(t, ts, a.WorkspaceID))

		endpoints := []struct {
			method, path string
			body         any
		}{
			{"GET", "/keys/" + id, nil},
			{"PATCH", "/keys/" + id, map[string]any{"tier": "free", "enabled": false}},
			{"POST", "/keys/" + id + "/rotate", map[string]any{"key": secrets.add("sk_live_hijack-attempt-0123456789")}},
			{"DELETE", "/keys/" + id, nil},
		}
		for _, e := range endpoints {
			foreign := secrets.keyDo(t, ts, e.method, e.path, b.Token, e.body).want(t, http.StatusNotFound)
			missing := secrets.keyDo(t, ts, e.method, strings.Replace(e.path, id, "key_doesnotexist", 1), b.Token, e.body).want(t, http.StatusNotFound)
			strip := func(body []byte) string {
				m := (&response{Body: body}).JSON()
				return fmt.Sprint(m["title"], m["detail"], m["type"])
			}
			if strip(foreign.Body) != strip(missing.Body) {
				t.Fatalf("%s %s: another workspace's key (%s) differs from a missing one (%s)", e.method, e.path, foreign.Body, missing.Body)
			}
			// Naming A's workspace does not help B: it is not a member.
			secrets.keyDo(t, ts, e.method, e.path, b.Token, e.body, "X-Workspace-Id", a.WorkspaceID).want(t, http.StatusNotFound)
		}
		list := secrets.keyDo(t, ts, "GET", "/keys", b.Token, nil).want(t, 200).JSON()["keys"].([]any)
		if len(list) != 1 || list[0].(map[string]any)["id"] == id {
			t.Fatalf("B lists %v", list)
		}

		after := secrets.keyDo(t, ts, "GET", "/keys/"+id, a.Token, nil).want(t, 200).Body
		if string(after) != string(before) {
			t.Fatalf("A's key changed:\nbefore %s\nafter  %s", before, after)
		}
		plain, err := ts.keys.Reveal(context.Background(), a.WorkspaceID, id)
		if err != nil || string(plain) != "sk_live_owned-by-a-0123456789" {
			t.Fatalf("A's secret after B's attempts: %v", err)
		}
		if n := len(keyAuditActions(t, ts, a.WorkspaceID)); n != eventsBefore+1 { // + A's own second read
			t.Fatalf("A's workspace has %d key events, want %d", n, eventsBefore+1)
		}
	})
}

// Guarantee: roles are enforced — a viewer only reads, a member also adds,
// updates and rotates, and only an admin or owner deletes; a refusal
// changes nothing.
func TestKeysRoles(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		var secrets keySecrets
		owner := ts.register("keys-roles-owner@example.com")
		viewer := ts.register("keys-roles-viewer@example.com")
		member := ts.register("keys-roles-member@example.com")
		admin := ts.register("keys-roles-admin@example.com")
		ws := owner.WorkspaceID
		joinWorkspace(t, ts, ws, viewer.ID, apiwallet.WorkspaceViewer)
		joinWorkspace(t, ts, ws, member.ID, apiwallet.WorkspaceMember)
		joinWorkspace(t, ts, ws, admin.ID, apiwallet.WorkspaceAdmin)
		in := func(a account) []string { return []string{"X-Workspace-Id", ws} }

		id := secrets.keyDo(t, ts, "POST", "/keys", owner.Token, seedKeyPayload(secrets.add("sk_live_roles-owner-0123456789"))).
			want(t, http.StatusCreated).JSON()["id"].(string)
		before := secrets.keyDo(t, ts, "GET", "/keys/"+id, owner.Token, nil).want(t, 200).Body

		// The viewer reads, and nothing else.
		secrets.keyDo(t, ts, "GET", "/keys", viewer.Token, nil, in(viewer)...).want(t, 200)
		secrets.keyDo(t, ts, "GET", "/keys/"+id, viewer.Token, nil, in(viewer)...).want(t, 200)
		for _, e := range []struct {
			method, path string
			body         any
		}{
			{"POST", "/keys", seedKeyPayload(secrets.add("sk_live_roles-viewer-0123456789"))},
			{"PATCH", "/keys/" + id, map[string]any{"enabled": false}},
			{"POST", "/keys/" + id + "/rotate", map[string]any{"key": secrets.add("sk_live_roles-viewer-rotate-0123")}},
			{"DELETE", "/keys/" + id, nil},
		} {
			secrets.keyDo(t, ts, e.method, e.path, viewer.Token, e.body, in(viewer)...).want(t, http.StatusForbidden)
		}
		after := secrets.keyDo(t, ts, "GET", "/keys/"+id, owner.Token, nil).want(t, 200).Body
		if string(after) != string(before) {
			t.Fatalf("a viewer changed the key:\nbefore %s\nafter  %s", before, after)
		}
		if list := secrets.keyDo(t, ts, "GET", "/keys", owner.Token, nil).want(t, 200).JSON()["keys"].([]any); len(list) != 1 {
			t.Fatalf("a viewer added a key: %d keys", len(list))
		}

		// The member adds, updates and rotates, but does not delete.
		mid := secrets.keyDo(t, ts, "POST", "/keys", member.Token, seedKeyPayload(secrets.add("sk_live_roles-member-0123456789")), in(member)...).
			want(t, http.StatusCreated).JSON()["id"].(string)
		secrets.keyDo(t, ts, "PATCH", "/keys/"+id, member.Token, map[string]any{"priority": 2}, in(member)...).want(t, 200)
		secrets.keyDo(t, ts, "POST", "/keys/"+id+"/rotate", member.Token, map[string]any{"key": secrets.add("sk_live_roles-member-rotated-01")}, in(member)...).want(t, 200)
		secrets.keyDo(t, ts, "DELETE", "/keys/"+mid, member.Token, nil, in(member)...).want(t, http.StatusForbidden)

		// The admin and the owner delete.
		secrets.keyDo(t, ts, "DELETE", "/keys/"+mid, admin.Token, nil, in(admin)...).want(t, http.StatusNoContent)
		secrets.keyDo(t, ts, "DELETE", "/keys/"+id, owner.Token, nil).want(t, http.StatusNoContent)

		// Who did what is on record.
		evs, _ := ts.db.FindAuditEvents(context.Background(), apiwallet.AuditFilter{WorkspaceID: ws, Action: "key.delete"})
		if len(evs) != 2 || evs[0].ActorID != owner.ID || evs[1].ActorID != admin.ID {
			t.Fatalf("delete events: %+v", evs)
		}
		secrets.assertNoSecret(t, "server log", ts.logs.String())
	})
}

// Guarantee (issue 3 acceptance): no stored secret appears in any response,
// in the database files, or in the server's logs, across every key
// operation including failed ones.
func TestKeysSecretsNeverLeak(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		var secrets keySecrets
		a, b := ts.register("leak-a@example.com"), ts.register("leak-b@example.com")
		var ids []string
		for i, s := range []string{
			"sk_live_51LeakTestAbCdEfGhIjKlMnOp", "sk-proj-LeakTestQrStUvWxYz0123456789",
			"sk-ant-api03-LeakTestabcdefghijklmnop", "0123456789abcdef0123456789abcdef",
			"AIzaSyLeakTest1234567890abcdefghijk",
		} {
			body := seedKeyPayload(secrets.add(s))
			body["service"] = fmt.Sprintf("svc-%d", i)
			ids = append(ids, secrets.keyDo(t, ts, "POST", "/keys", a.Token, body).want(t, http.StatusCreated).JSON()["id"].(string))
		}
		// The same secrets in another workspace, and each operation,
		// failing ones included.
		secrets.keyDo(t, ts, "POST", "/keys", b.Token, seedKeyPayload(secrets[0])).want(t, http.StatusCreated)
		secrets.keyDo(t, ts, "POST", "/keys", a.Token, seedKeyPayload(secrets[0])).want(t, http.StatusConflict)
		secrets.keyDo(t, ts, "GET", "/keys", a.Token, nil).want(t, 200)
		secrets.keyDo(t, ts, "GET", "/keys/"+ids[0], a.Token, nil).want(t, 200)
		secrets.keyDo(t, ts, "PATCH", "/keys/"+ids[1], a.Token, map[string]any{"label": "x"}).want(t, 200)
		secrets.keyDo(t, ts, "POST", "/keys/"+ids[2]+"/rotate", a.Token, map[string]any{"key": secrets.add("sk-ant-api03-LeakTestRotatedqrstuvwxyz")}).want(t, 200)
		secrets.keyDo(t, ts, "POST", "/keys/"+ids[3]+"/rotate", a.Token, map[string]any{"key": secrets[1]}).want(t, http.StatusConflict)
		secrets.keyDo(t, ts, "POST", "/keys/"+ids[0]+"/rotate", b.Token, map[string]any{"key": secrets.add("sk_live_LeakTestForeignRotate0123")}).want(t, http.StatusNotFound)
		secrets.keyDo(t, ts, "POST", "/keys", a.Token, map[string]any{"key": secrets.add("sk_live_LeakTest bad space"), "service": "x", "tier": "free"}).want(t, http.StatusBadRequest)
		secrets.keyDo(t, ts, "DELETE", "/keys/"+ids[4], a.Token, nil).want(t, http.StatusNoContent)

		// The dump really holds the data: a description stored beside the
		// secrets is in it.
		marker := seedKeyPayload(secrets.add("sk_live_LeakTestMarkerKey0123456"))
		marker["metadata"] = map[string]any{"description": "leak-test-visible-marker"}
		secrets.keyDo(t, ts, "POST", "/keys", a.Token, marker).want(t, http.StatusCreated)

		raw := rawDatabase(t, ts)
		if !strings.Contains(raw, "leak-test-visible-marker") {
			t.Fatal("the raw database does not show stored values; the check below would prove nothing")
		}
		secrets.assertNoSecret(t, "the database ("+ts.db.Dialect()+")", raw)
		logs := ts.logs.String()
		if !strings.Contains(logs, "/keys") {
			t.Fatal("the captured log does not even show the key requests")
		}
		secrets.assertNoSecret(t, "the server log", logs)
	})
}

// Guarantee (issue 3 acceptance): swapping two workspaces' ciphertexts in
// the database makes both keys fail to decrypt, with errors naming each
// key and holding no secret.
func TestKeysSwappedCiphertextFails(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		ctx := context.Background()
		var secrets keySecrets
		a, b := ts.register("swap-a@example.com"), ts.register("swap-b@example.com")
		ida := secrets.keyDo(t, ts, "POST", "/keys", a.Token, seedKeyPayload(secrets.add("sk_live_swap-a-0123456789abcdef"))).
			want(t, http.StatusCreated).JSON()["id"].(string)
		idb := secrets.keyDo(t, ts, "POST", "/keys", b.Token, seedKeyPayload(secrets.add("sk_live_swap-b-0123456789abcdef"))).
			want(t, http.StatusCreated).JSON()["id"].(string)
		ida2 := secrets.keyDo(t, ts, "POST", "/keys", a.Token, seedKeyPayload(secrets.add("sk_live_swap-a2-0123456789abcdef"))).
			want(t, http.StatusCreated).JSON()["id"].(string)

		// Swap the ciphertext columns by hand, as an attacker with database
		// access would.
		db := ts.db.SQL()
		swap := func(x, y string) {
			t.Helper()
			var sx, sy []byte
			if err := db.QueryRowContext(ctx, `SELECT sealed FROM api_keys WHERE id = $1`, x).Scan(&sx); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRowContext(ctx, `SELECT sealed FROM api_keys WHERE id = $1`, y).Scan(&sy); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `UPDATE api_keys SET sealed = $1 WHERE id = $2`, sy, x); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `UPDATE api_keys SET sealed = $1 WHERE id = $2`, sx, y); err != nil {
				t.Fatal(err)
			}
		}
		refused := func(ws, id string) {
			t.Helper()
			plain, err := ts.keys.Reveal(ctx, ws, id)
			var de *vault.DecryptError
			if err == nil || !errors.As(err, &de) || de.KeyID != id || !strings.Contains(err.Error(), id) {
				t.Fatalf("Reveal(%s) after the swap = %d bytes, %v; want a DecryptError naming the key", id, len(plain), err)
			}
			secrets.assertNoSecret(t, "the decryption error", err.Error())
			t.Logf("%s: %v", ts.db.Dialect(), err)
		}
		// Between workspaces (sealed under other data keys), then within
		// one (the same data key: only the key id bound into each
		// ciphertext tells them apart).
		swap(ida, idb)
		refused(a.WorkspaceID, ida)
		refused(b.WorkspaceID, idb)
		swap(ida, idb)
		swap(ida, ida2)
		refused(a.WorkspaceID, ida)
		refused(a.WorkspaceID, ida2)
		// The metadata still reads: only the secret is unusable.
		secrets.keyDo(t, ts, "GET", "/keys/"+ida, a.Token, nil).want(t, 200)
	})
}
