// Command bench is API Key Wallet's benchmark runner. In one run, on
// loopback, it drives the same small upstream stub four ways with identical
// load settings and prints a markdown report on stdout:
//
//   - direct: the stub itself (bench/upstream);
//   - nginx: Debian's nginx as a reverse proxy injecting a fixed key;
//   - floor: a bare httputil.ReverseProxy injecting a fixed key, on the
//     wallet's Transport and GC settings (bench/floor);
//   - wallet: `apiwallet serve` proxying /proxy/stripe/… with a stored key,
//     authenticated by a wallet access token, with every per-call feature on.
//
// Each is measured in three rounds: against the stub over plain HTTP, over
// TLS (a self-signed certificate made for the run), and answering after a
// delay (20 ms) at a higher concurrency. Throughput and p50/p99 latency come
// from wrk (closed loop, keep-alive); added latency at a constant rate comes
// from bench/cmd/load; CPU per call from /proc for every run. The wallet is
// also measured with 1, 1,000 and 100,000 stored keys, and its peak RSS is
// read from /proc. Progress goes to stderr. See bench/README.md.
//
//	go run ./bench/cmd/bench            # or: bash bench/run.sh
//
// Settings come from the environment: DURATION, CONNECTIONS, THREADS,
// WARMUP, ROUNDS, RATE, RATE_DURATION, TLS, TLS_H2, LATENCY_MS,
// LATENCY_CONNECTIONS, KEYS, TARGETS, NGINX_WORKERS, INSERT_CONCURRENCY,
// WALLET_ENV, WALLET_BIN, KEEP (see usage).
package main

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const usage = `usage: go run ./bench/cmd/bench   (or bash bench/run.sh)

Needs nginx and wrk on PATH (Debian: apt-get install -y nginx-light wrk).
Environment (defaults in brackets):
  DURATION=10s          measured wrk duration per target
  CONNECTIONS=64        connections, for wrk and the constant-rate run
  THREADS=2             wrk threads
  WARMUP=2s             unmeasured wrk run before each measured one (0 for none)
  ROUNDS=1              repeat every measured run (throughput, constant rate, stored keys); medians are reported
  RATE=2000             constant-rate run in req/s (0 skips it)
  RATE_DURATION=10s     its duration
  KEYS=1,1000,100000    stored-key counts the wallet is measured with
  TARGETS=direct,nginx,floor,wallet
  NGINX_WORKERS=<cores> nginx worker_processes
  INSERT_CONCURRENCY=8  concurrent POST /keys while storing keys
  WALLET_ENV=           extra wallet environment, space-separated K=V
  WALLET_BIN=           run this wallet binary instead of building ./cmd/apiwallet
  TLS=1                 also run every target against the stub over HTTPS (0 skips the round)
  TLS_H2=1              the HTTPS stub offers HTTP/2 by ALPN (0: HTTP/1.1 only)
  LATENCY_MS=20         also run every target against a stub that answers after this delay (0 skips)
  LATENCY_CONNECTIONS=256  wrk connections in that round
  KEEP=1                keep the temporary directory (configs, logs)
`

//go:embed nginx.conf.tmpl
var nginxConf string

// Targets, in the order they are run and reported.
var allTargets = []string{"direct", "nginx", "floor", "wallet"}

const (
	modulePath = "github.com/apikeywallet/apiwallet"
	// The stub accepts keys with this prefix; each proxy injects its own.
	keyPrefix = "sk_test_bench_"
	// What the client sends to the proxies: a credential that is not a bench
	// key, so a proxy that forwards it instead of injecting one is caught.
	clientCredential = "Bearer client_credential_not_a_key"
	path             = "/v1/charges"
)

type config struct {
	Duration, Warmup, RateDuration time.Duration
	Connections, Threads, Rounds   int
	Rate, NginxWorkers             int
	TLS, TLSH2                     bool
	LatencyMs, LatencyConnections  int
	InsertConcurrency              int
	Keys                           []int
	Targets                        []string
	WalletEnv                      []string
	Keep                           bool
}

