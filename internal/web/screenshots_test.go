package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestScreenshots writes the README's screenshots of the landing, usage and
// keys pages at desktop and phone width into the directory named by
// APIWALLET_SCREENSHOTS (go test -run TestScreenshots ./internal/web/ with
// APIWALLET_SCREENSHOTS=$PWD/docs/screenshots); without it, it skips. The
// data is made through the API: keys of three services and calls through
// the proxy against a stub upstream; or, with APIWALLET_SCREENSHOTS_URL,
// _EMAIL and _PASSWORD, a running wallet such as one filled by
// `apiwallet seed --demo`.
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("APIWALLET_SCREENSHOTS")
	if dir == "" {
		t.Skip("APIWALLET_SCREENSHOTS not set: screenshots are taken on demand")
	}
	base, email, pw := os.Getenv("APIWALLET_SCREENSHOTS_URL"), os.Getenv("APIWALLET_SCREENSHOTS_EMAIL"), os.Getenv("APIWALLET_SCREENSHOTS_PASSWORD")
	if base == "" {
		base, email, pw = screenshotData(t), "finance@acme.example", password
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, size := range []struct {
		name string
		w, h int64
	}{{"1280", 1280, 800}, {"390", 390, 844}} {
		ctx := browser(t, size.w, size.h)
		shot := func(name, path, ready string) {
			run(t, ctx, "open "+path, chromedp.Navigate(base+path), chromedp.WaitVisible(chromedp.CSS(ready)),
				chromedp.Sleep(700*time.Millisecond))
			sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			capture := chromedp.CaptureScreenshot()
			if os.Getenv("APIWALLET_SCREENSHOTS_FULL") != "" { // the whole page, to review below the fold
				capture = chromedp.FullScreenshot(100)
			}
			png, err := chromedp.Run(sctx, capture)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name+"-"+size.name+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		shot("landing", "/", "#plans .plan")
		run(t, ctx, "log in", chromedp.Navigate(base+"/app/login"), chromedp.WaitVisible(chromedp.CSS(`input[name=email]`)),
			chromedp.SendKeys(chromedp.CSS(`input[name=email]`), email),
			chromedp.SendKeys(chromedp.CSS(`input[name=password]`), pw),
			chromedp.Click(chromedp.CSS(`button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`#stat-calls`)))
		shot("usage", "/app/usage", "#chart-calls .uplot")
		shot("keys", "/app/keys", "main table")
	}
}

// screenshotData starts a wallet with keys of three services and calls
// made through the proxy against a stub upstream, and returns its URL.
func screenshotData(t *testing.T) string {
	t.Helper()
	up := stubUpstream(t)
	ws := startWallet(t, filepath.Join(t.TempDir(), "wallet.db"), up.URL)
	status, _ := ws.call(t, "POST", "/auth/register", "", map[string]string{"email": "finance@acme.example", "password": password, "name": "Alex Finance"})
	if status != http.StatusCreated {
		t.Fatalf("register: %d", status)
	}
	tok := login(t, ws, "finance@acme.example")
	quota := func(n int) *int { return &n }
	for _, k := range []struct {
		service, tier, label string
		quota                *int
	}{
		{"openai", "free", "Starter credits", quota(120)}, {"openai", "paid", "Production", nil},
		{"openweather", "free", "Free tier", quota(80)}, {"openweather", "paid", "Paid plan", nil},
		{"anthropic", "paid", "Claude team", nil},
	} {
		st, m := ws.call(t, "POST", "/keys", tok, map[string]any{"key": fmt.Sprintf("sk_%s_%s_0123456789abcdef", k.service, k.tier),
			"service": k.service, "tier": k.tier, "label": k.label, "metadata": map[string]any{"quota": k.quota, "description": k.label}})
		if st != http.StatusCreated {
			t.Fatalf("add key: %d %v", st, m)
		}
	}
	_, m := ws.call(t, "POST", "/tokens", tok, map[string]any{"name": "checkout-service"})
	app := m["token"].(string)
	calls := map[string]int{"openai/v1/chat/completions": 260, "openweather/data/2.5/weather": 140, "anthropic/v1/messages": 60}
	for path, n := range calls {
		for range n {
			req, _ := http.NewRequest("POST", ws.URL+"/proxy/"+path, nil)
			req.Header.Set("Authorization", "Bearer "+app)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}
	time.Sleep(300 * time.Millisecond) // the usage writer flushes every 20 ms
	return ws.URL
}
