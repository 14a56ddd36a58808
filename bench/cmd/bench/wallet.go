package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// skipError says the wallet part cannot run yet (a route it needs is not
// built); the rest of the benchmark goes on without it.
type skipError struct{ reason string }

func (e *skipError) Error() string { return e.reason }

// wallet is a running `apiwallet serve` prepared for the benchmark: a
// registered user, its stored stripe keys and a stripe-scoped wallet access
// token, all made through the public API.
type wallet struct {
	r      *runner
	proc   *proc
	base   string // http://127.0.0.1:PORT
	jwt    string // the bench user's login token
	token  string // the wallet access token (awk_…) the load sends
	runID  string // makes this run's key secrets unique
	stored int    // keys stored so far
	client *http.Client
}

// walletEnv is the wallet's environment: a fresh data directory, loopback,
// the stub as the stripe service's base URL, and the plan limits raised so
// that they are enforced on every call but never refuse the benchmark's.
func (r *runner) walletEnv(name, upstream string, port int) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"APIWALLET_DATA_DIR=" + filepath.Join(r.tmp, name+"-data"),
		"HOST=127.0.0.1",
		"PORT=" + strconv.Itoa(port),
		"STRIPE_BASE_URL=" + upstream,
		// Rate limit and monthly quota stay on, far above what the load
		// sends (the largest values the configuration accepts).
		"MAX_REQUESTS_PER_MINUTE=1073741824",
		"DEFAULT_FREE_QUOTA=1099511627776",
		// The largest key count is stored in one workspace.
		"MAX_KEYS_PER_WORKSPACE=10000000",
		// Metrics on, as an operator watching the wallet runs it.
		"ENABLE_METRICS=true",
	}
	if r.certFile != "" {
		// Go reads the roots from SSL_CERT_FILE on Linux.
		env = append(env, "SSL_CERT_FILE="+r.certFile)
	}
	// WALLET_ENV adds or overrides variables ("LOG_LEVEL=warn GOGC=200").
	return append(env, r.cfg.WalletEnv...)
}

// startWallet starts the wallet and prepares it with the first key count.
// A *skipError means a route it needs answered 404: not built yet.
func (r *runner) startWallet(ctx context.Context, name, upstream string, keys int) (*wallet, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p, err := r.start(name, r.walletBin, []string{"serve"}, r.walletEnv(name, upstream, port))
	if err != nil {
		return nil, err
	}
	w := &wallet{r: r, proc: p, base: fmt.Sprintf("http://127.0.0.1:%d", port), runID: randHex(4),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	if err := waitHTTP(ctx, p, w.base+"/monitoring/health", nil, http.StatusOK, 60*time.Second); err != nil {
		return nil, err
	}
	if err := w.register(ctx); err != nil {
		return nil, err
	}
	if err := w.storeKeys(ctx, keys); err != nil {
		return nil, err
	}
	if err := w.createToken(ctx); err != nil {
		return nil, err
	}
	if err := w.probe(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

// url is the proxied endpoint the load drives.
func (w *wallet) url() string { return w.base + "/proxy/stripe/v1/charges" }

// call sends a JSON request with the bench user's login token.
func (w *wallet) call(ctx context.Context, method, path string, in any, out any) (int, []byte, http.Header, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, nil, nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, w.base+path, body)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if w.jwt != "" {
		req.Header.Set("Authorization", "Bearer "+w.jwt)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, resp.Header, err
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, raw, resp.Header, fmt.Errorf("%s %s: bad JSON answer: %v", method, path, err)
		}
	}
	return resp.StatusCode, raw, resp.Header, nil
}

// notBuilt turns a 404 from one of the wallet's routes into a skipError.
func notBuilt(method, path string, status int, raw []byte, what string) error {
	if status == http.StatusNotFound {
		return &skipError{fmt.Sprintf("%s %s answered 404 (%s): %s is not built yet", method, path, shorten(string(raw), 120), what)}
	}
	return nil
}

func (w *wallet) register(ctx context.Context) error {
	var out struct {
		Token string `json:"token"`
	}
	in := map[string]string{
		"email":    "bench-" + w.runID + "@example.com",
		"password": "bench-" + randHex(16),
		"name":     "Bench",
	}
	status, raw, _, err := w.call(ctx, "POST", "/auth/register", in, &out)
	if err != nil {
		return err
	}
	if err := notBuilt("POST", "/auth/register", status, raw, "registration"); err != nil {
		return err
	}
	if status != http.StatusCreated || out.Token == "" {
		return fmt.Errorf("POST /auth/register: status %d: %s", status, shorten(string(raw), 300))
	}
	w.jwt = out.Token
	return nil
}

// keySecret is the i-th stored key: the stub accepts any sk_test_bench_ key.
func (w *wallet) keySecret(i int) string {
	return fmt.Sprintf("sk_test_bench_%s%09d%s", w.runID, i, "Zq4Xw9Lm2Rt7")
}

// storeKeys stores stripe keys through POST /keys until n are stored,
// concurrently (INSERT_CONCURRENCY requests at once), and reports the time.
func (w *wallet) storeKeys(ctx context.Context, n int) error {
	if n <= w.stored {
		return nil
	}
	from := w.stored
	start := time.Now()
	var (
		next     atomic.Int64
		done     atomic.Int64
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	next.Store(int64(from))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) { errOnce.Do(func() { firstErr = err; cancel() }) }
	for range w.r.cfg.InsertConcurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := w.storeKey(ctx, i); err != nil {
					fail(err)
					return
				}
				done.Add(1)
			}
		})
	}
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	for waiting := true; waiting; {
		select {
		case <-finished:
			waiting = false
		case <-progress.C:
			d := done.Load()
			w.r.logf("wallet: stored %d of %d keys (%.0f keys/s)", int64(from)+d, n, float64(d)/time.Since(start).Seconds())
		}
	}
	if firstErr != nil {
		return firstErr
	}
	took := time.Since(start)
	w.stored = n
	w.r.insertTimes[n] = took
	w.r.logf("wallet: %d keys stored (%d new in %s, %.0f keys/s)", n, n-from, took.Round(time.Millisecond), float64(n-from)/took.Seconds())
	return nil
}