func loadConfig() (*config, error) {
	var errs []error
	dur := func(name string, def time.Duration) time.Duration {
		v := os.Getenv(name)
		if v == "" {
			return def
		}
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			return time.Duration(n) * time.Second
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a duration such as 10s", name, v))
		}
		return d
	}
	num := func(name string, def, lo int) int {
		v := os.Getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < lo {
			errs = append(errs, fmt.Errorf("%s=%q: want an integer >= %d", name, v, lo))
		}
		return n
	}
	c := &config{
		Duration:           dur("DURATION", 10*time.Second),
		Warmup:             dur("WARMUP", 2*time.Second),
		RateDuration:       dur("RATE_DURATION", 10*time.Second),
		Connections:        num("CONNECTIONS", 64, 1),
		Threads:            num("THREADS", 2, 1),
		Rounds:             num("ROUNDS", 1, 1),
		Rate:               num("RATE", 2000, 0),
		NginxWorkers:       num("NGINX_WORKERS", runtime.NumCPU(), 1),
		InsertConcurrency:  num("INSERT_CONCURRENCY", 8, 1),
		WalletEnv:          strings.Fields(os.Getenv("WALLET_ENV")),
		Keep:               os.Getenv("KEEP") != "" && os.Getenv("KEEP") != "0",
		TLS:                num("TLS", 1, 0) != 0,
		TLSH2:              num("TLS_H2", 1, 0) != 0,
		LatencyMs:          num("LATENCY_MS", 20, 0),
		LatencyConnections: num("LATENCY_CONNECTIONS", 256, 1),
	}
	if c.Duration < time.Second {
		errs = append(errs, errors.New("DURATION must be at least 1s"))
	}
	if c.Threads > c.Connections {
		errs = append(errs, errors.New("THREADS must not exceed CONNECTIONS"))
	}
	for f := range strings.FieldsFuncSeq(cmp.Or(os.Getenv("KEYS"), "1,1000,100000"), isSep) {
		n, err := strconv.Atoi(strings.ReplaceAll(f, "_", ""))
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("KEYS: %q is not a positive count", f))
			continue
		}
		c.Keys = append(c.Keys, n)
	}
	slices.Sort(c.Keys)
	c.Keys = slices.Compact(c.Keys)
	for f := range strings.FieldsFuncSeq(cmp.Or(os.Getenv("TARGETS"), strings.Join(allTargets, ",")), isSep) {
		if !slices.Contains(allTargets, f) {
			errs = append(errs, fmt.Errorf("TARGETS: unknown target %q (want some of %s)", f, strings.Join(allTargets, ",")))
			continue
		}
		c.Targets = append(c.Targets, f)
	}
	for _, kv := range c.WalletEnv {
		if !strings.Contains(kv, "=") {
			errs = append(errs, fmt.Errorf("WALLET_ENV: %q is not K=V", kv))
		}
	}
	if len(c.Keys) == 0 || len(c.Targets) == 0 {
		errs = append(errs, errors.New("KEYS and TARGETS must not be empty"))
	}
	return c, errors.Join(errs...)
}

func isSep(r rune) bool { return r == ',' || r == ' ' }

// runner holds one benchmark run's state.
type runner struct {
	cfg        *config
	root       string // the module's directory
	tmp        string // temporary directory: binaries, configs, logs, wallet data
	wrk        string
	nginx      string
	procs      []*proc
	stubURL    string
	stubTLS    string // https://127.0.0.1:PORT, when the TLS round runs
	stubSlow   string // http://127.0.0.1:PORT answering after LATENCY_MS
	certFile   string // the stub's self-signed certificate, trusted by every client
	want       map[string]bool
	targets    []*target // of every round
	rounds     []*round
	wallet     *wallet // the plain round's, which the stored-keys series uses
	walletSkip string  // why the wallet was skipped, if it was
	loadStart  string  // 1-minute load average before the run
	walletBin  string

	insertTimes map[int]time.Duration
	keyRuns     map[int]measured // wallet throughput by stored keys
	keysFailed  string           // why the stored-keys series stopped, if it did
	rssPeakKB   int64            // wallet VmRSS peak sampled during its load runs
	rssHWMKB    int64            // wallet VmHWM at the end (lifetime, includes key inserts)
}

// round is one upstream every target is measured against: the plain stub,
// the stub over TLS, or the stub answering after a delay.
type round struct {
	name  string // "plain", "tls", "latency"
	conns int    // wrk connections
	rate  bool   // with constant-rate runs
	// targets run in this round, in report order
	targets []*target
}

func (rd *round) target(name string) *target {
	for _, t := range rd.targets {
		if t.name == name {
			return t
		}
	}
	return nil
}

