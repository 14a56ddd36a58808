package web_test

// Browser tests: Debian's chromium, headless, driven by chromedp against a
// real wallet (the full wiring of internal/wallet on SQLite, and on
// PostgreSQL where one is configured) and a local stub upstream. They
// click through the pages as a person would; on failure they save a
// screenshot under testdata/failures/ (ignored by git).

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/alerts"
	"github.com/apikeywallet/apiwallet/internal/config"
	"github.com/apikeywallet/apiwallet/internal/metering"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
	"github.com/apikeywallet/apiwallet/internal/testenv"
	"github.com/apikeywallet/apiwallet/internal/wallet"
)

//go:embed testdata/axe-core/axe.min.js
var axeSource string

const password = "correct horse battery"

// walletServer is a full wallet served over HTTP on loopback.
type walletServer struct {
	URL string
	w   *wallet.Wallet
	db  *sqldb.DB
}

// stubUpstream answers every call like a weather API would.
func stubUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"name":"Paris","main":{"temp":281.4}}`)
	}))
	t.Cleanup(up.Close)
	return up
}

func startWallet(t *testing.T, dsn, upstream string) *walletServer {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.Load([]string{
		"JWT_SECRET=test-secret-test-secret-test-secret-0123",
		"ENCRYPTION_KEY=" + strings.Repeat("cd", 32),
		"APIWALLET_DATA_DIR=" + t.TempDir(),
		"OPENWEATHER_BASE_URL=" + upstream,
		"OPENAI_BASE_URL=" + upstream,
		"STRIPE_BASE_URL=" + upstream,
	})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := sqldb.Open(ctx, dsn, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, log); err != nil {
		t.Fatal(err)
	}
	w, err := wallet.New(ctx, wallet.Deps{Config: cfg, DB: db, Log: log,
		Metering: metering.Options{FlushInterval: 20 * time.Millisecond},
		Alerts:   alerts.Options{Backoff: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	db.OnCommit = w.Proxy.Epoch().Bump
	srv := httptest.NewServer(w.Handler)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		_ = w.Close(context.Background())
	})
	return &walletServer{URL: srv.URL, w: w, db: db}
}

// call sends a request to the wallet's API with a bearer token.
func (ws *walletServer) call(t *testing.T, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, ws.URL+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

// browser starts a headless chromium with a fresh profile and returns a
// chromedp context for one tab. When t fails, the tab's screenshot is
// saved first.
func browser(t *testing.T, width, height int64) context.Context {
	t.Helper()
	bin := testenv.RequireChromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.WindowSize(int(width), int(height)),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// A script error anywhere fails the test.
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			t.Errorf("script error at %s:%d: %s", d.URL, d.LineNumber, msg)
		}
	}))
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	// Every document reports Content-Security-Policy violations into
	// window.__csp, for the tests to assert there are none.
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
			Source: `window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`})
		return err
	}), chromedp.EmulateViewport(width, height)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Logf("no failure screenshot: %v", err)
			return
		}
		dir := filepath.Join("testdata", "failures")
		_ = os.MkdirAll(dir, 0o755)
		name := filepath.Join(dir, regexp.MustCompile(`[^A-Za-z0-9_-]+`).ReplaceAllString(t.Name(), "_")+".png")
		if err := os.WriteFile(name, png, 0o644); err == nil {
			t.Logf("screenshot of the failure: %s", name)
		}
	})
	return ctx
}

// run runs the steps, each bounded so that a missing element fails the
// test with its name instead of hanging.
func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string, opts ...chromedp.EvaluateOption) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		t.Fatalf("evaluate %.60s: %v", expr, err)
	}
	return v
}

// waitText waits until the element's text matches re.
func waitText(t *testing.T, ctx context.Context, sel string, re *regexp.Regexp, what string) string {
	t.Helper()
	var got string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		v, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(sel)))
		cancel()
		if err == nil {
			got = v
		}
		if err == nil && re.MatchString(got) {
			return got
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: %s shows %q, want it to match %s", what, sel, got, re)
	return ""
}

// noCSPViolations fails if the page reported any CSP violation.
func noCSPViolations(t *testing.T, ctx context.Context, where string) {
	t.Helper()
	v := eval[[]string](t, ctx, `window.__csp || []`)
	if len(v) > 0 {
		t.Errorf("%s: Content-Security-Policy violations: %q", where, v)
	}
}

// axeCheck injects axe-core and fails on any serious or critical
// violation of the page as it is now.
func axeCheck(t *testing.T, ctx context.Context, where string) {
	t.Helper()
	eval[bool](t, ctx, axeSource+";true")
	out := eval[string](t, ctx, `axe.run(document, {resultTypes: ["violations"]}).then((r) => JSON.stringify(
			r.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => ({
				id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ") + " " + n.failureSummary)}))))`,
		chromedp.EvalAwaitPromise)
	if out != "[]" {
		t.Errorf("%s: accessibility violations (serious or critical): %s", where, out)
	}
}

func forEachBackend(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, filepath.Join(t.TempDir(), "wallet.db")) })
	t.Run("postgres", func(t *testing.T) { fn(t, testenv.PostgresURL(t)) })
}

