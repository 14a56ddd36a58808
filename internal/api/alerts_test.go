package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/alerts"
)

// alertReceiver is a webhook endpoint that verifies each POST's signature
// with secret (set once known).
type alertReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	secret string
	got    []map[string]any
	bad    []string
}

func newAlertReceiver(t *testing.T) *alertReceiver {
	r := &alertReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := alerts.Verify(req.Header.Get("X-Wallet-Signature"), body, []byte(r.secret), 5*time.Minute, time.Now()); err != nil {
			r.bad = append(r.bad, err.Error())
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		r.got = append(r.got, m)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *alertReceiver) received() ([]map[string]any, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.got...), append([]string(nil), r.bad...)
}

func TestAlertSettingsAPI(t *testing.T) {
	forEachBackendEnv(t, func(t *testing.T, open func(env ...string) *testServer) {
		ts := open("ALERT_WEBHOOK_ALLOW_PRIVATE=true")
		a := ts.register("alert-settings@example.com")

		m := ts.do("GET", "/alerts/settings", a.Token, nil).want(t, http.StatusOK).JSON()
		if th := m["thresholds"].([]any); len(th) != 2 || th[0] != 80.0 || th[1] != 100.0 || m["webhookUrl"] != nil {
			t.Fatalf("defaults: %v", m)
		}
		rcv := newAlertReceiver(t)
		m = ts.do("PUT", "/alerts/settings", a.Token, map[string]any{"thresholds": []int{100, 50}, "webhookUrl": rcv.URL}).
			want(t, http.StatusOK).JSON()
		secret, _ := m["webhookSecret"].(string)
		if !strings.HasPrefix(secret, "whsec_") || m["hasWebhookSecret"] != true || m["signatureHeader"] != "X-Wallet-Signature" {
			t.Fatalf("put: %v", m)
		}
		if th := m["thresholds"].([]any); th[0] != 50.0 || th[1] != 100.0 {
			t.Fatalf("thresholds not sorted: %v", th)
		}
		// The secret is shown once.
		got := ts.do("GET", "/alerts/settings", a.Token, nil).want(t, http.StatusOK)
		if strings.Contains(string(got.Body), secret) || got.JSON()["hasWebhookSecret"] != true ||
			got.JSON()["webhookUrl"] != rcv.URL {
			t.Fatalf("get: %s", got.Body)
		}
		if st, err := ts.db.FindAlertSettings(context.Background(), a.WorkspaceID); err != nil ||
			strings.Contains(string(st.WebhookSecret), secret) || strings.Contains(string(st.WebhookSecret), secret[6:]) {
			t.Fatalf("the webhook secret is stored in plaintext (%v)", err)
		}
		if evs := auditEvents(t, ts, a.Token, "?action=alert.settings"); len(evs) != 1 {
			t.Fatalf("audit: %v", evs)
		}

		// Bad input is a 400 naming the field, and changes nothing.
		for _, body := range []any{
			map[string]any{"thresholds": []int{}},
			map[string]any{"thresholds": []int{0, 80}},
			map[string]any{"thresholds": []int{80, 80}},
			map[string]any{"webhookUrl": "ftp://example.com/x"},
			map[string]any{"webhookSecret": "0123456789abcdefXYZ"},
			map[string]any{"webhookUrl": rcv.URL, "webhookSecret": "short"},
			map[string]any{"thresholds": "80"},
			map[string]any{"threshold": []int{80}},
		} {
			ts.do("PUT", "/alerts/settings", a.Token, body).want(t, http.StatusBadRequest)
		}
		if m := ts.do("GET", "/alerts/settings", a.Token, nil).JSON(); m["webhookUrl"] != rcv.URL || len(m["thresholds"].([]any)) != 2 {
			t.Fatalf("a refused PUT changed the settings: %v", m)
		}
		// Members and viewers read but cannot change.
		member := ts.register("alert-member@example.com")
		joinWorkspace(t, ts, a.WorkspaceID, member.ID, apiwallet.WorkspaceMember)
		ts.do("GET", "/alerts/settings", member.Token, nil, "X-Workspace-Id", a.WorkspaceID).want(t, http.StatusOK)
		ts.do("PUT", "/alerts/settings", member.Token, map[string]any{"thresholds": []int{10}}, "X-Workspace-Id", a.WorkspaceID).
			want(t, http.StatusForbidden)
		// Removing the webhook removes its secret.
		m = ts.do("PUT", "/alerts/settings", a.Token, map[string]any{}).want(t, http.StatusOK).JSON()
		if m["webhookUrl"] != nil || m["hasWebhookSecret"] != false || len(m["thresholds"].([]any)) != 2 {
			t.Fatalf("reset: %v", m)
		}
	})
}

