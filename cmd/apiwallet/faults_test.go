package main_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet/internal/routing"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
	"github.com/apikeywallet/apiwallet/internal/testenv"
)

// phaseTally counts what clients saw in each phase of a fault: before, during
// and after it.
type phaseTally struct {
	mu     sync.Mutex
	counts map[string]map[string]int // phase → outcome → calls
}

func (p *phaseTally) add(phase, outcome string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.counts == nil {
		p.counts = map[string]map[string]int{}
	}
	if p.counts[phase] == nil {
		p.counts[phase] = map[string]int{}
	}
	p.counts[phase][outcome]++
}

func (p *phaseTally) get(phase, outcome string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[phase][outcome]
}

func (p *phaseTally) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, phase := range []string{"before", "during", "after"} {
		if len(p.counts[phase]) == 0 {
			continue
		}
		var outs []string
		for o, n := range p.counts[phase] {
			outs = append(outs, fmt.Sprintf("%s=%d", o, n))
		}
		sort.Strings(outs)
		fmt.Fprintf(&b, "%s: %s; ", phase, strings.Join(outs, " "))
	}
	return b.String()
}

// outcomeOf names what a client saw: a status and, for errors, whether the
// body was a problem.
func outcomeOf(st int, h http.Header, err error) string {
	if err != nil {
		return "transport-error"
	}
	o := fmt.Sprint(st)
	if st >= 400 && !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") {
		o += "-not-problem"
	}
	if st == http.StatusServiceUnavailable && h.Get("Retry-After") == "" {
		o += "-no-retry-after"
	}
	return o
}