// TestBrowserNewUserSeesSavingsLive is the whole first session: a visitor
// reads the landing page and registers, adds a free and a paid key,
// creates an access token, and — without reloading — sees the calls an app
// makes with it in the usage chart and the savings figure.
//
// It needs GET /plans, GET /usage, GET /usage/live, GET /usage/keys and
// GET /usage/recommendations (the analytics API).
func TestBrowserNewUserSeesSavingsLive(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		up := stubUpstream(t)
		ws := startWallet(t, dsn, up.URL)
		ctx := browser(t, 1280, 900)

		// The landing page: plans from the plans data, the calculator.
		run(t, ctx, "open the landing page", chromedp.Navigate(ws.URL+"/"),
			chromedp.WaitVisible(chromedp.CSS(`#plans .plan`)))
		waitText(t, ctx, `#plans [data-plan="professional"] .amount`, regexp.MustCompile(`^\$29$`), "professional price")
		run(t, ctx, "use the calculator",
			chromedp.SetValue(chromedp.CSS(`#roi-calls`), ""), chromedp.SendKeys(chromedp.CSS(`#roi-calls`), "1000000"),
			chromedp.SetValue(chromedp.CSS(`#roi-share`), ""), chromedp.SendKeys(chromedp.CSS(`#roi-share`), "50"),
			chromedp.SetValue(chromedp.CSS(`#roi-price`), ""), chromedp.SendKeys(chromedp.CSS(`#roi-price`), "0.001"))
		// 1,000,000 calls × 50% × $0.001 = $500 a month, $6,000 a year.
		waitText(t, ctx, `#roi-month`, regexp.MustCompile(`^\$500\.00$`), "saved per month")
		waitText(t, ctx, `#roi-year`, regexp.MustCompile(`^\$6,000\.00$`), "saved per year")
		axeCheck(t, ctx, "landing page")

		// Sign up from the landing page.
		run(t, ctx, "register",
			chromedp.SendKeys(chromedp.CSS(`#signup input[name=name]`), "Dana Dev"),
			chromedp.SendKeys(chromedp.CSS(`#signup input[name=email]`), "dana@example.com"),
			chromedp.SendKeys(chromedp.CSS(`#signup input[name=password]`), password),
			chromedp.Click(chromedp.CSS(`#signup button[type=submit]`)))
		waitText(t, ctx, `#page-title`, regexp.MustCompile(`Usage`), "dashboard after sign-up")
		if eval[bool](t, ctx, `document.cookie.includes("awk_session")`) {
			t.Error("the session cookie is readable from script")
		}

		// Keys: a free key with a quota of 7 and a paid key.
		run(t, ctx, "open the keys page", chromedp.Click(chromedp.CSS(`nav a[href^="/app/keys"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#add-key`)))
		addKey := func(tier, secret, label, quota string) {
			run(t, ctx, "add a "+tier+" key",
				chromedp.Click(chromedp.CSS(`#add-key`)),
				chromedp.WaitVisible(chromedp.CSS(`dialog select[name=service]`)),
				chromedp.SetValue(chromedp.CSS(`dialog select[name=service]`), "openweather"),
				chromedp.SetValue(chromedp.CSS(`dialog select[name=tier]`), tier),
				chromedp.SendKeys(chromedp.CSS(`dialog input[name=label]`), label),
				chromedp.SendKeys(chromedp.CSS(`dialog input[name=quota]`), quota),
				chromedp.SendKeys(chromedp.CSS(`dialog input[name=key]`), secret),
				chromedp.Click(chromedp.CSS(`dialog button[type=submit]`)),
				chromedp.WaitNotPresent(chromedp.CSS(`dialog`)))
		}
		addKey("free", "owm_free_0123456789abcdef", "Free weather", "7")
		waitText(t, ctx, `main table`, regexp.MustCompile(`Free weather`), "keys table")
		addKey("paid", "owm_paid_fedcba9876543210", "Paid weather", "")
		body := waitText(t, ctx, `main table`, regexp.MustCompile(`Paid weather[\s\S]*|Free weather[\s\S]*Paid weather`), "keys table")
		if strings.Contains(body, "0123456789abcdef") || strings.Contains(body, "fedcba9876543210") {
			t.Fatalf("the keys page shows a secret: %q", body)
		}
		axeCheck(t, ctx, "keys page")

		// An access token for the app, shown once.
		run(t, ctx, "create a token", chromedp.Click(chromedp.CSS(`nav a[href^="/app/tokens"]`)),
			chromedp.WaitVisible(chromedp.CSS(`form input[name=name]`)),
			chromedp.SendKeys(chromedp.CSS(`form input[name=name]`), "weather-app"),
			chromedp.Click(chromedp.CSS(`form input[value=openweather]`)),
			chromedp.Click(chromedp.CSS(`form button[type=submit]`)),
			chromedp.WaitVisible(chromedp.CSS(`#new-token-value`)))
		token := eval[string](t, ctx, `document.getElementById("new-token-value").value`)
		if !strings.HasPrefix(token, apiwallet.AccessTokenPrefix) {
			t.Fatalf("token shown = %q", token)
		}

		// The usage page, live; then the app calls through the wallet.
		run(t, ctx, "open the usage page", chromedp.Click(chromedp.CSS(`nav a[href^="/app/usage"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#stat-calls`)),
		)
		eval[bool](t, ctx, `window.__sameDocument = true`)
		waitText(t, ctx, `#live-status`, regexp.MustCompile(`^Live`), "live status")
		waitText(t, ctx, `#stat-calls`, regexp.MustCompile(`^0$`), "calls before")
		for i := range 12 {
			req, _ := http.NewRequest("GET", ws.URL+"/proxy/openweather/data/2.5/weather?q=Paris", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("proxied call %d: status %d", i+1, res.StatusCode)
			}
		}
		waitText(t, ctx, `#stat-calls`, regexp.MustCompile(`^12$`), "calls after")
		// 7 calls on the free key would have cost OpenWeather's $0.0015
		// each on the paid key: $0.0105 saved.
		waitText(t, ctx, `#stat-savings`, regexp.MustCompile(`^\$0\.0105$`), "savings after")
		charted := eval[string](t, ctx, `document.getElementById("chart-calls").dataset.calls`)
		same := eval[bool](t, ctx, `window.__sameDocument === true`)
		if charted != "12" || !same {
			t.Fatalf("chart holds %q calls (want 12); same document: %v", charted, same)
		}
		axeCheck(t, ctx, "usage page")
		noCSPViolations(t, ctx, "dashboard")
	})
}

