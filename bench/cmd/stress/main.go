// Command stress runs the wallet's long reliability checks against a real
// `apiwallet serve` on loopback (SQLite, a fresh data directory, an
// in-process stub upstream) and prints a markdown report on stdout:
//
//   - conns: hold many concurrent keep-alive client connections (10,000 by
//     default; 9 in 10 idle, sending a call now and then, the rest active at
//     a constant rate) and compare the active calls' p99 with the same rate
//     on an uncrowded wallet; RSS per held connection from /proc.
//   - soak: a steady rate of proxied and management calls for a while (10
//     minutes by default), sampling throughput, p50/p99, errors, RSS and
//     goroutines; at the end every request must be accounted for: sent =
//     answered, and the usage records equal the proxied calls answered.
//
// It exits non-zero when a check fails. Use `make conns` and `make soak`.
//
//	go run ./bench/cmd/stress -mode conns -conns 10000
//	go run ./bench/cmd/stress -mode soak -duration 10m -rate 300
package main

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // the usage records are counted in the wallet's SQLite file
)

func main() {
	mode := flag.String("mode", "conns", "conns or soak")
	conns := flag.Int("conns", 10000, "conns: connections held")
	active := flag.Int("active", 0, "conns: connections among them sending at -rate (default conns/10, at most 200)")
	rate := flag.Int("rate", 500, "calls per second of the active load")
	duration := flag.Duration("duration", 0, "measured duration (conns: each of the two runs, default 20s; soak: default 10m)")
	sample := flag.Duration("sample", 30*time.Second, "soak: sampling interval")
	bin := flag.String("bin", "", "the wallet binary (default: build ./cmd/apiwallet)")
	flag.Parse()
	if err := run(*mode, *bin, *conns, *active, *rate, *duration, *sample); err != nil {
		fmt.Fprintln(os.Stderr, "stress:", err)
		os.Exit(1)
	}
}

func run(mode, bin string, conns, active, rate int, duration, sample time.Duration) error {
	if mode != "conns" && mode != "soak" {
		return fmt.Errorf("-mode %q: want conns or soak", mode)
	}
	// Each held connection is a descriptor here and one in the wallet,
	// which inherits the limit.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	tmp, err := os.MkdirTemp("", "apiwallet-stress-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if bin == "" {
		bin = filepath.Join(tmp, "apiwallet")
		logf("building ./cmd/apiwallet")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/apiwallet").CombinedOutput(); err != nil {
			return fmt.Errorf("build: %v\n%s", err, out)
		}
	}
	up, err := startUpstream()
	if err != nil {
		return err
	}
	defer up.Close()
	w, err := startWallet(bin, tmp, up.url)
	if err != nil {
		return err
	}
	defer w.stop()
	if mode == "conns" {
		if duration == 0 {
			duration = 20 * time.Second
		}
		if active == 0 {
			active = min(max(conns/10, 1), 200)
		}
		return runConns(w, conns, active, rate, duration)
	}
	if duration == 0 {
		duration = 10 * time.Minute
	}
	return runSoak(w, up, rate, duration, sample)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "stress: "+format+"\n", args...)
}

// upstream is a fast stub OpenAI counting the calls it answered.
type upstream struct {
	*http.Server
	url  string
	hits atomic.Int64
}

