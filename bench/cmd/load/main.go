// Command load is the benchmark's small Go load generator. With -rate it
// sends requests at a constant rate (open loop, like wrk2 or vegeta): requests
// are released on a fixed schedule whatever the server does, and a request's
// latency is measured from its release, not from when a connection became
// free, so a stalled server is charged for the requests queued behind it
// (no coordinated omission). With -rate 0 it runs closed loop: each
// connection sends its next request as soon as the previous one is answered.
//
// Percentiles are exact: every latency is kept and sorted.
//
//	go run ./bench/cmd/load -url http://127.0.0.1:9000/v1/charges \
//	    -H "Authorization: Bearer sk_test_bench_x" -rate 2000 -duration 10s
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Result is what -json prints: one run's counts and latency percentiles.
type Result struct {
	URL         string  `json:"url"`
	TargetRate  int     `json:"target_rate"` // 0: closed loop
	Connections int     `json:"connections"`
	DurationS   float64 `json:"duration_s"` // from the first send to the last answer
	Requests    int     `json:"requests"`   // answered or failed
	OK          int     `json:"ok"`         // 2xx
	Non2xx      int     `json:"non_2xx"`
	Errors      int     `json:"errors"` // transport errors and timeouts
	Unsent      int     `json:"unsent"` // scheduled but never started before the drain deadline
	RPS         float64 `json:"rps"`    // requests / duration
	P50Ms       float64 `json:"p50_ms"`
	P90Ms       float64 `json:"p90_ms"`
	P99Ms       float64 `json:"p99_ms"`
	P999Ms      float64 `json:"p999_ms"`
	MaxMs       float64 `json:"max_ms"`
	LagP99Ms    float64 `json:"sched_lag_p99_ms"` // open loop: p99 of how late requests were released
	FirstError  string  `json:"first_error,omitempty"`
}

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

type sample struct {
	lat    time.Duration
	status int // 0: transport error
}

type runner struct {
	url     string
	method  string
	header  http.Header
	client  *http.Client
	conns   int
	timeout time.Duration
}