// Without ALERT_WEBHOOK_ALLOW_PRIVATE a webhook cannot point inside.
func TestAlertWebhookSSRF(t *testing.T) {
	ts := newTestServer(t, filepath.Join(t.TempDir(), "wallet.db"))
	a := ts.register("alert-ssrf@example.com")
	for _, u := range []string{"http://127.0.0.1:6789/admin", "http://localhost/", "http://169.254.169.254/latest",
		"http://10.0.0.1/", "http://[::1]:80/"} {
		r := ts.do("PUT", "/alerts/settings", a.Token, map[string]any{"webhookUrl": u}).want(t, http.StatusBadRequest)
		if errs, _ := r.JSON()["errors"].([]any); len(errs) != 1 || errs[0].(map[string]any)["field"] != "webhookUrl" {
			t.Fatalf("%s: %s", u, r.Body)
		}
	}
}

// Alerts are listed newest first, per workspace, and each reaches the
// webhook once, signed; a key the upstream refuses raises key_quarantined.
func TestAlertsAPI(t *testing.T) {
	forEachBackendEnv(t, func(t *testing.T, open func(env ...string) *testServer) {
		up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}`)
		})
		ts := open("ALERT_WEBHOOK_ALLOW_PRIVATE=true", "OPENAI_BASE_URL="+up.URL)
		a := ts.register("alerts-api@example.com")
		b := ts.register("alerts-api-other@example.com")
		ctx := context.Background()
		rcv := newAlertReceiver(t)
		m := ts.do("PUT", "/alerts/settings", a.Token, map[string]any{"webhookUrl": rcv.URL}).want(t, http.StatusOK).JSON()
		rcv.mu.Lock()
		rcv.secret = m["webhookSecret"].(string)
		rcv.mu.Unlock()

		if l := ts.do("GET", "/alerts", a.Token, nil).want(t, http.StatusOK).JSON()["alerts"].([]any); len(l) != 0 {
			t.Fatalf("alerts before any: %v", l)
		}
		for _, used := range []int64{500, 800, 900, 1000, 1000} {
			if _, err := ts.alerts.Check(ctx, a.WorkspaceID, used, 1000, "2031-03"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond) // alert ids order by the millisecond
		}

		// The proxy quarantines a key the upstream refuses.
		r := ts.do("POST", "/keys", a.Token, map[string]any{"key": "sk-proj-refusedFAKE000000000001", "service": "openai", "tier": "paid"}).
			want(t, http.StatusCreated)
		keyID := r.JSON()["id"].(string)
		tok := ts.do("POST", "/tokens", a.Token, map[string]any{"name": "sdk", "services": []string{"openai"}}).
			want(t, http.StatusCreated).JSON()["token"].(string)
		for range 2 {
			ts.do("POST", "/proxy/openai/v1/chat/completions", tok, map[string]any{"model": "x"})
		}

		waitAlerts := func() []map[string]any {
			t.Helper()
			deadline := time.Now().Add(10 * time.Second)
			for {
				got, bad := rcv.received()
				if len(bad) > 0 {
					t.Fatalf("receiver refused signatures: %v", bad)
				}
				if len(got) >= 3 || time.Now().After(deadline) {
					return got
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		got := waitAlerts()
		time.Sleep(150 * time.Millisecond)
		if again, _ := rcv.received(); len(again) != 3 || len(got) != 3 {
			t.Fatalf("receiver got %d alerts, want 3: %v", len(again), again)
		}
		kinds := map[string]bool{}
		for _, g := range got {
			kinds[g["kind"].(string)+"/"+g["subject"].(string)] = true
			if g["workspaceId"] != a.WorkspaceID {
				t.Fatalf("alert of another workspace: %v", g)
			}
		}
		if !kinds["plan_quota/plan"] || !kinds["key_quarantined/"+keyID] {
			t.Fatalf("kinds: %v", kinds)
		}

		list := ts.do("GET", "/alerts", a.Token, nil).want(t, http.StatusOK).JSON()["alerts"].([]any)
		if len(list) != 3 {
			t.Fatalf("GET /alerts: %d", len(list))
		}
		newest := list[0].(map[string]any)
		if newest["kind"] != apiwallet.AlertKeyQuarantined || newest["delivery"].(map[string]any)["state"] == nil {
			t.Fatalf("newest: %v", newest)
		}
		page := ts.do("GET", "/alerts?limit=2", a.Token, nil).want(t, http.StatusOK).JSON()
		next, _ := page["nextBefore"].(string)
		if len(page["alerts"].([]any)) != 2 || next == "" {
			t.Fatalf("page 1: %v", page)
		}
		rest := ts.do("GET", "/alerts?before="+next, a.Token, nil).want(t, http.StatusOK).JSON()
		if l := rest["alerts"].([]any); len(l) != 1 || l[0].(map[string]any)["threshold"] != 80.0 || rest["nextBefore"] != nil {
			t.Fatalf("page 2: %v", rest)
		}
		ts.do("GET", "/alerts?limit=0", a.Token, nil).want(t, http.StatusBadRequest)
		// Another workspace sees none of them.
		if l := ts.do("GET", "/alerts", b.Token, nil).want(t, http.StatusOK).JSON()["alerts"].([]any); len(l) != 0 {
			t.Fatalf("another user sees %d alerts", len(l))
		}
		ts.do("GET", "/alerts", "", nil).want(t, http.StatusUnauthorized)
	})
}
