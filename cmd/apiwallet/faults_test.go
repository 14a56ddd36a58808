package main_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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
	running := func() bool {
		select {
		case <-stop:
			return false
		default:
			return true
		}
	}
	for i := range 4 {
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