// closed reports whether stop is closed.
func closed(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// proxyLoad runs workers goroutines on wg sending proxied calls until stop
// is closed, each counted in tally under the phase current when it ended,
// and the 2xx ones in served.
func proxyLoad(c *cluster, workers int, wg *sync.WaitGroup, stop <-chan struct{}, phase *atomic.Value, tally *phaseTally, served *atomic.Int64) {
	for i := range workers {
		wg.Go(func() {
			for !closed(stop) {
				st, h, _, err := c.do("GET", c.callURL(i), c.token, nil)
				if err == nil && st/100 == 2 {
					served.Add(1)
				}
				tally.add(phase.Load().(string), outcomeOf(st, h, err))
			}
		})
	}
}

// PostgreSQL restarted under load (stopped at once, as a crash, for 3 s):
// proxied calls go on being served from the cached token, keys and plan;
// management calls answer 503 problems, never a 500, and recover by
// themselves once the database is back; the usage of every call served
// during the outage is written once it is back, so nothing acknowledged is
// lost.
func TestPostgresRestartUnderLoad(t *testing.T) {
	pg := testenv.StartPostgres(t)
	stub := newStub(t)
	c := startCluster(t, 1, "DATABASE_URL="+pg.URL(), "MAX_REQUESTS_PER_MINUTE=1073741824",
		"DEFAULT_FREE_QUOTA=100000000", "OPENAI_BASE_URL="+stub.URL)
	c.setup()
	w := c.wallets[0]

	var (
		phase     atomic.Value
		proxied   phaseTally
		managed   phaseTally
		served    atomic.Int64 // proxied 2xx: calls the wallet acknowledged
		recovered atomic.Int64 // unix nanos of the first management 200 after the restart
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	phase.Store("before")
	running := func() bool { return !closed(stop) }
	proxyLoad(c, 8, &wg, stop, &phase, &proxied, &served)
	for range 2 {
		wg.Go(func() {
			for running() {
				st, h, _, err := c.do("GET", w.url+"/keys", c.jwt, nil)
				p := phase.Load().(string)
				managed.add(p, outcomeOf(st, h, err))
				if p == "after" && err == nil && st == 200 {
					recovered.CompareAndSwap(0, time.Now().UnixNano())
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	time.Sleep(time.Second)
	phase.Store("during")
	pg.Stop()
	time.Sleep(3 * time.Second)
	back := time.Now()
	pg.Start()
	phase.Store("after")
	for recovered.Load() == 0 && time.Since(back) < 30*time.Second {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	t.Logf("proxied: %s", &proxied)
	t.Logf("management: %s", &managed)
	if recovered.Load() == 0 {
		t.Fatalf("management calls did not recover within 30 s of the database's return; logs:\n%s", w.Logs())
	}
	t.Logf("management recovered %v after the database was started again", time.Unix(0, recovered.Load()).Sub(back).Round(time.Millisecond))
	for _, tally := range []*phaseTally{&proxied, &managed} {
		for _, p := range []string{"before", "during", "after"} {
			tally.mu.Lock()
			for o, n := range tally.counts[p] {
				if o != "200" && o != "503" {
					t.Errorf("%s: %d calls answered %s", p, n, o)
				}
			}
			tally.mu.Unlock()
		}
	}
	if n := proxied.get("during", "200"); n == 0 || proxied.get("during", "503") > 0 {
		t.Errorf("proxied calls during the outage: %d served, %d refused; want all served from the caches",
			n, proxied.get("during", "503"))
	}
	if managed.get("during", "503") == 0 {
		t.Error("no management call saw the outage")
	}

	// Every acknowledged call is recorded once the recorder has flushed
	// on SIGTERM.
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		t.Fatal("no exit 30 s after SIGTERM")
	}
	db := openDB(t, pg.URL())
	records := countRows(t, db, `SELECT COUNT(*) FROM usage_records WHERE workspace_id = $1 AND status = 200`, c.ws)
	t.Logf("acknowledged proxied calls %d, stub hits %d, usage records %d", served.Load(), stub.hits.Load(), records)
	if records != served.Load() || stub.hits.Load() != records {
		t.Fatalf("%d calls acknowledged, %d reached the stub, %d recorded: want all equal", served.Load(), stub.hits.Load(), records)
	}
}

// The SQLite disk full: writes answer 503 problems (never 500) and change
// nothing, reads and proxied calls go on, the usage of the calls served
// meanwhile waits in the recorder, and everything works again, with no
// acknowledged call lost, once space is freed.
func TestSQLiteDiskFull(t *testing.T) {
	dir := testenv.Tmpfs(t, 48)
	stub := newStub(t)
	c := startCluster(t, 1, "DATABASE_URL="+filepath.Join(dir, "wallet.db"), "APIWALLET_DATA_DIR="+dir,
		"MAX_REQUESTS_PER_MINUTE=1073741824", "DEFAULT_FREE_QUOTA=100000000", "OPENAI_BASE_URL="+stub.URL)
	c.setup()
	w := c.wallets[0]

	// Fill the disk.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()

	var (
		phase          atomic.Value
		proxied, keyed phaseTally
		served         atomic.Int64
		stop           = make(chan struct{})
		wg             sync.WaitGroup
		seq            atomic.Int64
	)
	phase.Store("during")
	running := func() bool { return !closed(stop) }
	proxyLoad(c, 4, &wg, stop, &phase, &proxied, &served)
	wg.Go(func() {
		for running() {
			p := phase.Load().(string)
			st, h, _, err := c.do("POST", w.url+"/keys", c.jwt, map[string]any{
				"key": fmt.Sprintf("disk-full-secret-%08d-0123456789", seq.Add(1)), "service": "openweather", "tier": "free"})
			keyed.add(p, outcomeOf(st, h, err))
			st, h, _, err = c.do("GET", w.url+"/keys?limit=1", c.jwt, nil)
			keyed.add(p, "read-"+outcomeOf(st, h, err))
			time.Sleep(10 * time.Millisecond)
		}
	})
	time.Sleep(2 * time.Second)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	phase.Store("after")
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	t.Logf("proxied: %s", &proxied)
	t.Logf("key writes and reads: %s", &keyed)

	if n := keyed.get("during", "503"); n == 0 {
		t.Error("no key write saw the full disk")
	}
	for _, tally := range []*phaseTally{&proxied, &keyed} {
		tally.mu.Lock()
		for p, outs := range tally.counts {
			for o, n := range outs {
				switch o {
				case "200", "201", "read-200":
				case "503":
					if p == "after" && tally == &proxied {
						t.Errorf("after: %d proxied calls answered 503", n)
					}
				default:
					t.Errorf("%s: %d calls answered %s", p, n, o)
				}
			}
		}
		tally.mu.Unlock()
	}
	if keyed.get("during", "read-200") == 0 || proxied.get("during", "200") == 0 {
		t.Error("reads and proxied calls stopped while the disk was full")
	}
	if keyed.get("after", "201") == 0 {
		t.Error("key writes did not recover once space was freed")
	}

	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-w.done
	db, err := sqldb.Open(context.Background(), filepath.Join(dir, "wallet.db"), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var records int64
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM usage_records WHERE workspace_id = ? AND status = 200`, c.ws).Scan(&records); err != nil {
		t.Fatal(err)
	}
	var keys int64
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM api_keys WHERE workspace_id = ?`, c.ws).Scan(&keys); err != nil {
		t.Fatal(err)
	}
	t.Logf("acknowledged proxied calls %d, stub hits %d, usage records %d; keys stored %d (201s %d)",
		served.Load(), stub.hits.Load(), records, keys, keyed.get("during", "201")+keyed.get("after", "201")+1)
	if records != served.Load() {
		t.Fatalf("%d calls acknowledged, %d recorded", served.Load(), records)
	}
	// setup stored one openai key; every other is a 201 of this test.
	if want := int64(keyed.get("during", "201") + keyed.get("after", "201") + 1); keys != want {
		t.Fatalf("%d keys stored, %d acknowledged: a refused write changed something", keys, want)
	}
}

// faultyUpstream is an OpenAI stand-in whose behaviour a test switches:
// healthy, slow (no headers within the wallet's UPSTREAM_TIMEOUT), resetting
// each connection, or answering bytes that are not HTTP. Behind a TCP proxy
// it can also go down (connections refused).
type faultyUpstream struct {
	mode atomic.Value // "ok", "slow", "reset", "garbage"
	hits atomic.Int64 // calls answered 200
	srv  *httptest.Server
	tcp  *testenv.Proxy
}

func newFaultyUpstream(t *testing.T) *faultyUpstream {
	u := &faultyUpstream{}
	u.mode.Store("ok")
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch u.mode.Load().(string) {
		case "slow":
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
				return
			}
		case "reset", "garbage":
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			if u.mode.Load() == "garbage" {
				_, _ = io.WriteString(conn, "SSH-2.0-OpenSSH_9.2\r\n\x00\x01\x02 not http at all\r\n\r\n")
			} else if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // close with a RST
			}
			conn.Close()
			return
		}
		u.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[]}`)
	}))
	t.Cleanup(u.srv.Close)
	u.tcp = testenv.StartProxy(t, u.srv.Listener.Addr().String())
	return u
}

// The upstream down, slow, resetting connections and answering garbage:
// each call gets a problem in bounded time, never a 500 or a hang: a 502
// (504 for the timeout) for the calls that tried the key, then, with the key
// cooling down after its failures, a 503 with Retry-After saying when it is
// usable again. The wallet stays healthy, and calls succeed again once the
// upstream is back and the cooldown (doubling per consecutive failure, at
// most routing.MaxBackoff) is over.
func TestUpstreamFaults(t *testing.T) {
	up := newFaultyUpstream(t)
	c := startCluster(t, 1, "MAX_REQUESTS_PER_MINUTE=1073741824", "DEFAULT_FREE_QUOTA=100000000",
		"UPSTREAM_TIMEOUT=1s", "OPENAI_BASE_URL=http://"+up.tcp.Addr())
	c.setup()
	w := c.wallets[0]

	for _, fault := range []string{"down", "slow", "reset", "garbage"} {
		t.Run(fault, func(t *testing.T) {
			var tally phaseTally
			var slowest atomic.Int64
			load := func(phase string, d time.Duration) {
				var wg sync.WaitGroup
				end := time.Now().Add(d)
				for i := range 4 {
					wg.Go(func() {
						for time.Now().Before(end) {
							start := time.Now()
							st, h, _, err := c.do("GET", c.callURL(i), c.token, nil)
							if took := int64(time.Since(start)); took > slowest.Load() {
								slowest.Store(took)
							}
							tally.add(phase, outcomeOf(st, h, err))
						}
					})
				}
				wg.Wait()
			}
			if fault == "down" {
				up.tcp.Stop()
			} else {
				up.mode.Store(fault)
			}
			load("during", 2*time.Second)
			if fault == "down" {
				up.tcp.Start()
			} else {
				up.mode.Store("ok")
			}
			// Recovery: the first call after the upstream is back.
			back := time.Now()
			var recovered time.Duration
			for time.Since(back) < routing.MaxBackoff+5*time.Second {
				if st, _, _, err := c.do("GET", c.callURL(0), c.token, nil); err == nil && st == 200 {
					recovered = time.Since(back)
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			load("after", time.Second)
			t.Logf("%s: %s slowest call %v; first success %v after the upstream was back",
				fault, &tally, time.Duration(slowest.Load()).Round(time.Millisecond), recovered.Round(time.Millisecond))
			if recovered == 0 {
				t.Fatalf("no call succeeded within %v of the upstream's return; logs:\n%s", routing.MaxBackoff+5*time.Second, w.Logs())
			}
			tally.mu.Lock()
			defer tally.mu.Unlock()
			for o, n := range tally.counts["during"] {
				if o != "502" && o != "503" && o != "504" {
					t.Errorf("during: %d calls answered %s", n, o)
				}
			}
			for o, n := range tally.counts["after"] {
				if o != "200" {
					t.Errorf("after: %d calls answered %s", n, o)
				}
			}
			if d := time.Duration(slowest.Load()); d > 5*time.Second {
				t.Errorf("a call took %v: the upstream timeout does not bound it", d)
			}
			if _, h, err := w.health(); err != nil || h.Status != "healthy" {
				t.Errorf("health after the fault: %+v %v", h, err)
			}
		})
	}
}
