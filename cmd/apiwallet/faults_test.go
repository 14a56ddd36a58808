package main_test

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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
	return o
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
	running := func() bool {
		select {
		case <-stop:
			return false
		default:
			return true
		}
	}
	for i := range 8 {
		wg.Go(func() {
			for running() {
				st, h, _, err := c.do("GET", c.callURL(i), c.token, nil)
				if err == nil && st/100 == 2 {
					served.Add(1)
				}
				proxied.add(phase.Load().(string), outcomeOf(st, h, err))
			}
		})
	}
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
