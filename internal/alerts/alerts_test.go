package alerts_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/alerts"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
	"github.com/apikeywallet/apiwallet/internal/storetest"
	"github.com/apikeywallet/apiwallet/internal/testenv"
	"github.com/apikeywallet/apiwallet/internal/vault"
)

var quiet = slog.New(slog.DiscardHandler)

// backend opens handles on one fresh, migrated database: several handles
// stand for several wallet instances sharing it.
type backend struct {
	t   *testing.T
	dsn string
	dir string
}

func (b *backend) open() *sqldb.DB {
	b.t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, b.dsn, b.dir)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, quiet); err != nil {
		b.t.Fatal(err)
	}
	return db
}

func forEachBackend(t *testing.T, fn func(t *testing.T, b *backend)) {
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		fn(t, &backend{t: t, dsn: filepath.Join(dir, "wallet.db"), dir: dir})
	})
	t.Run("postgres", func(t *testing.T) { fn(t, &backend{t: t, dsn: testenv.PostgresURL(t), dir: t.TempDir()}) })
}

// newVault returns the vault that seals webhook secrets.
func newVault(t *testing.T, db *sqldb.DB) *vault.Service {
	t.Helper()
	root := make([]byte, 32)
	for i := range root {
		root[i] = byte(i + 7)
	}
	v, err := vault.NewService(context.Background(), db, root)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func newService(t *testing.T, db *sqldb.DB, o alerts.Options) *alerts.Service {
	t.Helper()
	if o.Backoff == 0 {
		o.Backoff = 20 * time.Millisecond
	}
	o.AllowPrivate = true
	s := alerts.New(db, newVault(t, db), quiet, o)
	t.Cleanup(s.Close)
	return s
}

func listAlerts(t *testing.T, db *sqldb.DB, ws string) []*apiwallet.Alert {
	t.Helper()
	list, err := db.FindAlerts(context.Background(), apiwallet.AlertFilter{WorkspaceID: ws, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func summary(list []*apiwallet.Alert) []string {
	var out []string
	for _, a := range list {
		out = append(out, a.Kind+"/"+a.Subject+"/"+a.Period+"/"+itoa(a.Threshold))
	}
	slices.Sort(out)
	return out
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// Crossing 80% then 100% raises two alerts; checking again, at any count,
// raises nothing more.
func TestCrossings(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		db := b.open()
		s := newService(t, db, alerts.Options{})
		ws := storetest.MustCreateUser(t, db, "crossings@example.com").PersonalWorkspaceID

		check := func(used int64, want int) {
			t.Helper()
			raised, err := s.Check(ctx, ws, used, 1000, "2031-03")
			if err != nil {
				t.Fatal(err)
			}
			if len(raised) != want {
				t.Fatalf("Check(%d/1000) raised %d alerts, want %d", used, len(raised), want)
			}
		}
		check(0, 0)
		check(799, 0)
		check(800, 1)
		check(850, 0)
		check(800, 0)
		check(1000, 1)
		check(1500, 0)
		check(5000, 0)
		got := summary(listAlerts(t, db, ws))
		want := []string{"plan_quota/plan/2031-03/100", "plan_quota/plan/2031-03/80"}
		if !slices.Equal(got, want) {
			t.Fatalf("alerts = %v, want %v", got, want)
		}
		// A new month starts over; a jump past both thresholds raises both.
		raised, _ := s.Check(ctx, ws, 2000, 1000, "2031-04")
		if len(raised) != 2 {
			t.Fatalf("new month: %d alerts", len(raised))
		}
		// No quota, no alert.
		if raised, _ := s.Check(ctx, ws, 10, 0, "2031-05"); len(raised) != 0 {
			t.Fatal("alert without a quota")
		}
		// Key quotas are separate crossings, per key.
		if raised, _ := s.CheckKey(ctx, ws, "key_a", 90, 100, "2031-03-15"); len(raised) != 1 || raised[0].Kind != apiwallet.AlertKeyQuota {
			t.Fatalf("key quota: %v", raised)
		}
		if raised, _ := s.CheckKey(ctx, ws, "key_a", 95, 100, "2031-03-15"); len(raised) != 0 {
			t.Fatal("key quota raised twice")
		}
		if raised, _ := s.CheckKey(ctx, ws, "key_b", 90, 100, "2031-03-15"); len(raised) != 1 {
			t.Fatal("another key's crossing not raised")
		}

		// Thresholds are the workspace's own.
		if _, _, err := s.PutSettings(ctx, ws, alerts.SettingsInput{Thresholds: []int{150, 50}}, nil); err != nil {
			t.Fatal(err)
		}
		raised, _ = s.Check(ctx, ws, 600, 1000, "2031-06")
		if len(raised) != 1 || raised[0].Threshold != 50 || raised[0].Used != 600 || raised[0].Limit != 1000 ||
			!strings.Contains(raised[0].Message, "50%") {
			t.Fatalf("custom thresholds: %+v", raised)
		}
		if raised, _ = s.Check(ctx, ws, 1500, 1000, "2031-06"); len(raised) != 1 || raised[0].Threshold != 150 {
			t.Fatalf("150%%: %+v", raised)
		}
	})
}

// Three instances (separate services on separate handles of one database)
// checking the same counts at once raise each crossing once between them.
func TestConcurrentInstancesRaiseOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		first := b.open()
		ws := storetest.MustCreateUser(t, first, "instances@example.com").PersonalWorkspaceID
		var (
			wg     sync.WaitGroup
			raised atomic.Int64
		)
		for i := range 3 {
			db := first
			if i > 0 {
				db = b.open()
			}
			s := newService(t, db, alerts.Options{})
			wg.Add(1)
			go func() {
				defer wg.Done()
				for used := int64(700); used <= 1100; used += 10 {
					r, err := s.Check(ctx, ws, used, 1000, "2031-03")
					if err != nil {
						t.Error(err)
						return
					}
					raised.Add(int64(len(r)))
				}
				s.KeyQuarantined(ctx, ws, "key_q", "unauthorized")
			}()
		}
		wg.Wait()
		got := summary(listAlerts(t, first, ws))
		want := []string{"key_quarantined/key_q/" + time.Now().UTC().Format(time.DateOnly) + "/0",
			"plan_quota/plan/2031-03/100", "plan_quota/plan/2031-03/80"}
		if !slices.Equal(got, want) {
			t.Fatalf("alerts = %v, want %v", got, want)
		}
		if raised.Load() != 2 {
			t.Fatalf("callers were told they raised %d plan alerts, want 2", raised.Load())
		}
	})
}

