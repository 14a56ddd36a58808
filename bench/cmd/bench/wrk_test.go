package main

import (
	"testing"
	"time"
)

// TestParseWrk guards the numbers the benchmark table is built from: wrk's
// units differ per line (us, ms, s), and a missed unit would misreport
// latency by orders of magnitude.
func TestParseWrk(t *testing.T) {
	out := `Running 10s test @ http://127.0.0.1:40001/v1/charges
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.64ms    2.01ms  40.12ms   88.61%
    Req/Sec    22.81k     1.91k   27.41k    70.00%
  Latency Distribution
     50%  812.00us
     75%    1.89ms
     90%    3.95ms
     99%    1.20s
  453840 requests in 10.00s, 79.20MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 17
Requests/sec:  45381.37
Transfer/sec:      7.92MB
`
	got, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{Requests: 453840, RPS: 45381.37, P50: 812 * time.Microsecond, P99: 1200 * time.Millisecond, Non2xx: 17, SocketErrors: 5}
	if got != want {
		t.Errorf("parseWrk = %+v, want %+v", got, want)
	}

	// A target that answered nothing (every request timed out) is a
	// result, not a parse failure.
	none := `Running 2s test @ http://127.0.0.1:35615/proxy/stripe/v1/charges
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.00us    0.00us   0.00us    -nan%
    Req/Sec     0.00      0.00     0.00      -nan%
  Latency Distribution
     50%    0.00us
     75%    0.00us
     90%    0.00us
     99%    0.00us
  0 requests in 2.01s, 0.00B read
  Socket errors: connect 0, read 0, write 0, timeout 64
Requests/sec:      0.00
Transfer/sec:       0.00B
`
	got, err = parseWrk(none)
	if err != nil {
		t.Fatal(err)
	}
	if want := (wrkResult{SocketErrors: 64}); got != want {
		t.Errorf("parseWrk(no answers) = %+v, want %+v", got, want)
	}

	if _, err := parseWrk("Requests/sec: 10\n"); err == nil {
		t.Error("parseWrk accepted output without a latency distribution")
	}
}

func TestWrkSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{
		10 * time.Second:       "10s",
		time.Minute:            "60s",
		300 * time.Millisecond: "1s",
	} {
		if got := wrkSeconds(d); got != want {
			t.Errorf("wrkSeconds(%v) = %q, want %q", d, got, want)
		}
	}
}