// TestBrowserAdminChangesPlanAndPrice: an ADMIN moves a user to another
// plan and edits a price; the landing page shows the new price at once.
func TestBrowserAdminChangesPlanAndPrice(t *testing.T) {
	up := stubUpstream(t)
	ws := startWallet(t, filepath.Join(t.TempDir(), "wallet.db"), up.URL)
	if _, err := ws.w.Auth.CreateUser(context.Background(), "admin@example.com", password, "Ada Admin", apiwallet.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	status, reg := ws.call(t, "POST", "/auth/register", "", map[string]string{"email": "user@example.com", "password": password, "name": "Uma User"})
	if status != http.StatusCreated {
		t.Fatalf("register: %d %v", status, reg)
	}
	userID := reg["user"].(map[string]any)["id"].(string)
	ctx := browser(t, 1280, 900)

	run(t, ctx, "log in as admin", chromedp.Navigate(ws.URL+"/app/login"),
		chromedp.WaitVisible(chromedp.CSS(`input[name=email]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=email]`), "admin@example.com"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), password),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	waitText(t, ctx, `#page-title`, regexp.MustCompile(`Usage`), "dashboard after login")

	run(t, ctx, "change the user's plan", chromedp.Click(chromedp.CSS(`nav a[href^="/app/admin/users"]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[aria-label="Edit user@example.com"]`)),
		chromedp.Click(chromedp.CSS(`button[aria-label="Edit user@example.com"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#user-plan`)),
		chromedp.SetValue(chromedp.CSS(`#user-plan`), "enterprise"),
		chromedp.Click(chromedp.CSS(`dialog button[type=submit]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`dialog`)))
	adminTok := login(t, ws, "admin@example.com")
	if _, u := ws.call(t, "GET", "/admin/users/"+userID, adminTok, nil); u["plan"] != "enterprise" {
		t.Fatalf("user's plan after the change: %v", u["plan"])
	}

	run(t, ctx, "edit the professional price", chromedp.Click(chromedp.CSS(`nav a[href^="/app/admin/plans"]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[aria-label="Edit Professional"]`)),
		chromedp.Click(chromedp.CSS(`button[aria-label="Edit Professional"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#plan-price`)),
		chromedp.SetValue(chromedp.CSS(`#plan-price`), ""),
		chromedp.SendKeys(chromedp.CSS(`#plan-price`), "35"),
		chromedp.Click(chromedp.CSS(`dialog button[type=submit]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`dialog`)))
	waitText(t, ctx, `main table`, regexp.MustCompile(`\$35\.00`), "plans table")

	run(t, ctx, "log out", chromedp.Click(chromedp.CSS(`#logout`)),
		chromedp.WaitVisible(chromedp.CSS(`#plans .plan`)))
	waitText(t, ctx, `#plans [data-plan="professional"] .amount`, regexp.MustCompile(`^\$35$`), "landing price")
	// The logout revoked the session: the dashboard asks to log in again.
	run(t, ctx, "open the dashboard", chromedp.Navigate(ws.URL+"/app/keys"), chromedp.WaitVisible(chromedp.CSS(`input[name=password]`)))
	noCSPViolations(t, ctx, "admin pages")
}

func login(t *testing.T, ws *walletServer, email string) string {
	t.Helper()
	status, m := ws.call(t, "POST", "/auth/login", "", map[string]string{"email": email, "password": password})
	if status != http.StatusOK {
		t.Fatalf("login %s: %d %v", email, status, m)
	}
	return fmt.Sprint(m["token"])
}

// TestBrowserEveryPage opens each page of the dashboard as an ADMIN with
// some data: each must render without a script error, an error notice or a
// CSP violation, and pass axe-core.
func TestBrowserEveryPage(t *testing.T) {
	up := stubUpstream(t)
	ws := startWallet(t, filepath.Join(t.TempDir(), "wallet.db"), up.URL)
	if _, err := ws.w.Auth.CreateUser(context.Background(), "admin@example.com", password, "Ada Admin", apiwallet.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	tok := login(t, ws, "admin@example.com")
	if st, m := ws.call(t, "POST", "/keys", tok, map[string]any{"key": "owm_free_0123456789", "service": "openweather", "tier": "free"}); st != http.StatusCreated {
		t.Fatalf("add key: %d %v", st, m)
	}
	if st, m := ws.call(t, "POST", "/workspaces", tok, map[string]any{"name": "Acme"}); st != http.StatusCreated {
		t.Fatalf("create workspace: %d %v", st, m)
	}
	ctx := browser(t, 1280, 900)
	run(t, ctx, "log in", chromedp.Navigate(ws.URL+"/app/login"),
		chromedp.WaitVisible(chromedp.CSS(`input[name=email]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=email]`), "admin@example.com"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), password),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`#stat-calls`)))
	for _, c := range []struct{ path, title string }{
		{"/app/tokens", "Access tokens"}, {"/app/team", "Team"}, {"/app/billing", "Plan & billing"},
		{"/app/alerts", "Alerts"}, {"/app/audit", "Audit log"}, {"/app/settings", "Settings"},
		{"/app/admin/business", "Business"}, {"/app/admin/users", "Users"}, {"/app/admin/plans", "Plans"},
		{"/app/admin/services", "Services"},
	} {
		run(t, ctx, "open "+c.path, chromedp.Click(chromedp.CSS(`nav a[href^="`+c.path+`"]`)))
		waitText(t, ctx, `#page-title`, regexp.MustCompile(`^`+regexp.QuoteMeta(c.title)+`$`), c.path)
		// Wait for the page's requests to settle: no loading line left.
		deadline := time.Now().Add(15 * time.Second)
		for eval[bool](t, ctx, `!!document.querySelector("main .loading")`) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if msg := eval[string](t, ctx, `(document.querySelector("main .notice.error") || {}).textContent || ""`); msg != "" {
			t.Errorf("%s shows an error: %s", c.path, msg)
		}
		axeCheck(t, ctx, c.path)
	}
	// The workspace switcher acts in the team workspace.
	run(t, ctx, "switch workspace", chromedp.Click(chromedp.CSS(`nav a[href^="/app/team"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#workspace`)))
	eval[bool](t, ctx, `(() => { const s = document.getElementById("workspace"); s.value = [...s.options].find((o) => o.text.startsWith("Acme")).value; s.dispatchEvent(new Event("change")); return true })()`)
	waitText(t, ctx, `main .lead`, regexp.MustCompile(`Acme`), "team page of Acme")
	noCSPViolations(t, ctx, "every page")
}