func (w *wallet) storeKey(ctx context.Context, i int) error {
	in := map[string]any{
		"key":      w.keySecret(i),
		"service":  "stripe",
		"tier":     "paid",
		"metadata": map[string]any{"type": "payment", "quota": 0, "description": fmt.Sprintf("bench key %d", i)},
	}
	for attempt := 0; ; attempt++ {
		status, raw, h, err := w.call(ctx, "POST", "/keys", in, nil)
		if err != nil {
			return err
		}
		if err := notBuilt("POST", "/keys", status, raw, "key storage"); err != nil {
			return err
		}
		switch {
		case status == http.StatusOK || status == http.StatusCreated:
			return nil
		case status == http.StatusTooManyRequests && attempt < 100:
			wait := time.Second
			if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		default:
			return fmt.Errorf("POST /keys (key %d): status %d: %s", i, status, shorten(string(raw), 300))
		}
	}
}

// createToken makes the stripe-scoped wallet access token the load sends.
func (w *wallet) createToken(ctx context.Context) error {
	var out struct {
		Token string `json:"token"`
	}
	in := map[string]any{"name": "bench", "services": []string{"stripe"}}
	status, raw, _, err := w.call(ctx, "POST", "/tokens", in, &out)
	if err != nil {
		return err
	}
	if err := notBuilt("POST", "/tokens", status, raw, "wallet access tokens"); err != nil {
		return err
	}
	if status != http.StatusCreated && status != http.StatusOK || out.Token == "" {
		return fmt.Errorf("POST /tokens: status %d: %s", status, shorten(string(raw), 300))
	}
	w.token = out.Token
	return nil
}

// probe sends one proxied call and checks it reached the stub with a key.
func (w *wallet) probe(ctx context.Context) error {
	before, err := w.r.stubStats(ctx)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "GET", w.url(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+w.token)
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := notBuilt("GET", "/proxy/stripe/v1/charges", resp.StatusCode, raw, "the transparent proxy"); err != nil {
		return err
	}
	after, err := w.r.stubStats(ctx)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || after.Requests == before.Requests || after.Mismatches != before.Mismatches {
		return fmt.Errorf("GET /proxy/stripe/v1/charges: status %d (%s); the stub saw %d requests, %d with a wrong Authorization",
			resp.StatusCode, shorten(string(raw), 200), after.Requests-before.Requests, after.Mismatches-before.Mismatches)
	}
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// isSkip reports whether err is a skipError, and its reason.
func isSkip(err error) (string, bool) {
	var s *skipError
	if errors.As(err, &s) {
		return s.reason, true
	}
	return "", false
}