func startUpstream() (*upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &upstream{url: "http://" + ln.Addr().String()}
	u.Server = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[]}`)
	})}
	go func() { _ = u.Serve(ln) }()
	return u, nil
}

// wallet is the `apiwallet serve` process under test, with an account, an
// OpenAI key and an access token.
type wallet struct {
	cmd    *exec.Cmd
	base   string
	dbPath string
	jwt    string
	token  string
	client *http.Client
	exited chan error
}

func startWallet(bin, tmp, upstreamURL string) (*wallet, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := filepath.Join(tmp, "data")
	w := &wallet{base: fmt.Sprintf("http://127.0.0.1:%d", port), dbPath: filepath.Join(dir, "wallet.db"),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}},
		exited: make(chan error, 1)}
	w.cmd = exec.Command(bin, "serve")
	w.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"APIWALLET_DATA_DIR=" + dir, "DATABASE_URL=" + w.dbPath, "HOST=127.0.0.1", "PORT=" + strconv.Itoa(port),
		"OPENAI_BASE_URL=" + upstreamURL, "ENABLE_METRICS=true", "LOG_LEVEL=warn",
		"MAX_REQUESTS_PER_MINUTE=1073741824", "DEFAULT_FREE_QUOTA=1099511627776"}
	logFile, err := os.Create(filepath.Join(tmp, "wallet.log"))
	if err != nil {
		return nil, err
	}
	w.cmd.Stdout, w.cmd.Stderr = logFile, logFile
	if err := w.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { w.exited <- w.cmd.Wait(); logFile.Close() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if st, _, err := w.call("GET", "/monitoring/health", "", nil); err == nil && st == 200 {
			break
		}
		if time.Now().After(deadline) {
			w.stop()
			return nil, errors.New("the wallet was not healthy within 60 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var reg struct{ Token string }
	if err := w.must(201, "POST", "/auth/register", "", map[string]string{
		"email": "stress@example.com", "password": "correct horse battery", "name": "Stress"}, &reg); err != nil {
		return nil, err
	}
	w.jwt = reg.Token
	if err := w.must(201, "POST", "/keys", w.jwt, map[string]any{"key": "sk-stress-0123456789abcdef", "service": "openai", "tier": "paid"}, nil); err != nil {
		return nil, err
	}
	var tok struct{ Token string }
	if err := w.must(201, "POST", "/tokens", w.jwt, map[string]any{"name": "stress", "services": []string{"openai"}}, &tok); err != nil {
		return nil, err
	}
	w.token = tok.Token
	return w, nil
}

func (w *wallet) call(method, path, bearer string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, w.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := w.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return res.StatusCode, b, err
}

func (w *wallet) must(want int, method, path, bearer string, body, out any) error {
	st, b, err := w.call(method, path, bearer, body)
	if err != nil || st != want {
		return fmt.Errorf("%s %s: %d %v %s", method, path, st, err, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// stop ends the wallet with SIGTERM, which flushes the usage recorder.
func (w *wallet) stop() {
	if w.cmd.ProcessState != nil {
		return
	}
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.exited:
	case <-time.After(60 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.exited
	}
}

func (w *wallet) rssKB() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

// goroutines reads go_goroutines from the wallet's /metrics.
func (w *wallet) goroutines() int64 {
	_, b, err := w.call("GET", "/metrics", "", nil)
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(n)
		}
	}
	return -1
}

// rawConn is one held client connection, speaking HTTP/1.1 keep-alive.
type rawConn struct {
	c  net.Conn
	br *bufio.Reader
}

func (w *wallet) dial() (*rawConn, error) {
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(w.base, "http://"), 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &rawConn{c: c, br: bufio.NewReaderSize(c, 4096)}, nil
}

// do sends one proxied call on the connection and reads its answer.
func (rc *rawConn) do(token string) (int, error) {
	_ = rc.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(rc.c, "GET /proxy/openai/v1/models HTTP/1.1\r\nHost: wallet\r\nAuthorization: Bearer "+token+"\r\n\r\n"); err != nil {
		return 0, err
	}
	res, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}

// latencies runs calls at rate per second spread over n connections for d
// and returns the sorted latencies and the errors (transport or non-2xx).
func (w *wallet) latencies(n, rate int, d time.Duration) ([]time.Duration, int, error) {
	cs := make([]*rawConn, n)
	for i := range cs {
		c, err := w.dial()
		if err != nil {
			return nil, 0, err
		}
		defer c.c.Close()
		cs[i] = c
	}
	var (
		mu   sync.Mutex
		lats []time.Duration
		errs atomic.Int64
		wg   sync.WaitGroup
		free = make(chan *rawConn, n)
	)
	for _, c := range cs {
		free <- c
	}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	end := time.Now().Add(d)
	for now := range tick.C {
		if now.After(end) {
			break
		}
		release := now
		c := <-free // a stalled wallet holds the schedule back: charged below
		wg.Go(func() {
			st, err := c.do(w.token)
			lat := time.Since(release)
			if err != nil || st/100 != 2 {
				errs.Add(1)
				if err != nil { // the connection is gone: replace it
					c.c.Close()
					if nc, derr := w.dial(); derr == nil {
						c = nc
					}
				}
			}
			mu.Lock()
			lats = append(lats, lat)
			mu.Unlock()
			free <- c
		})
	}
	wg.Wait()
	slices.Sort(lats)
	return lats, int(errs.Load()), nil
}

func pct(s []time.Duration, p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func runConns(w *wallet, conns, active, rate int, d time.Duration) error {
	logf("uncrowded: %d connections at %d calls/s for %v", active, rate, d)
	if _, _, err := w.latencies(active, rate, 2*time.Second); err != nil { // warm-up
		return err
	}
	base, baseErrs, err := w.latencies(active, rate, d)
	if err != nil {
		return err
	}
	rssBefore := w.rssKB()

	idle := conns - active
	logf("opening %d idle keep-alive connections, each served one call", idle)
	held := make([]*rawConn, 0, idle)
	defer func() {
		for _, c := range held {
			c.c.Close()
		}
	}()
	var openErrs int
	for i := range idle {
		c, err := w.dial()
		if err == nil {
			_, err = c.do(w.token)
		}
		if err != nil {
			openErrs++
			if openErrs > idle/100 {
				return fmt.Errorf("opening connection %d: %v (%d failures)", i, err, openErrs)
			}
			continue
		}
		held = append(held, c)
	}
	// The idle ones stay idle, but alive: each sends a call once in a
	// while inside the server's idle timeout (120 s), first after 60 to
	// 100 s, then every 100 s, so that a long run keeps them all open
	// without their calls outweighing the active load.
	stopIdle := make(chan struct{})
	var idleCalls, idleErrs atomic.Int64
	var idleWG sync.WaitGroup
	for i, c := range held {
		idleWG.Go(func() {
			t := time.NewTimer(60*time.Second + time.Duration(i%4000)*10*time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stopIdle:
					return
				case <-t.C:
					if st, err := c.do(w.token); err != nil || st/100 != 2 {
						idleErrs.Add(1)
					}
					idleCalls.Add(1)
					t.Reset(100 * time.Second)
				}
			}
		})
	}
	time.Sleep(time.Second)
	rssHeld := w.rssKB()
	logf("crowded: %d connections held; %d at %d calls/s for %v", len(held)+active, active, rate, d)
	crowd, crowdErrs, err := w.latencies(active, rate, d)
	close(stopIdle)
	idleWG.Wait()
	if err != nil {
		return err
	}
	perConn := float64(rssHeld-rssBefore) * 1024 / float64(max(len(held), 1))
	ratio := float64(pct(crowd, 0.99)) / float64(max(pct(base, 0.99), 1))
	fmt.Printf("## %d concurrent connections\n\n", len(held)+active)
	fmt.Printf("| run | connections | calls | errors | p50 | p99 | wallet RSS |\n|---|---|---|---|---|---|---|\n")
	fmt.Printf("| uncrowded | %d | %d | %d | %s | %s | %d MB |\n", active, len(base), baseErrs, ms(pct(base, 0.5)), ms(pct(base, 0.99)), rssBefore/1024)
	fmt.Printf("| crowded | %d (%d idle) | %d | %d | %s | %s | %d MB |\n\n", len(held)+active, len(held), len(crowd), crowdErrs,
		ms(pct(crowd, 0.5)), ms(pct(crowd, 0.99)), rssHeld/1024)
	fmt.Printf("RSS per held connection: %.1f KB. Active p99 crowded / uncrowded: %.2f (target ≤ 2). "+
		"Idle connections' keep-alive calls: %d, errors %d; connections that failed to open: %d.\n",
		perConn/1024, ratio, idleCalls.Load(), idleErrs.Load(), openErrs)
	if baseErrs+crowdErrs > 0 || idleErrs.Load() > 0 || openErrs > 0 {
		return errors.New("calls failed")
	}
	if ratio > 2 {
		return fmt.Errorf("the active calls' p99 is %.2f× the uncrowded one, over 2×", ratio)
	}
	return nil
}

// soakSample is one sampling interval of the soak.
type soakSample struct {
	at          time.Duration
	calls, errs int
	p50, p99    time.Duration
	rssKB       int64
	goroutines  int64
}

func runSoak(w *wallet, up *upstream, rate int, d, every time.Duration) error {
	logf("soak: %d calls/s (9 in 10 proxied, 1 in 10 management) for %v, sampled every %v", rate, d, every)
	var (
		mu                sync.Mutex
		window            []time.Duration
		windowErrs        int
		sent, answered    atomic.Int64
		proxiedOK         atomic.Int64
		statusErrs        atomic.Int64
		transportErrs     atomic.Int64
		wg                sync.WaitGroup
		samples           []soakSample
		firstErr          atomic.Value
		manage            = []string{"/keys", "/tokens", "/usage?group_by=service", "/auth/me", "/billing/plan"}
		client            = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 512}}
		start             = time.Now()
		tick              = time.NewTicker(time.Second / time.Duration(rate))
		nextSample        = start.Add(every)
		seq               int
		inflight          = make(chan struct{}, 2048)
		proxiedURL        = w.base + "/proxy/openai/v1/models"
		managementBearer  = w.jwt
		proxiedBearer     = w.token
		recordFirstErrorf = func(format string, args ...any) { firstErr.CompareAndSwap(nil, fmt.Sprintf(format, args...)) }
	)
	defer tick.Stop()
	takeSample := func(now time.Time) {
		mu.Lock()
		s := slices.Clone(window)
		e := windowErrs
		window, windowErrs = window[:0], 0
		mu.Unlock()
		slices.Sort(s)
		samples = append(samples, soakSample{at: now.Sub(start).Round(time.Second), calls: len(s), errs: e,
			p50: pct(s, 0.5), p99: pct(s, 0.99), rssKB: w.rssKB(), goroutines: w.goroutines()})
		last := samples[len(samples)-1]
		logf("%v: %d calls, %d errors, p99 %s, RSS %d MB, %d goroutines", last.at, last.calls, last.errs, ms(last.p99), last.rssKB/1024, last.goroutines)
	}
	for now := range tick.C {
		if now.Sub(start) >= d {
			break
		}
		if !now.Before(nextSample) {
			takeSample(now)
			nextSample = nextSample.Add(every)
		}
		seq++
		url, bearer, proxied := proxiedURL, proxiedBearer, true
		if seq%10 == 0 {
			url, bearer, proxied = w.base+manage[(seq/10)%len(manage)], managementBearer, false
		}
		release := now
		inflight <- struct{}{}
		sent.Add(1)
		wg.Go(func() {
			defer func() { <-inflight }()
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Authorization", "Bearer "+bearer)
			res, err := client.Do(req)
			lat := time.Since(release)
			failed := false
			if err != nil {
				transportErrs.Add(1)
				failed = true
				recordFirstErrorf("GET %s: %v", url, err)
			} else {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				answered.Add(1)
				if res.StatusCode/100 != 2 {
					statusErrs.Add(1)
					failed = true
					recordFirstErrorf("GET %s: %d", url, res.StatusCode)
				} else if proxied {
					proxiedOK.Add(1)
				}
			}
			mu.Lock()
			window = append(window, lat)
			if failed {
				windowErrs++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	takeSample(time.Now())
	took := time.Since(start)
	w.stop()

	db, err := sql.Open("sqlite", w.dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	var records int64
	if err := db.QueryRow(`SELECT COUNT(*) FROM usage_records WHERE status = 200`).Scan(&records); err != nil {
		return fmt.Errorf("count usage records: %w", err)
	}

	fmt.Printf("## Soak: %d calls/s for %v\n\n", rate, d)
	fmt.Printf("| at | calls | errors | p50 | p99 | wallet RSS | goroutines |\n|---|---|---|---|---|---|---|\n")
	for _, s := range samples {
		fmt.Printf("| %v | %d | %d | %s | %s | %d MB | %d |\n", s.at, s.calls, s.errs, ms(s.p50), ms(s.p99), s.rssKB/1024, s.goroutines)
	}
	fmt.Printf("\nSent %d in %v (%.0f/s), answered %d, non-2xx %d, transport errors %d; proxied 2xx %d, stub hits %d, usage records %d.\n",
		sent.Load(), took.Round(time.Second), float64(sent.Load())/took.Seconds(), answered.Load(), statusErrs.Load(),
		transportErrs.Load(), proxiedOK.Load(), up.hits.Load(), records)

	var problems []string
	if v := firstErr.Load(); v != nil {
		problems = append(problems, "first error: "+v.(string))
	}
	if sent.Load() != answered.Load() || statusErrs.Load() > 0 {
		problems = append(problems, "not every request was answered 2xx")
	}
	if records != proxiedOK.Load() || up.hits.Load() != records {
		problems = append(problems, fmt.Sprintf("proxied 2xx %d, stub hits %d, usage records %d: want all equal", proxiedOK.Load(), up.hits.Load(), records))
	}
	// Flat: the last third of the samples against the first third (the
	// first sample, still warming caches, is left out).
	if len(samples) >= 4 {
		body := samples[1:]
		third := max(len(body)/3, 1)
		avg := func(ss []soakSample, f func(soakSample) int64) float64 {
			var t int64
			for _, s := range ss {
				t += f(s)
			}
			return float64(t) / float64(len(ss))
		}
		rss := func(s soakSample) int64 { return s.rssKB }
		gor := func(s soakSample) int64 { return s.goroutines }
		r0, r1 := avg(body[:third], rss), avg(body[len(body)-third:], rss)
		g0, g1 := avg(body[:third], gor), avg(body[len(body)-third:], gor)
		fmt.Printf("RSS first third %.0f MB, last third %.0f MB (%+.1f%%); goroutines %.0f → %.0f.\n",
			r0/1024, r1/1024, 100*(r1-r0)/r0, g0, g1)
		// Bounds loose enough for the connections and calls in flight
		// at a sample to vary, tight against a leak: one goroutine or
		// a few KB left behind per call is hundreds of thousands of
		// goroutines or hundreds of MB over a soak.
		if r1 > r0*1.25+20*1024 {
			problems = append(problems, "RSS grew")
		}
		if g1 > g0*1.5+100 {
			problems = append(problems, "goroutines grew")
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