func main() {
	var hs headers
	url := flag.String("url", "", "URL to load (required)")
	method := flag.String("method", "GET", "HTTP method")
	rate := flag.Int("rate", 0, "requests per second; 0 runs closed loop as fast as the connections allow")
	duration := flag.Duration("duration", 10*time.Second, "measured duration")
	warmup := flag.Duration("warmup", time.Second, "unmeasured warm-up before the measured run")
	conns := flag.Int("c", 64, "connections (and concurrent requests at most)")
	timeout := flag.Duration("timeout", 5*time.Second, "per-request timeout")
	asJSON := flag.Bool("json", false, "print the result as JSON")
	flag.Var(&hs, "H", `request header "Name: value" (repeatable)`)
	flag.Parse()
	if *url == "" || *conns < 1 || *rate < 0 {
		flag.Usage()
		os.Exit(2)
	}

	h := http.Header{}
	for _, kv := range hs {
		k, v, ok := strings.Cut(kv, ":")
		if !ok {
			fmt.Fprintf(os.Stderr, "load: bad header %q: want \"Name: value\"\n", kv)
			os.Exit(2)
		}
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = *conns
	tr.MaxConnsPerHost = *conns
	tr.DisableCompression = true
	// HTTP/1.1 with keep-alive, as wrk speaks, also to an https target
	// (which would otherwise be offered HTTP/2). SSL_CERT_FILE names the
	// roots an https target is verified against.
	tr.ForceAttemptHTTP2 = false
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP1(true)
	tr.TLSClientConfig = &tls.Config{NextProtos: []string{"http/1.1"}}
	r := &runner{url: *url, method: *method, header: h, conns: *conns, timeout: *timeout,
		client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *warmup > 0 {
		r.run(ctx, *rate, *warmup)
	}
	res := r.run(ctx, *rate, *duration)
	if *asJSON {
		_ = json.NewEncoder(os.Stdout).Encode(res)
		return
	}
	mode := "closed loop"
	if res.TargetRate > 0 {
		mode = fmt.Sprintf("constant rate %d req/s", res.TargetRate)
	}
	fmt.Printf("%s, %d connections, %s: %d requests in %.2fs (%.0f req/s), %d non-2xx, %d errors, %d unsent\n",
		*url, res.Connections, mode, res.Requests, res.DurationS, res.RPS, res.Non2xx, res.Errors, res.Unsent)
	fmt.Printf("latency p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms\n",
		res.P50Ms, res.P90Ms, res.P99Ms, res.P999Ms, res.MaxMs)
	if res.TargetRate > 0 {
		fmt.Printf("scheduling lag p99 %.3f ms\n", res.LagP99Ms)
	}
	if res.FirstError != "" {
		fmt.Printf("first error: %s\n", res.FirstError)
	}
}

// run drives the target for d and summarises the samples.
func (r *runner) run(ctx context.Context, rate int, d time.Duration) Result {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		all      []sample
		firstErr string
		wg       sync.WaitGroup
		lags     []time.Duration // open loop: release time minus ideal time
	)
	record := func(local []sample, errText string) {
		mu.Lock()
		defer mu.Unlock()
		all = append(all, local...)
		if firstErr == "" {
			firstErr = errText
		}
	}
	start := time.Now()
	end := start.Add(d)

	if rate == 0 {
		// Closed loop: each worker keeps one request in flight until the end.
		for range r.conns {
			wg.Go(func() {
				var local []sample
				var errText string
				for ctx.Err() == nil && time.Now().Before(end) {
					t0 := time.Now()
					s, err := r.do(ctx)
					s.lat = time.Since(t0)
					if err != nil && errText == "" {
						errText = err.Error()
					}
					local = append(local, s)
				}
				record(local, errText)
			})
		}
		wg.Wait()
	} else {
		// Open loop: a scheduler releases requests on a fixed schedule into a
		// queue that holds every scheduled request, so it never blocks on a
		// slow server; a request's latency runs from its release, so time
		// spent queued behind busy connections counts.
		//
		// Go's timers wake up to about a millisecond late when the process
		// is idle, so the scheduler releases every request that is due when
		// it wakes, stamped with that moment; how late each release was
		// against the ideal schedule is reported as the scheduling lag.
		total := int(d.Seconds() * float64(rate))
		interval := time.Duration(float64(time.Second) / float64(rate))
		queue := make(chan time.Time, total)
		for range r.conns {
			wg.Go(func() {
				var local []sample
				var errText string
				for released := range queue {
					if ctx.Err() != nil {
						continue
					}
					s, err := r.do(ctx)
					s.lat = time.Since(released)
					if err != nil && errText == "" {
						errText = err.Error()
					}
					local = append(local, s)
				}
				record(local, errText)
			})
		}
		lags = make([]time.Duration, 0, total)
	schedule:
		for i := 0; i < total; {
			now := time.Now()
			due := min(total, int(now.Sub(start)/interval)+1)
			for ; i < due; i++ {
				lags = append(lags, now.Sub(start.Add(time.Duration(i)*interval)))
				queue <- now
			}
			if i == total {
				break
			}
			select {
			case <-ctx.Done():
				break schedule
			case <-time.After(time.Until(start.Add(time.Duration(i) * interval))):
			}
		}
		close(queue)
		// Stop waiting for a backlog much longer than the timeout allows.
		drain := time.AfterFunc(time.Until(end)+2*r.timeout, cancel)
		wg.Wait()
		drain.Stop()
	}
	elapsed := time.Since(start)

	res := Result{URL: r.url, TargetRate: rate, Connections: r.conns, DurationS: elapsed.Seconds(), FirstError: firstErr}
	lats := make([]time.Duration, 0, len(all))
	for _, s := range all {
		res.Requests++
		switch {
		case s.status == 0:
			res.Errors++
		case s.status >= 200 && s.status < 300:
			res.OK++
		default:
			res.Non2xx++
		}
		lats = append(lats, s.lat)
	}
	if rate > 0 {
		// Requests skipped after a cancel or the drain deadline were never sent.
		res.Unsent = max(0, int(d.Seconds()*float64(rate))-res.Requests)
	}
	if elapsed > 0 {
		res.RPS = float64(res.Requests) / elapsed.Seconds()
	}
	slices.Sort(lats)
	res.P50Ms = ms(percentile(lats, 0.50))
	res.P90Ms = ms(percentile(lats, 0.90))
	res.P99Ms = ms(percentile(lats, 0.99))
	res.P999Ms = ms(percentile(lats, 0.999))
	if n := len(lats); n > 0 {
		res.MaxMs = ms(lats[n-1])
	}
	slices.Sort(lags)
	res.LagP99Ms = ms(percentile(lags, 0.99))
	return res
}

// do sends one request and reads the whole answer.
func (r *runner) do(ctx context.Context) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, nil)
	if err != nil {
		return sample{}, err
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return sample{}, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return sample{}, err
	}
	return sample{status: resp.StatusCode}, nil
}

// percentile returns the q-quantile of sorted (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(n))) - 1
	return sorted[max(0, min(i, n-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
