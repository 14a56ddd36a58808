package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
	"github.com/apikeywallet/apiwallet/internal/testenv"
	"github.com/apikeywallet/apiwallet/internal/vault"
)

// A wallet killed with SIGKILL under load, then started again, has lost no
// acknowledged write: every key it answered 201 for is there and decrypts
// to its secret, no key is left undecryptable, the audit chain verifies,
// and of the proxied calls it lost only the usage records still queued
// when it died (at most the recorder's flush interval, 1 s, of calls),
// counting none twice.
func TestCrashSafety(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		crashUnderLoad(t, dir, filepath.Join(dir, "wallet.db"))
	})
	t.Run("postgres", func(t *testing.T) { crashUnderLoad(t, t.TempDir(), testenv.PostgresURL(t)) })
}

func crashUnderLoad(t *testing.T, dir, dsn string) {
	ctx := context.Background()
	// The stub stamps each call it answers, to bound what the crash may
	// lose to the calls of the last flush interval.
	var (
		hitMu sync.Mutex
		hits  []time.Time
	)
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hitMu.Lock()
		hits = append(hits, time.Now())
		hitMu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[]}`)
	}))
	t.Cleanup(stub.Close)

	env := append(append([]string{}, clusterSecrets...), "DATABASE_URL="+dsn, "APIWALLET_DATA_DIR="+dir,
		"MAX_REQUESTS_PER_MINUTE=1073741824", "DEFAULT_FREE_QUOTA=100000000", "OPENAI_BASE_URL="+stub.URL)
	c := &cluster{t: t, client: &http.Client{Timeout: 10 * time.Second}}
	t.Cleanup(c.client.CloseIdleConnections)
	w := startWallet(t, dir, env...)
	w.waitHealth(t, 30*time.Second, "healthy")
	c.wallets = []*wallet{w}
	c.setup()

	var (
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		keyMu   sync.Mutex
		acked   = map[string]string{} // key id → secret, for every 201
		calls   atomic.Int64          // proxied calls answered 2xx
		keySeq  atomic.Int64
		running = func() bool {
			select {
			case <-stop:
				return false
			default:
				return true
			}
		}
	)
	for i := range 16 {
		wg.Go(func() {
			for running() {
				if st, _, _, err := c.do("GET", c.callURL(i), c.token, nil); err == nil && st/100 == 2 {
					calls.Add(1)
				} else if err != nil {
					return
				}
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for running() {
				secret := fmt.Sprintf("crash-secret-%08d-0123456789", keySeq.Add(1))
				st, _, b, err := c.do("POST", w.url+"/keys", c.jwt, map[string]any{"key": secret, "service": "openweather", "tier": "free"})
				if err != nil {
					return
				}
				if st == 201 {
					var k struct{ ID string }
					if json.Unmarshal(b, &k) != nil || k.ID == "" {
						t.Errorf("POST /keys 201 without an id: %s", b)
						return
					}
					id := k.ID
					keyMu.Lock()
					acked[id] = secret
					keyMu.Unlock()
				}
			}
		})
	}
	time.Sleep(3 * time.Second)
	killedAt := time.Now()
	if err := w.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-w.done
	close(stop)
	wg.Wait()

	// It starts again on the same data, and is healthy.
	w2 := startWallet(t, dir, env...)
	w2.waitHealth(t, 30*time.Second, "healthy")
	if st, _, b, err := c.do("GET", w2.url+"/keys?limit=1", c.jwt, nil); err != nil || st != 200 {
		t.Fatalf("after the restart GET /keys: %d %v %s", st, err, b)
	}
	if err := w2.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-w2.done

	db, err := sqldb.Open(ctx, dsn, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	root, err := vault.ParseRootKey(strings.TrimPrefix(clusterSecrets[1], "ENCRYPTION_KEY="))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := vault.NewService(ctx, db, root)
	if err != nil {
		t.Fatal(err)
	}
	// Every key acknowledged is there with its secret; every key stored
	// (including ones whose answer the crash cut off) decrypts.
	for id, secret := range acked {
		plain, err := keys.Reveal(ctx, c.ws, id)
		if err != nil || string(plain) != secret {
			t.Fatalf("acknowledged key %s after the crash: %v", id, err)
		}
	}
	stored := 0
	for after := ""; ; {
		page, err := keys.FindKeys(ctx, apiwallet.KeyFilter{WorkspaceID: c.ws, After: after, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range page {
			if _, err := keys.Reveal(ctx, c.ws, k.ID); err != nil {
				t.Fatalf("stored key %s does not decrypt: %v", k.ID, err)
			}
		}
		stored += len(page)
		if len(page) < 500 {
			break
		}
		after = page[len(page)-1].ID
	}

	cmd := exec.Command(bin, "audit", "verify")
	cmd.Dir = dir
	cmd.Env = cleanEnv(env...)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "audit log intact") {
		t.Fatalf("audit verify after the crash: %v\n%s", err, out)
	}

	// Usage: one record per call that reached the stub, except those
	// still queued at the kill; none counted twice; the rollups agree.
	arg := "?"
	if db.Dialect() == "postgres" {
		arg = "$1"
	}
	var records, rolled int64
	if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM usage_records WHERE workspace_id = `+arg, c.ws).Scan(&records); err != nil {
		t.Fatal(err)
	}
	if err := db.SQL().QueryRowContext(ctx, `SELECT COALESCE(SUM(calls), 0) FROM usage_hourly WHERE workspace_id = `+arg, c.ws).Scan(&rolled); err != nil {
		t.Fatal(err)
	}
	hitMu.Lock()
	total, window := int64(len(hits)), int64(0)
	for _, at := range hits {
		// The recorder's flush interval.
		if killedAt.Sub(at) < time.Second {
			window++
		}
	}
	hitMu.Unlock()
	lost := total - records
	t.Logf("killed after %d proxied calls (%d reached the stub) and %d acknowledged key writes (%d keys stored); "+
		"usage records %d, lost %d (calls in the last 1 s before the kill: %d); rollup calls %d",
		calls.Load(), total, len(acked), stored, records, lost, window, rolled)
	if len(acked) == 0 || calls.Load() == 0 {
		t.Fatal("the load did not run")
	}
	if stored < len(acked) {
		t.Fatalf("%d keys stored, %d acknowledged", stored, len(acked))
	}
	if lost < 0 {
		t.Fatalf("%d usage records for %d upstream calls: counted twice", records, total)
	}
	if lost > window {
		t.Fatalf("lost %d usage records, more than the %d calls of the last flush window", lost, window)
	}
	if rolled != records {
		t.Fatalf("hourly rollup says %d calls, usage_records %d", rolled, records)
	}
}