// target is one thing the load is driven at.
type target struct {
	name, url, auth string
	proc            string      // the process group serving the calls
	w               *wallet     // for the wallet
	runs            []measured  // one per round
	rates           []rateRun   // one per round
	rate            *loadResult // the round of the median added p99 (of the median p99 for direct)
	rateOtherCPU    float64     // that round's
	added           float64     // median over rounds of p99 minus direct's p99 in the same round, ms
	addedByRound    []float64
	cpuPerCall      float64 // median over rounds of the proxy's CPU per call at the constant rate, µs; -1 unknown
	failed          string  // why the target stopped being measured
}

// process names the process that serves t's calls: the stub's for
// direct, the proxy's for the others.
func (t *target) process() string { return t.proc }

// rateRun is one constant-rate run.
type rateRun struct {
	round      int
	res        loadResult
	otherCPU   float64
	cpuPerCall float64 // µs of the target's own process per call; -1 unknown
}

// measured is one throughput run with the stub's view of it.
type measured struct {
	wrkResult
	upstream, mismatches int64
	http2                int64   // of the upstream requests, how many came over HTTP/2
	cpuPerCall           float64 // µs of the target's own process group per answered call; -1 unknown
	otherCPU             float64 // share of the machine other processes used; -1 unknown
	refusal              string  // with non-2xx answers: what one request got afterwards
}

func main() {
	if len(os.Args) > 1 {
		fmt.Fprint(os.Stderr, usage)
		if os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
			os.Exit(0)
		}
		os.Exit(2)
	}
	os.Exit(run())
}

func run() int {
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n\n%s", err, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := &runner{cfg: cfg, want: map[string]bool{}, insertTimes: map[int]time.Duration{}, keyRuns: map[int]measured{}}
	for _, t := range cfg.Targets {
		r.want[t] = true
	}
	defer r.stopAll()
	if err := r.run(ctx); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "bench: interrupted; every process stopped")
			return 130
		}
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func (r *runner) bin(name string) string { return filepath.Join(r.tmp, "bin", name) }

func (r *runner) run(ctx context.Context) (err error) {
	if err := r.findTools(); err != nil {
		return err
	}
	r.loadStart = loadAvg()
	if l, err := strconv.ParseFloat(r.loadStart, 64); err == nil && l > 0.5*float64(runtime.NumCPU()) {
		r.logf("warning: load average %s on %d cores: other work will skew the numbers", r.loadStart, runtime.NumCPU())
	}
	if r.root, err = moduleRoot(); err != nil {
		return err
	}
	if r.tmp, err = os.MkdirTemp("", "apiwallet-bench-"); err != nil {
		return err
	}
	if r.cfg.Keep {
		r.logf("keeping %s", r.tmp)
	} else {
		defer os.RemoveAll(r.tmp)
	}
	defer r.stopAll() // before the directory goes

	r.logf("building the stub, the floor and the load generator")
	if err := r.gobuild("./bench/upstream", "./bench/floor", "./bench/cmd/load"); err != nil {
		return err
	}
	r.walletBin = r.bin("apiwallet")
	if b := os.Getenv("WALLET_BIN"); b != "" && r.want["wallet"] {
		if r.walletBin, err = filepath.Abs(b); err != nil {
			return err
		}
		r.logf("using the wallet binary %s", r.walletBin)
	} else if r.want["wallet"] {
		r.logf("building the wallet")
		if err := r.gobuild("./cmd/apiwallet"); err != nil {
			r.skipWallet(fmt.Sprintf("the wallet does not build: %v", err))
		}
	}

	if r.cfg.TLS {
		if r.certFile, err = r.writeCert(); err != nil {
			return err
		}
	}
	if err := r.startStub(ctx); err != nil {
		return err
	}
	specs := []struct {
		rd       *round
		upstream string
	}{{&round{name: "plain", conns: r.cfg.Connections, rate: r.cfg.Rate > 0}, r.stubURL}}
	if r.cfg.TLS {
		specs = append(specs, struct {
			rd       *round
			upstream string
		}{&round{name: "tls", conns: r.cfg.Connections, rate: r.cfg.Rate > 0}, r.stubTLS})
	}
	if r.cfg.LatencyMs > 0 {
		specs = append(specs, struct {
			rd       *round
			upstream string
		}{&round{name: "latency", conns: r.cfg.LatencyConnections}, r.stubSlow})
	}
	for _, sp := range specs {
		rd := sp.rd
		r.rounds = append(r.rounds, rd)
		if err := r.startRound(ctx, rd, sp.upstream); err != nil {
			return err
		}
		if err := r.measureRound(ctx, rd); err != nil {
			return err
		}
		// The plain wallet stays for the stored-keys series; the rest of
		// the round's proxies stop so that they take nothing from the next.
		for _, t := range rd.targets {
			if t.name != "direct" && (rd.name != "plain" || t.name != "wallet") {
				r.stopProc(t.proc)
			}
		}
	}
	// The wallet with more stored keys.
	if w, wt := r.wallet, r.target("wallet"); w != nil && wt.failed == "" && len(wt.runs) > 0 {
		r.keyRuns[r.cfg.Keys[0]] = median(wt.runs)
		for _, n := range r.cfg.Keys[1:] {
			r.settle(wt)
			r.logf("wallet: storing keys up to %d", n)
			if err := w.storeKeys(ctx, n); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				r.keysFailed = fmt.Sprintf("storing %s keys: %v", thousands(int64(n)), err)
				r.logf("wallet: %s", r.keysFailed)
				break
			}
			// As many rounds as at one key, so that the two medians compare.
			var runs []measured
			for round := range r.cfg.Rounds {
				m, err := r.measure(ctx, wt, r.cfg.Connections, fmt.Sprintf("%d keys, round %d/%d", n, round+1, r.cfg.Rounds))
				if err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					r.keysFailed = fmt.Sprintf("measuring with %s keys: %v", thousands(int64(n)), err)
					r.logf("wallet: %s", r.keysFailed)
					break
				}
				runs = append(runs, m)
			}
			if r.keysFailed != "" {
				break
			}
			r.keyRuns[n] = median(runs)
		}
	}
	if w := r.wallet; w != nil {
		if kb, err := procStatusKB(w.proc.cmd.Process.Pid, "VmHWM"); err == nil {
			r.rssHWMKB = kb
		}
	}

	r.report(os.Stdout)
	return nil
}

