package main_test

// Acceptance tests of issue 5 on real processes: several `apiwallet serve`
// instances sharing one PostgreSQL and one Redis behave as one wallet (the
// per-minute limit and the monthly quota hold exactly across them), usage
// is flushed on SIGTERM under load, and an outage of Redis degrades limits
// to per-instance shares and recovers by itself.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/apikeywallet/apiwallet/internal/testenv"
)

// Every instance of one test shares these secrets, as a real deployment's
// instances do.
var clusterSecrets = []string{
	"JWT_SECRET=multi-instance-test-secret-0123456789abcdef",
	"ENCRYPTION_KEY=" + strings.Repeat("cd", 32),
}

// stubUpstream is a fake OpenAI that answers every call 200 and counts the
// calls it received.
type stubUpstream struct {
	*httptest.Server
	hits atomic.Int64
}

func newStub(t *testing.T) *stubUpstream {
	t.Helper()
	s := &stubUpstream{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[]}`)
	}))
	t.Cleanup(s.Close)
	return s
}

// testRedisDB returns APIWALLET_TEST_REDIS_URL with database index db,
// which only this test uses: it is flushed before and after the test.
func testRedisDB(t *testing.T, db int) string {
	t.Helper()
	opt := testenv.RedisOptions(t)
	opt.DB = db
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.FlushDB(ctx).Err(); err != nil {
		c.Close()
		t.Fatalf("redis db %d: %v", db, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.FlushDB(ctx).Err()
		c.Close()
	})
	return fmt.Sprintf("redis://%s/%d", opt.Addr, db)
}

// cluster is n wallet instances on one database (and Redis, if given).
type cluster struct {
	t       *testing.T
	wallets []*wallet
	client  *http.Client
	token   string // a wallet access token scoped to openai
	jwt     string // the account's login token
	ws      string // its workspace
}

func startCluster(t *testing.T, n int, env ...string) *cluster {
	t.Helper()
	env = append(append([]string{}, clusterSecrets...), env...)
	c := &cluster{t: t, client: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 1000, MaxIdleConnsPerHost: 300, IdleConnTimeout: 30 * time.Second}}}
	t.Cleanup(c.client.CloseIdleConnections)
	// The first instance migrates; the others start on a migrated database.
	first := startWallet(t, t.TempDir(), env...)
	first.waitHealth(t, 30*time.Second, "healthy")
	c.wallets = append(c.wallets, first)
	for range n - 1 {
		c.wallets = append(c.wallets, startWallet(t, t.TempDir(), env...))
	}
	for _, w := range c.wallets[1:] {
		w.waitHealth(t, 30*time.Second, "healthy")
	}
	return c
}

// do sends one request and returns its status, headers and body.
func (c *cluster) do(method, url, bearer string, body any) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := c.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b, err
}

// must is do that fails the test unless the status is want, and decodes
// the body.
func (c *cluster) must(want int, method, url, bearer string, body any) map[string]any {
	c.t.Helper()
	st, _, b, err := c.do(method, url, bearer, body)
	if err != nil || st != want {
		c.t.Fatalf("%s %s: %d %v: %s", method, url, st, err, b)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// setup registers an account on the first instance, stores an openai key
// and makes a wallet access token for it; then it primes each instance's
// credential cache with a call refused before any limit (a service the
// token is not scoped to), so that the measured bursts do not wait on
// token lookups.
func (c *cluster) setup() {
	c.t.Helper()
	u := c.wallets[0].url
	reg := c.must(201, "POST", u+"/auth/register", "", map[string]string{
		"email": fmt.Sprintf("multi-%d@example.com", time.Now().UnixNano()), "password": "correct horse battery", "name": "Multi"})
	jwt := reg["token"].(string)
	c.jwt = jwt
	c.ws = reg["user"].(map[string]any)["personalWorkspaceId"].(string)
	c.must(201, "POST", u+"/keys", jwt, map[string]any{"key": "sk-stub-0123456789abcdef", "service": "openai", "tier": "paid"})
	tok := c.must(201, "POST", u+"/tokens", jwt, map[string]any{"name": "load", "services": []string{"openai"}})
	c.token = tok["token"].(string)
	for _, w := range c.wallets {
		c.must(403, "GET", w.url+"/proxy/stripe/v1/charges", c.token, nil)
	}
}

// callURL is the proxied call the tests make, on instance i.
func (c *cluster) callURL(i int) string {
	return c.wallets[i%len(c.wallets)].url + "/proxy/openai/v1/models"
}

// outcome is one proxied call as the client saw it.
type outcome struct {
	status    int
	limit     string // X-Wallet-Limit on refusals
	rateLimit string // RateLimit-Limit
	body      []byte
	err       error
}

// burst sends n concurrent calls spread round-robin over the instances and
// returns their outcomes and how long the burst took.
func (c *cluster) burst(n int) ([]outcome, time.Duration) {
	out := make([]outcome, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			st, h, b, err := c.do("GET", c.callURL(i), c.token, nil)
			out[i] = outcome{status: st, body: b, err: err}
			if h != nil {
				out[i].limit, out[i].rateLimit = h.Get("X-Wallet-Limit"), h.Get("RateLimit-Limit")
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	return out, time.Since(t0)
}

// tally counts outcomes by status (-1 for a transport error).
func tally(out []outcome) map[int]int {
	m := map[int]int{}
	for _, o := range out {
		if o.err != nil {
			m[-1]++
		} else {
			m[o.status]++
		}
	}
	return m
}

// openDB opens the test's database directly.
func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func countRows(t *testing.T, db *sql.DB, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// (a) Three instances on one PostgreSQL and one Redis enforce one
// per-minute limit: a burst of 200 concurrent calls spread over them gets
// exactly the limit through.
func TestMultiInstanceRateLimit(t *testing.T) {
	dsn := testenv.PostgresURL(t)
	redisURL := testRedisDB(t, 11)
	stub := newStub(t)
	const limit = 60
	c := startCluster(t, 3, "DATABASE_URL="+dsn, "REDIS_URL="+redisURL, "APIWALLET_INSTANCES=3",
		"MAX_REQUESTS_PER_MINUTE="+strconv.Itoa(limit), "OPENAI_BASE_URL="+stub.URL)
	c.setup()

	out, took := c.burst(200)
	counts := tally(out)
	perInstance := make([]int, 3)
	for i, o := range out {
		if o.status == 200 {
			perInstance[i%3]++
		}
	}
	t.Logf("burst of 200 over 3 instances in %v: %d allowed (per instance %v), %d refused 429, %d errors; stub hits %d",
		took.Round(time.Millisecond), counts[200], perInstance, counts[429], counts[-1], stub.hits.Load())
	if counts[200]+counts[429] != 200 {
		t.Fatalf("%d allowed and %d refused of 200", counts[200], counts[429])
	}
	wantBurst(t, "3 instances", counts[200], limit, took)
	if int(stub.hits.Load()) != counts[200] {
		t.Fatalf("the stub got %d calls for %d allowed", stub.hits.Load(), counts[200])
	}
	for _, o := range out {
		if o.status == 429 {
			var p map[string]any
			_ = json.Unmarshal(o.body, &p)
			if o.limit != "workspace-rate" || p["limit"] != "workspace-rate" || o.rateLimit != strconv.Itoa(limit) ||
				!strings.HasSuffix(fmt.Sprint(p["type"]), "/rate-limited") {
				t.Fatalf("refusal: limit header %q, RateLimit-Limit %q, body %s", o.limit, o.rateLimit, o.body)
			}
		}
	}
	// The monthly quota counted the same calls, once, in Redis.
	opt, _ := redis.ParseURL(redisURL)
	rc := redis.NewClient(opt)
	defer rc.Close()
	key := "apiwallet:quota:" + c.ws + ":" + time.Now().UTC().Format("2006-01")
	if v, err := rc.Get(context.Background(), key).Int(); err != nil || v != counts[200] {
		t.Fatalf("quota counter %s = %d, %v; want %d", key, v, err, counts[200])
	}
}

// (b) A free workspace with 1,000 calls left and 200 concurrent workers on
// 3 instances: exactly 1,000 calls go through, the rest get 429
// quota-exceeded, and the stub upstream sees exactly 1,000.
func TestMultiInstanceMonthlyQuota(t *testing.T) {
	dsn := testenv.PostgresURL(t)
	redisURL := testRedisDB(t, 12)
	stub := newStub(t)
	// Every instance looks for quota crossings often; each crossing must
	// still raise one alert and one webhook delivery in all.
	var deliveries sync.Map // alert id → deliveries
	var posts atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		n, _ := deliveries.LoadOrStore(r.Header.Get("X-Wallet-Alert-Id"), new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}))
	defer hook.Close()
	c := startCluster(t, 3, "DATABASE_URL="+dsn, "REDIS_URL="+redisURL, "APIWALLET_INSTANCES=3",
		"MAX_REQUESTS_PER_MINUTE=1073741824", "DEFAULT_FREE_QUOTA=1500", "OPENAI_BASE_URL="+stub.URL,
		"ALERT_EVAL_INTERVAL=200ms", "ALERT_WEBHOOK_ALLOW_PRIVATE=true")
	c.setup()
	c.must(200, "PUT", c.wallets[0].url+"/alerts/settings", c.jwt, map[string]any{
		"thresholds": []int{80, 100}, "webhookUrl": hook.URL})

	// 500 calls are already in this month's usage: 1,000 remain. The Redis
	// counter starts from them.
	db := openDB(t, dsn)
	month := time.Now().UTC()
	month = time.Date(month.Year(), month.Month(), 1, 0, 0, 0, 0, time.UTC)
	if _, err := db.Exec(`INSERT INTO usage_hourly (workspace_id, service, key_id, hour, calls, failed, premium,
		cost_micros, saved_micros, bytes_in, bytes_out, latency_micros_sum) VALUES ($1, 'openai', '', $2, 500, 0, 0, 0, 0, 0, 0, 0)`,
		c.ws, month.UnixMicro()); err != nil {
		t.Fatal(err)
	}

	const workers, each = 200, 6
	var ok, refused, other atomic.Int64
	var sample atomic.Pointer[outcome]
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range each {
				st, h, b, err := c.do("GET", c.callURL(w+i), c.token, nil)
				switch {
				case err == nil && st == 200:
					ok.Add(1)
				case err == nil && st == 429 && h.Get("X-Wallet-Limit") == "plan-quota":
					refused.Add(1)
					o := &outcome{status: st, limit: h.Get("Retry-After"), body: b}
					sample.Store(o)
				default:
					other.Add(1)
					t.Errorf("unexpected outcome: %d %v %s", st, err, b)
				}
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d workers x %d calls over 3 instances in %v: %d succeeded, %d refused quota-exceeded, %d other; stub hits %d",
		workers, each, time.Since(t0).Round(time.Millisecond), ok.Load(), refused.Load(), other.Load(), stub.hits.Load())
	if ok.Load() != 1000 || refused.Load() != workers*each-1000 || stub.hits.Load() != 1000 {
		t.Fatalf("want exactly 1000 through and %d refused", workers*each-1000)
	}

	// The refusal says which limit, the numbers, when it resets and how to
	// upgrade.
	s := sample.Load()
	var p struct {
		Type, Limit, ResetAt string
		Included, Used       int64
		Upgrade              map[string]string
	}
	if err := json.Unmarshal(s.body, &p); err != nil {
		t.Fatal(err)
	}
	reset := month.AddDate(0, 1, 0)
	retry, _ := strconv.Atoi(s.limit)
	if !strings.HasSuffix(p.Type, "/quota-exceeded") || p.Limit != "plan-quota" || p.Included != 1500 || p.Used != 1500 ||
		p.ResetAt != reset.Format(time.RFC3339) || p.Upgrade["checkout"] != "POST /billing/checkout" || p.Upgrade["plan"] != "GET /billing/plan" {
		t.Fatalf("refusal body: %s", s.body)
	}
	if want := time.Until(reset); retry < int(want.Seconds())-5 || retry > int(want.Seconds())+5 {
		t.Fatalf("Retry-After %d, want about %v", retry, want)
	}

	// Every call that went through is one usage record: 1,000 in all, from
	// the three instances' recorders.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := countRows(t, db, `SELECT COUNT(*) FROM usage_records WHERE workspace_id = $1`, c.ws)
		if n == 1000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d usage records, want 1000", n)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The plan quota crossed 80% and 100%: two alerts, each delivered once,
	// although three instances evaluated the same usage.
	deadline = time.Now().Add(15 * time.Second)
	for posts.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // room for a duplicate to show up
	list := c.must(200, "GET", c.wallets[1].url+"/alerts", c.jwt, nil)["alerts"].([]any)
	ids := 0
	deliveries.Range(func(k, v any) bool {
		ids++
		if n := v.(*atomic.Int64).Load(); n != 1 {
			t.Errorf("alert %v delivered %d times", k, n)
		}
		return true
	})
	t.Logf("alerts listed %d, webhook posts %d for %d alert ids", len(list), posts.Load(), ids)
	if len(list) != 2 || posts.Load() != 2 || ids != 2 {
		t.Fatalf("want 2 alerts delivered once each; listed %d, posts %d, ids %d", len(list), posts.Load(), ids)
	}
}

// (c) SIGTERM under load: every call the client got a 2xx for is in the
// usage records once the process has exited, and the stub's hits equal the
// records.
func TestSIGTERMFlushesUsageUnderLoad(t *testing.T) {
	dsn := testenv.PostgresURL(t)
	stub := newStub(t)
	c := startCluster(t, 1, "DATABASE_URL="+dsn, "MAX_REQUESTS_PER_MINUTE=1073741824",
		"DEFAULT_FREE_QUOTA=100000000", "OPENAI_BASE_URL="+stub.URL)
	c.setup()
	w := c.wallets[0]

	const workers = 32
	var ok, non2xx, errs atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				st, _, _, err := c.do("GET", c.callURL(i), c.token, nil)
				switch {
				case err != nil:
					errs.Add(1)
					time.Sleep(5 * time.Millisecond) // the listener is gone
				case st >= 200 && st < 300:
					ok.Add(1)
				default:
					non2xx.Add(1)
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	before := ok.Load()
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		t.Fatal("no exit 30 s after SIGTERM")
	}
	close(stop)
	wg.Wait()
	if w.err != nil || !strings.Contains(w.Logs(), `"msg":"stopped"`) {
		t.Fatalf("exit after SIGTERM: %v\n%s", w.err, w.Logs())
	}
	if strings.Contains(w.Logs(), "usage records not flushed") {
		t.Fatalf("the recorder gave up:\n%s", w.Logs())
	}

	db := openDB(t, dsn)
	records := countRows(t, db, `SELECT COUNT(*) FROM usage_records WHERE workspace_id = $1`, c.ws)
	ok200 := countRows(t, db, `SELECT COUNT(*) FROM usage_records WHERE workspace_id = $1 AND status = 200`, c.ws)
	rolled := countRows(t, db, `SELECT COALESCE(SUM(calls), 0) FROM usage_hourly WHERE workspace_id = $1`, c.ws)
	hits := stub.hits.Load()
	t.Logf("SIGTERM after %d 2xx; client: %d 2xx, %d other statuses, %d transport errors (after the listener closed); "+
		"stub hits %d; usage records %d (status 200: %d), hourly rollup calls %d",
		before, ok.Load(), non2xx.Load(), errs.Load(), hits, records, ok200, rolled)
	if before == 0 || errs.Load() == 0 {
		t.Fatal("the load did not run before and through the shutdown")
	}
	// Every call that reached the stub produced exactly one record, and the
	// rollups agree. A graceful shutdown finishes every request it
	// accepted, so the client got a response for each; a call the client
	// saw fail (errs) never reached the handler: it was refused at the
	// closed listener or on a connection the server was closing.
	if hits != records || records != ok200 || rolled != records {
		t.Fatalf("stub hits %d, records %d (200: %d), rollup %d: want all equal", hits, records, ok200, rolled)
	}
	if ok.Load() != records {
		t.Fatalf("the client got %d 2xx but %d calls were recorded", ok.Load(), records)
	}
}

// (d) Redis stopped mid-run: calls keep being served under the per-instance
// fallback limit (limit / instances), health says "disconnected"; when
// Redis is back on the same port, health says "connected" and the shared
// limit is back within 10 s.
func TestRedisOutage(t *testing.T) {
	dsn := testenv.PostgresURL(t)
	rs := testenv.StartRedis(t)
	stub := newStub(t)
	const limit, instances = 60, 3
	c := startCluster(t, 1, "DATABASE_URL="+dsn, "REDIS_URL="+rs.URL(),
		fmt.Sprintf("APIWALLET_INSTANCES=%d", instances), fmt.Sprintf("MAX_REQUESTS_PER_MINUTE=%d", limit),
		"OPENAI_BASE_URL="+stub.URL)
	c.setup()
	w := c.wallets[0]
	redisState := func() string {
		_, h, err := w.health()
		if err != nil {
			return "error: " + err.Error()
		}
		return h.Services.Redis
	}
	if s := redisState(); s != "connected" {
		t.Fatalf("redis %q at start", s)
	}

	out, took := c.burst(100)
	n := tally(out)
	t.Logf("redis up: burst of 100 in %v: %d allowed, %d refused", took.Round(time.Millisecond), n[200], n[429])
	wantBurst(t, "redis up", n[200], limit, took)

	rs.Stop()
	out, took = c.burst(100)
	n = tally(out)
	local := limit / instances
	t.Logf("redis down: burst of 100 in %v: %d allowed, %d refused, %d errors; health redis %q",
		took.Round(time.Millisecond), n[200], n[429], n[-1], redisState())
	if n[200]+n[429] != 100 {
		t.Fatalf("%d allowed, %d refused of 100 with redis down", n[200], n[429])
	}
	wantBurst(t, "redis down (the fallback limit, limit/instances)", n[200], local, took)
	for _, o := range out {
		if o.rateLimit != strconv.Itoa(local) {
			t.Fatalf("RateLimit-Limit %q during the outage, want %d", o.rateLimit, local)
		}
	}
	if s := redisState(); s != "disconnected" {
		t.Fatalf("health says redis %q while it is down", s)
	}
	if !w.waitLog("ratelimit: redis unavailable") || !w.waitLog("quota: redis unavailable") {
		t.Fatalf("the outage is not logged:\n%s", w.Logs())
	}

	rs.Start() // the same port, empty: no persistence
	restarted := time.Now()
	var healthBack, limitBack time.Duration
	var firstShared time.Time // the first call decided by the shared limit again
	redisCalls := 0           // calls allowed by the shared limit while polling
	for healthBack == 0 || limitBack == 0 {
		if time.Since(restarted) > 10*time.Second {
			t.Fatalf("10 s after redis returned: health back after %v, shared limit after %v", healthBack, limitBack)
		}
		if healthBack == 0 && redisState() == "connected" {
			healthBack = time.Since(restarted)
		}
		if limitBack == 0 {
			st, h, _, err := c.do("GET", c.callURL(0), c.token, nil)
			if err == nil && h.Get("RateLimit-Limit") == strconv.Itoa(limit) {
				limitBack, firstShared = time.Since(restarted), time.Now()
				if st == 200 {
					redisCalls++
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, took = c.burst(100)
	n = tally(out)
	t.Logf("redis back: health connected after %v, shared limit after %v; burst of 100 in %v: %d allowed (+%d while polling), %d refused",
		healthBack.Round(time.Millisecond), limitBack.Round(time.Millisecond), took.Round(time.Millisecond), n[200], redisCalls, n[429])
	wantBurst(t, "redis back", n[200]+redisCalls, limit, time.Since(firstShared))
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		logs := w.Logs()
		if strings.Contains(logs, "ratelimit: redis is back") && strings.Contains(logs, "quota: redis is back") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recovery is not logged:\n%s", logs)
		}
	}
}

// wantBurst checks that a burst taking took got exactly the limit of rate
// calls a minute through. GCRA lets a full bucket's burst (= rate) through
// at once and then refills one call every minute/rate, so a burst shorter
// than that gets exactly rate; a slower one (a loaded machine) may get one
// more call per interval elapsed, never fewer than rate.
func wantBurst(t *testing.T, what string, allowed, rate int, took time.Duration) {
	t.Helper()
	refills := int(took / (time.Minute / time.Duration(rate)))
	if allowed < rate || allowed > rate+refills {
		t.Fatalf("%s: %d allowed in %v, want exactly %d (+ at most %d refilled)", what, allowed, took, rate, refills)
	}
	if refills > 0 {
		t.Logf("%s: the burst took %v, longer than one emission interval: %d allowed, bound %d", what, took, allowed, rate+refills)
	}
}

// A call that never reached an upstream is refunded: every attempt failed
// to connect, no key, or refused before sending. A call that reached one
// counts. The count survives a restart (SQLite, in process: no servers
// needed).
func TestQuotaRefundsAndRestart(t *testing.T) {
	stub := newStub(t)
	dead := fmt.Sprintf("http://127.0.0.1:%d", freePort(t)) // nothing listens: every dial is refused
	dir := t.TempDir()
	env := []string{"DEFAULT_FREE_QUOTA=3", "MAX_REQUESTS_PER_MINUTE=100000", "OPENAI_BASE_URL=" + stub.URL,
		"ANTHROPIC_BASE_URL=" + dead}
	c := &cluster{t: t, client: &http.Client{Timeout: 20 * time.Second}}
	c.wallets = []*wallet{startWallet(t, dir, append(append([]string{}, clusterSecrets...), env...)...)}
	c.wallets[0].waitHealth(t, 30*time.Second, "healthy")
	u := c.wallets[0].url
	reg := c.must(201, "POST", u+"/auth/register", "", map[string]string{
		"email": "refund@example.com", "password": "correct horse battery", "name": "Refund"})
	jwt := reg["token"].(string)
	c.must(201, "POST", u+"/keys", jwt, map[string]any{"key": "sk-stub-0123456789abcdef", "service": "openai", "tier": "paid"})
	c.must(201, "POST", u+"/keys", jwt, map[string]any{"key": "sk-ant-0123456789abcdef", "service": "anthropic", "tier": "paid"})
	c.token = c.must(201, "POST", u+"/tokens", jwt, map[string]any{"name": "t", "services": []string{"openai", "anthropic", "stripe"}})["token"].(string)

	call := func(path string, headers ...string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("GET", c.wallets[0].url+path, nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		res, err := c.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(res.Body).Decode(&m)
		return res.StatusCode, m
	}
	// The first attempt's dial is refused (502); routing then rests the
	// key, so the next calls find no usable key (503).
	for i := range 4 {
		if st, _ := call("/proxy/anthropic/v1/messages"); st != 502 && (i == 0 || st != 503) {
			t.Fatalf("call %d to a service whose every dial is refused: %d", i+1, st)
		}
	}
	if st, _ := call("/proxy/stripe/v1/charges"); st != 503 {
		t.Fatalf("a call with no key: %d, want 503", st)
	}
	if st, _ := call("/proxy/openai/v1/models", "X-Wallet-Strategy", "bogus"); st != 400 {
		t.Fatalf("a call refused before sending: %d, want 400", st)
	}
	// None of those counted: the 3 included calls are all still there.
	for i := range 3 {
		if st, m := call("/proxy/openai/v1/models"); st != 200 {
			t.Fatalf("call %d of 3: %d %v", i+1, st, m)
		}
	}
	st, m := call("/proxy/openai/v1/models")
	if st != 429 || m["limit"] != "plan-quota" || m["used"] != float64(3) || m["included"] != float64(3) {
		t.Fatalf("the 4th call: %d %v", st, m)
	}

	// After a restart the month's count comes from the usage records.
	w := c.wallets[0]
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	<-w.done
	c.wallets[0] = startWallet(t, dir, append(append([]string{}, clusterSecrets...), env...)...)
	c.wallets[0].waitHealth(t, 30*time.Second, "healthy")
	st, m = call("/proxy/openai/v1/models")
	if st != 429 || m["limit"] != "plan-quota" {
		t.Fatalf("after a restart: %d %v", st, m)
	}
	t.Logf("after a restart the quota still refuses: used %v of %v (the usage records count the refunded calls whose "+
		"attempts failed to connect, which errs on the strict side)", m["used"], m["included"])
	if hits := stub.hits.Load(); hits != 3 {
		t.Fatalf("the stub got %d calls, want 3", hits)
	}
}
