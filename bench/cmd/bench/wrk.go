package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what the runner takes from one `wrk --latency` run.
type wrkResult struct {
	Requests     int64
	RPS          float64
	P50, P99     time.Duration
	Non2xx       int64
	SocketErrors int64 // connect + read + write + timeout
}

var (
	wrkRPS      = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	wrkTotal    = regexp.MustCompile(`(?m)^\s*([0-9]+) requests in `)
	wrkPct      = regexp.MustCompile(`(?m)^\s+([0-9.]+)%\s+([0-9.]+)(us|ms|s|m|h)\s*$`)
	wrkNon2xx   = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses:\s+([0-9]+)`)
	wrkSocket   = regexp.MustCompile(`(?m)^\s*Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)`)
	wrkUnitToNs = map[string]float64{"us": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}
)

// parseWrk reads the text wrk --latency prints.
func parseWrk(out string) (wrkResult, error) {
	var res wrkResult
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return res, errors.New("no Requests/sec line in wrk output")
	}
	res.RPS, _ = strconv.ParseFloat(m[1], 64)
	if m := wrkTotal.FindStringSubmatch(out); m != nil {
		res.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	pcts := wrkPct.FindAllStringSubmatch(out, -1)
	if len(pcts) == 0 {
		return res, errors.New("no latency distribution in wrk output (was --latency given?)")
	}
	for _, m := range pcts {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			continue
		}
		d := time.Duration(v * wrkUnitToNs[m[3]])
		switch m[1] {
		case "50", "50.000":
			res.P50 = d
		case "99", "99.000":
			res.P99 = d
		}
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		res.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			res.SocketErrors += n
		}
	}
	return res, nil
}

// wrkSeconds formats d as wrk wants it: whole seconds, at least one.
func wrkSeconds(d time.Duration) string {
	return fmt.Sprintf("%ds", max(1, int(d.Round(time.Second)/time.Second)))
}

// runWrk runs wrk against url with the configured threads and connections.
func (r *runner) runWrk(ctx context.Context, url, auth string, conns int, d time.Duration) (wrkResult, error) {
	args := []string{
		"-t", strconv.Itoa(r.cfg.Threads), "-c", strconv.Itoa(conns),
		"-d", wrkSeconds(d), "--latency", "-H", "Authorization: " + auth, url,
	}
	out, err := exec.CommandContext(ctx, r.wrk, args...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	res, err := parseWrk(string(out))
	if err != nil {
		return res, fmt.Errorf("%v:\n%s", err, out)
	}
	return res, nil
}

// loadResult is the JSON bench/cmd/load prints (see its Result type).
type loadResult struct {
	Requests int     `json:"requests"`
	OK       int     `json:"ok"`
	Non2xx   int     `json:"non_2xx"`
	Errors   int     `json:"errors"`
	Unsent   int     `json:"unsent"`
	RPS      float64 `json:"rps"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
	P999Ms   float64 `json:"p999_ms"`
	MaxMs    float64 `json:"max_ms"`
	LagP99Ms float64 `json:"sched_lag_p99_ms"`
	FirstErr string  `json:"first_error"`
}

// runRate runs the Go generator at the configured constant rate.
func (r *runner) runRate(ctx context.Context, url, auth string) (loadResult, error) {
	args := []string{
		"-url", url, "-H", "Authorization: " + auth,
		"-rate", strconv.Itoa(r.cfg.Rate), "-duration", r.cfg.RateDuration.String(),
		"-warmup", "1s", "-c", strconv.Itoa(r.cfg.Connections), "-json",
	}
	var res loadResult
	cmd := exec.CommandContext(ctx, r.bin("load"), args...)
	if r.certFile != "" {
		cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+r.certFile) // for direct over TLS
	}
	out, err := cmd.Output()
	if err != nil {
		return res, fmt.Errorf("load %s: %v", strings.Join(args, " "), err)
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return res, fmt.Errorf("load: bad output %q: %v", out, err)
	}
	return res, nil
}