// fail stops measuring t and says why, with the end of its log when the
// process is gone.
func (r *runner) fail(t *target, err error) {
	t.failed = err.Error()
	for _, p := range r.procs {
		if p.name == t.proc && p.exited() {
			t.failed = fmt.Sprintf("%s exited (%v) during the run; its log ends:\n%s", t.proc, p.err, p.tail(10))
		}
	}
	r.logf("%s: FAILED, no longer measured: %s", t.proc, t.failed)
}

func (r *runner) skipWallet(reason string) {
	r.walletSkip = reason
	r.logf("wallet: SKIPPED: %s", reason)
}

func (r *runner) target(name string) *target {
	for _, t := range r.targets {
		if t.name == name {
			return t
		}
	}
	return nil
}

// sampleWallet starts sampling the wallet's RSS when t is the wallet.
func (r *runner) sampleWallet(t *target) (stop func()) {
	if t.w == nil {
		return func() {}
	}
	done := sampleRSS(t.w.proc.cmd.Process.Pid)
	return func() { r.rssPeakKB = max(r.rssPeakKB, done()) }
}

// measure runs an unmeasured warm-up and then the measured wrk run on t,
// with the stub's request and mismatch counts for the measured run.
func (r *runner) measure(ctx context.Context, t *target, conns int, label string) (measured, error) {
	r.settle(t)
	if r.cfg.Warmup > 0 {
		if _, err := r.runWrk(ctx, t.url, t.auth, conns, r.cfg.Warmup); err != nil {
			return measured{}, fmt.Errorf("%s warm-up: %w", t.name, err)
		}
	}
	r.logf("%s: wrk -t%d -c%d -d%s (%s)", t.proc, r.cfg.Threads, conns, wrkSeconds(r.cfg.Duration), label)
	before, err := r.stubStats(ctx)
	if err != nil {
		return measured{}, err
	}
	stopRSS := r.sampleWallet(t)
	cpu0 := r.cpuSnapshot()
	res, err := r.runWrk(ctx, t.url, t.auth, conns, r.cfg.Duration)
	cpu1 := r.cpuSnapshot()
	stopRSS()
	if err != nil {
		return measured{}, fmt.Errorf("%s: %w", t.name, err)
	}
	after, err := r.stubStats(ctx)
	if err != nil {
		return measured{}, err
	}
	m := measured{wrkResult: res, upstream: after.Requests - before.Requests, mismatches: after.Mismatches - before.Mismatches,
		http2: after.HTTP2 - before.HTTP2, otherCPU: otherCPU(cpu0, cpu1), cpuPerCall: cpuPerCall(cpu0, cpu1, t.process(), int(res.Requests))}
	if res.Requests == 0 {
		r.logf("%s: no answer at all in %s", t.name, wrkSeconds(r.cfg.Duration))
	}
	if res.Non2xx > 0 {
		m.refusal = r.sample(ctx, t)
		r.logf("%s: %d non-2xx answers; one request now gets %s", t.name, res.Non2xx, m.refusal)
	}
	r.logf("%s: %.0f req/s, p50 %s, p99 %s, CPU per call %s, non-2xx %d, upstream auth mismatches %d, other processes' CPU %s",
		t.proc, res.RPS, fmtMs(res.P50), fmtMs(res.P99), fmtMicros(m.cpuPerCall), res.Non2xx, m.mismatches, fmtShare(m.otherCPU))
	return m, nil
}