// receiver is a webhook endpoint that fails its first `fail` requests.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	fail   int
	got    []delivery
	secret []byte
}

type delivery struct {
	status  int
	alertID string
	attempt string
	sigErr  error
	body    []byte
}

func newReceiver(t *testing.T, fail int) *receiver {
	r := &receiver{fail: fail}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		d := delivery{alertID: req.Header.Get("X-Wallet-Alert-Id"), attempt: req.Header.Get("X-Wallet-Delivery-Attempt"), body: body,
			sigErr: alerts.Verify(req.Header.Get(alerts.SignatureHeader), body, r.secret, 5*time.Minute, time.Now())}
		d.status = http.StatusNoContent
		if len(r.got) < r.fail {
			d.status = http.StatusInternalServerError
		}
		r.got = append(r.got, d)
		w.WriteHeader(d.status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A crossing raised by three instances at once is POSTed once, signed so
// that the receiver verifies it, retried after the receiver's 500, and
// never again once delivered.
func TestWebhookDelivery(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		first := b.open()
		ws := storetest.MustCreateUser(t, first, "webhook@example.com").PersonalWorkspaceID
		rcv := newReceiver(t, 1)
		setup := newService(t, first, alerts.Options{})
		st, secret, err := setup.PutSettings(ctx, ws, alerts.SettingsInput{WebhookURL: &rcv.URL}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(secret, "whsec_") || !st.HasSecret || st.WebhookURL != rcv.URL {
			t.Fatalf("settings = %+v, secret %q", st, secret)
		}
		rcv.secret = []byte(secret)
		// The secret is stored sealed.
		raw, _ := first.FindAlertSettings(ctx, ws)
		if strings.Contains(string(raw.WebhookSecret), secret) {
			t.Fatal("the webhook secret is stored in plaintext")
		}
		// Setting the webhook again without a secret keeps it.
		if _, again, err := setup.PutSettings(ctx, ws, alerts.SettingsInput{WebhookURL: &rcv.URL}, nil); err != nil || again != "" {
			t.Fatalf("re-put generated a secret %q, %v", again, err)
		}

		var wg sync.WaitGroup
		for i := range 3 {
			db := first
			if i > 0 {
				db = b.open()
			}
			s := newService(t, db, alerts.Options{})
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Check(ctx, ws, 850, 1000, "2031-03"); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		var a *apiwallet.Alert
		waitFor(t, "delivery", func() bool {
			list := listAlerts(t, first, ws)
			if len(list) != 1 {
				t.Fatalf("%d alerts", len(list))
			}
			a = list[0]
			return a.Delivery.State == apiwallet.DeliveryDelivered
		})
		time.Sleep(200 * time.Millisecond) // room for a wrong extra attempt
		got := rcv.deliveries()
		if len(got) != 2 || got[0].status != 500 || got[1].status != 204 {
			t.Fatalf("receiver got %d requests: %+v", len(got), got)
		}
		for i, d := range got {
			if d.sigErr != nil {
				t.Fatalf("request %d: signature does not verify: %v", i, d.sigErr)
			}
			if d.alertID != a.ID || d.attempt != itoa(i+1) {
				t.Fatalf("request %d: alert id %q attempt %q", i, d.alertID, d.attempt)
			}
			var p alerts.Payload
			if err := json.Unmarshal(d.body, &p); err != nil || p.ID != a.ID || p.Kind != apiwallet.AlertPlanQuota ||
				p.Threshold != 80 || p.Used != 850 || p.Limit != 1000 || p.WorkspaceID != ws || p.Type != "alert" {
				t.Fatalf("request %d: payload %s", i, d.body)
			}
		}
		if string(got[0].body) != string(got[1].body) {
			t.Fatal("a retry sent another body")
		}
		if a.Delivery.Attempts != 2 || a.Delivery.LastStatus != 204 || a.Delivery.DeliveredAt.IsZero() {
			t.Fatalf("delivery = %+v", a.Delivery)
		}
		// Sweeping for due deliveries finds nothing to send again.
		if err := setup.ResumeDeliveries(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if n := len(rcv.deliveries()); n != 2 {
			t.Fatalf("receiver got %d requests after a sweep", n)
		}
		// A tampered body or another secret does not verify.
		sig := alerts.Sign([]byte(secret), time.Now(), got[1].body)
		if alerts.Verify(sig, append(slices.Clone(got[1].body), ' '), []byte(secret), time.Minute, time.Now()) == nil ||
			alerts.Verify(sig, got[1].body, []byte("whsec_other"), time.Minute, time.Now()) == nil ||
			alerts.Verify(sig, got[1].body, []byte(secret), time.Minute, time.Now().Add(10*time.Minute)) == nil {
			t.Fatal("a bad signature verified")
		}
	})
}

// A receiver that keeps failing gets MaxAttempts requests and the alert
// ends failed.
func TestWebhookGivesUp(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		db := b.open()
		ws := storetest.MustCreateUser(t, db, "gives-up@example.com").PersonalWorkspaceID
		rcv := newReceiver(t, 100)
		s := newService(t, db, alerts.Options{MaxAttempts: 3, Backoff: 5 * time.Millisecond})
		secret := "a-receiver-chosen-secret-0123456789"
		if _, gen, err := s.PutSettings(ctx, ws, alerts.SettingsInput{WebhookURL: &rcv.URL, WebhookSecret: &secret}, nil); err != nil || gen != "" {
			t.Fatalf("%q %v", gen, err)
		}
		rcv.secret = []byte(secret)
		s.KeyQuarantined(ctx, ws, "key_1", "unauthorized")
		waitFor(t, "failure", func() bool {
			l := listAlerts(t, db, ws)
			return len(l) == 1 && l[0].Delivery.State == apiwallet.DeliveryFailed
		})
		a := listAlerts(t, db, ws)[0]
		if a.Delivery.Attempts != 3 || a.Delivery.LastStatus != 500 || !strings.Contains(a.Delivery.LastError, "500") {
			t.Fatalf("delivery = %+v", a.Delivery)
		}
		got := rcv.deliveries()
		if len(got) != 3 || got[0].sigErr != nil {
			t.Fatalf("receiver got %d: %+v", len(got), got)
		}
	})
}

// Webhook URLs cannot reach internal addresses unless allowed, neither
// when set nor when dialled.
func TestWebhookSSRF(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		url  string
		want string
	}{
		{"ftp://hooks.example.com/x", "http"},
		{"/relative", "http"},
		{"https://user:pw@hooks.example.com/", "credentials"},
		{"http://127.0.0.1:8080/hook", "private"},
		{"http://[::1]/hook", "private"},
		{"http://10.1.2.3/hook", "private"},
		{"http://169.254.169.254/latest/meta-data", "private"},
		{"http://192.168.1.1/", "private"},
		{"http://100.64.0.1/", "private"},
		{"http://[::ffff:127.0.0.1]/", "private"},
		{"http://localhost:9000/", "private"},
		{"http://metadata.google.internal/", "private"},
		{"http://0.0.0.0/", "private"},
	} {
		got := alerts.ValidateWebhookURL(ctx, tc.url, false)
		if !strings.Contains(got, tc.want) {
			t.Errorf("ValidateWebhookURL(%q) = %q, want it to mention %q", tc.url, got, tc.want)
		}
	}
	for _, ok := range []string{"https://8.8.8.8/hook", "http://1.1.1.1:8080/x?token=1"} {
		if got := alerts.ValidateWebhookURL(ctx, ok, false); got != "" {
			t.Errorf("ValidateWebhookURL(%q) = %q", ok, got)
		}
	}
	if got := alerts.ValidateWebhookURL(ctx, "http://127.0.0.1:8080/hook", true); got != "" {
		t.Errorf("allowed private: %q", got)
	}

	// Set through the service: refused, and nothing stored.
	dir := t.TempDir()
	b := &backend{t: t, dsn: filepath.Join(dir, "wallet.db"), dir: dir}
	db := b.open()
	ws := storetest.MustCreateUser(t, db, "ssrf@example.com").PersonalWorkspaceID
	strict := alerts.New(db, nil, quiet, alerts.Options{Backoff: time.Millisecond, MaxAttempts: 1})
	t.Cleanup(strict.Close)
	hits := atomic.Int64{}
	inside := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer inside.Close()
	_, _, err := strict.PutSettings(ctx, ws, alerts.SettingsInput{WebhookURL: &inside.URL}, nil)
	if e, ok := err.(*apiwallet.Error); !ok || e.Code != apiwallet.EINVALID || len(e.Fields) != 1 || e.Fields[0].Field != "webhookUrl" {
		t.Fatalf("PutSettings(loopback) = %v", err)
	}
	if _, err := db.FindAlertSettings(ctx, ws); apiwallet.ErrorCode(err) != apiwallet.ENOTFOUND {
		t.Fatal("refused settings were stored")
	}
	bad := []int{0}
	if _, _, err := strict.PutSettings(ctx, ws, alerts.SettingsInput{Thresholds: bad}, nil); apiwallet.ErrorCode(err) != apiwallet.EINVALID {
		t.Fatalf("threshold 0: %v", err)
	}
	// Stored anyway (as if DNS changed after the check): the dial refuses.
	if err := db.PutAlertSettings(ctx, &apiwallet.AlertSettings{WorkspaceID: ws, Thresholds: []int{80},
		WebhookURL: inside.URL, WebhookSecret: []byte("whsec_x")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := strict.Check(ctx, ws, 900, 1000, "2031-03"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "refusal", func() bool {
		l := listAlerts(t, db, ws)
		return len(l) == 1 && l[0].Delivery.State == apiwallet.DeliveryFailed
	})
	if a := listAlerts(t, db, ws)[0]; hits.Load() != 0 || !strings.Contains(a.Delivery.LastError, "loopback") {
		t.Fatalf("internal receiver hit %d times; last error %q", hits.Load(), a.Delivery.LastError)
	}
}

// The evaluator finds plan and key crossings from the usage records alone.
func TestEvaluator(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		db := b.open()
		s := newService(t, db, alerts.Options{})
		v := newVault(t, db)
		ws := storetest.MustCreateUser(t, db, "evaluator@example.com").PersonalWorkspaceID
		quota := int64(10)
		k, err := v.CreateKey(ctx, apiwallet.KeyCreate{WorkspaceID: ws, Secret: "sk_test_evaluator_0001", Service: "openai",
			Tier: apiwallet.TierPaid, Enabled: true, CreatedBy: "usr_test", Metadata: apiwallet.KeyMetadata{Quota: &quota}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		var batch []apiwallet.Usage
		for i := range 9 {
			batch = append(batch, apiwallet.Usage{ID: apiwallet.NewID("use"), WorkspaceID: ws, Service: "openai",
				KeyID: k.ID, Status: 200, CreatedAt: now.Add(-time.Duration(i) * time.Second)})
		}
		if err := db.InsertUsage(ctx, batch); err != nil {
			t.Fatal(err)
		}
		e := &alerts.Evaluator{Alerts: s, Store: db, Usage: db, Log: quiet,
			IncludedCalls: func(context.Context, string) (int64, error) { return 10, nil },
			KeyPeriod:     func(string) string { return alerts.PeriodDay }}
		for range 2 {
			if err := e.RunOnce(ctx); err != nil {
				t.Fatal(err)
			}
		}
		day, month := alerts.PeriodLabel(alerts.PeriodDay, now), alerts.PeriodLabel(alerts.PeriodMonth, now)
		got := summary(listAlerts(t, db, ws))
		want := []string{"key_quota/" + k.ID + "/" + day + "/80", "plan_quota/plan/" + month + "/80"}
		if !slices.Equal(got, want) {
			t.Fatalf("alerts = %v, want %v", got, want)
		}
		if err := db.InsertUsage(ctx, []apiwallet.Usage{{ID: apiwallet.NewID("use"), WorkspaceID: ws, Service: "openai",
			KeyID: k.ID, Status: 200, CreatedAt: now}}); err != nil {
			t.Fatal(err)
		}
		if err := e.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		if got := listAlerts(t, db, ws); len(got) != 4 {
			t.Fatalf("after reaching 100%%: %v", summary(got))
		}
		// Run loops until its context ends.
		rctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		e.Interval = 10 * time.Millisecond
		e.Run(rctx)
	})
}

// countingStore counts the store calls Check makes.
type countingStore struct {
	*sqldb.DB
	creates, settings atomic.Int64
}

func (c *countingStore) CreateAlert(ctx context.Context, a *apiwallet.Alert, ev *apiwallet.AuditEvent) (bool, error) {
	c.creates.Add(1)
	return c.DB.CreateAlert(ctx, a, ev)
}

func (c *countingStore) FindAlertSettings(ctx context.Context, ws string) (*apiwallet.AlertSettings, error) {
	c.settings.Add(1)
	return c.DB.FindAlertSettings(ctx, ws)
}

// Once a crossing is stored, checking it again costs no database round
// trip, so Check may run on every request.
func TestCheckIsCheapOnceRaised(t *testing.T) {
	dir := t.TempDir()
	db := (&backend{t: t, dsn: filepath.Join(dir, "wallet.db"), dir: dir}).open()
	ws := storetest.MustCreateUser(t, db, "cheap@example.com").PersonalWorkspaceID
	cs := &countingStore{DB: db}
	s := alerts.New(cs, nil, quiet, alerts.Options{})
	t.Cleanup(s.Close)
	ctx := context.Background()
	if r, err := s.Check(ctx, ws, 1000, 1000, "2031-03"); err != nil || len(r) != 2 {
		t.Fatalf("first check: %v, %v", r, err)
	}
	creates, settings := cs.creates.Load(), cs.settings.Load()
	for range 1000 {
		if r, err := s.Check(ctx, ws, 1000, 1000, "2031-03"); err != nil || len(r) != 0 {
			t.Fatalf("repeat: %v, %v", r, err)
		}
	}
	if cs.creates.Load() != creates || cs.settings.Load() != settings {
		t.Fatalf("1000 repeated checks made %d inserts and %d settings reads", cs.creates.Load()-creates, cs.settings.Load()-settings)
	}
}