// sample sends one request through t and describes the answer.
func (r *runner) sample(ctx context.Context, t *target) string {
	req, err := http.NewRequestWithContext(ctx, "GET", t.url, nil)
	if err != nil {
		return err.Error()
	}
	req.Header.Set("Authorization", t.auth)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = io.Copy(&b, io.LimitReader(resp.Body, 400))
	return fmt.Sprintf("status %d: %s", resp.StatusCode, shorten(b.String(), 300))
}

// settle waits, for at most 60 s, until the wallet has been idle (under 5%
// of a core) for half a second, so that work left over from the previous
// step, such as a metering backlog, does not land in the next measurement.
func (r *runner) settle(t *target) {
	if t.w == nil {
		return
	}
	pid := t.w.proc.cmd.Process.Pid
	path := fmt.Sprintf("/proc/%d/stat", pid)
	start := time.Now()
	for time.Since(start) < 60*time.Second {
		a, _, ok := procTicks(path, false)
		time.Sleep(500 * time.Millisecond)
		b, _, ok2 := procTicks(path, false)
		if !ok || !ok2 || float64(b-a)/clockTicks < 0.05*0.5 {
			break
		}
	}
	if waited := time.Since(start); waited > 2*time.Second {
		r.logf("%s: waited %s for it to go idle before the next step", t.proc, waited.Round(100*time.Millisecond))
	}
}

// check sends one request through t and requires a 200 that reached the
// stub with an injected key.
func (r *runner) check(ctx context.Context, t *target) error {
	before, err := r.stubStats(ctx)
	if err != nil {
		return err
	}
	h := http.Header{"Authorization": {t.auth}}
	if err := waitHTTP(ctx, nil, t.url, h, http.StatusOK, 5*time.Second); err != nil {
		return fmt.Errorf("%s: %w", t.name, err)
	}
	after, err := r.stubStats(ctx)
	if err != nil {
		return err
	}
	if after.Mismatches != before.Mismatches {
		return fmt.Errorf("%s: the stub saw a request without an injected bench key: %v", t.name, after.Samples)
	}
	return nil
}

// stubStats are the stub's counters (see bench/upstream).
type stubStats struct {
	Requests   int64    `json:"requests"`
	Mismatches int64    `json:"mismatches"`
	HTTP2      int64    `json:"http2"`
	Samples    []string `json:"mismatch_samples"`
}

func (r *runner) stubStats(ctx context.Context) (stubStats, error) {
	var s stubStats
	req, err := http.NewRequestWithContext(ctx, "GET", r.stubURL+"/__bench/stats", nil)
	if err != nil {
		return s, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, fmt.Errorf("stub stats: %w", err)
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// findTools finds wrk and (when nginx is a target) nginx, or says how to
// install them.
func (r *runner) findTools() error {
	look := func(name string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/local/bin"} {
			p := filepath.Join(dir, name)
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
		return ""
	}
	var missing []string
	if r.wrk = look("wrk"); r.wrk == "" {
		missing = append(missing, "wrk")
	}
	if r.want["nginx"] {
		if r.nginx = look("nginx"); r.nginx == "" {
			missing = append(missing, "nginx")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s not found; on Debian or Ubuntu install them with:\n  sudo apt-get install -y nginx-light wrk\n(or leave nginx out with TARGETS=direct,floor,wallet)",
			strings.Join(missing, " and "))
	}
	return nil
}

// moduleRoot finds the directory of the apiwallet module from the working
// directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module "+modulePath+"\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run the benchmark from inside the apiwallet repository (no go.mod of " + modulePath + " found)")
		}
		dir = parent
	}
}

// gobuild builds packages of the module into the run's bin directory.
func (r *runner) gobuild(pkgs ...string) error {
	cmd := exec.Command("go", append([]string{"build", "-o", filepath.Join(r.tmp, "bin") + "/"}, pkgs...)...)
	cmd.Dir = r.root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
	return nil
}
