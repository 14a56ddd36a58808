package main

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// The targets.
const (
	targetWalletOverFloor = 1.1
	targetWalletOverNginx = 0.5
	targetAddedP99        = time.Millisecond
	targetKeysDrop        = 0.10
	targetRSSBytes        = 150 << 20
)

// median returns the round with the median throughput.
func median(runs []measured) measured {
	return medianBy(runs, func(m measured) float64 { return m.RPS })
}

// pickRateRuns sets each target's constant-rate row and added p99 from its
// rounds. Added p99 is taken within a round, the target's p99 minus
// direct's in the same round, so that drift in the machine between rounds
// cancels out; the median over rounds is reported, with the round it came
// from (the higher of the two middle ones for an even count). Direct's row
// is its median-p99 round.
func pickRateRuns(direct *target, targets []*target) {
	directP99 := map[int]float64{}
	if direct != nil && len(direct.rates) > 0 {
		mid := medianBy(direct.rates, func(run rateRun) float64 { return run.res.P99Ms })
		direct.rate, direct.rateOtherCPU = &mid.res, mid.otherCPU
		for _, run := range direct.rates {
			directP99[run.round] = run.res.P99Ms
		}
	}
	for _, t := range targets {
		t.cpuPerCall = -1
		if known := slices.DeleteFunc(slices.Clone(t.rates), func(run rateRun) bool { return run.cpuPerCall < 0 }); len(known) > 0 {
			t.cpuPerCall = medianBy(known, func(run rateRun) float64 { return run.cpuPerCall }).cpuPerCall
		}
		if t == direct || len(t.rates) == 0 {
			continue
		}
		var paired []rateRun
		for _, run := range t.rates {
			if _, ok := directP99[run.round]; ok {
				paired = append(paired, run)
				t.addedByRound = append(t.addedByRound, run.res.P99Ms-directP99[run.round])
			}
		}
		if len(paired) == 0 {
			mid := medianBy(t.rates, func(run rateRun) float64 { return run.res.P99Ms })
			t.rate, t.rateOtherCPU = &mid.res, mid.otherCPU
			continue
		}
		added := func(run rateRun) float64 { return run.res.P99Ms - directP99[run.round] }
		// Of two middle rounds, the worse one, as for throughput.
		mid := medianBy(paired, func(run rateRun) float64 { return -added(run) })
		t.rate, t.rateOtherCPU, t.added = &mid.res, mid.otherCPU, added(mid)
	}
}

// medianBy returns the element with the median value of by (the lower of
// the two middle ones for an even count).
func medianBy[T any](s []T, by func(T) float64) T {
	s = slices.Clone(s)
	slices.SortStableFunc(s, func(a, b T) int { return cmp.Compare(by(a), by(b)) })
	return s[(len(s)-1)/2]
}

// roundRatios lists a/b for each round both targets ran, or "" for fewer
// than two rounds.
func roundRatios(a, b *target) string {
	if a == nil || b == nil {
		return ""
	}
	n := min(len(a.runs), len(b.runs))
	if n < 2 {
		return ""
	}
	out := make([]string, n)
	for i := range n {
		out[i] = "n/a"
		if b.runs[i].RPS > 0 {
			out[i] = fmt.Sprintf("%.2f", a.runs[i].RPS/b.runs[i].RPS)
		}
	}
	return strings.Join(out, ", ")
}

// fmtShare formats a share of the machine, or "?" when unknown.
func fmtShare(f float64) string {
	if f < 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f%%", f*100)
}

// fmtMicros formats a CPU time per call in microseconds; -1 is unknown.
func fmtMicros(us float64) string {
	if us < 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f µs", us)
}

func fmtMs(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// thousands formats n with comma separators.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// ratioOf is rps[a]/rps[b], or n/a when either was not measured.
func ratioOf(rps map[string]float64, a, b string) string {
	va, oka := rps[a]
	vb, okb := rps[b]
	if !oka || !okb {
		return "n/a"
	}
	return ratio(va, vb)
}

func (r *runner) report(w io.Writer) {
	c := r.cfg
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }

	p("# API Key Wallet benchmark")
	p("")
	env := []string{time.Now().UTC().Format("2006-01-02 15:04 UTC"), fmt.Sprintf("%d cores (%s)", runtime.NumCPU(), cpuModel())}
	for _, v := range []string{toolVersion(r.nginx, "-v"), toolVersion(r.wrk, "-v"), runtime.Version(), kernel()} {
		if v != "" {
			env = append(env, v)
		}
	}
	p("%s.", strings.Join(env, "; "))
	p("Load average (1 min) before the run: %s.", r.loadStart)
	p("Everything on loopback, sharing the cores with the load generator. Each request is `GET %s`, answered by the stub with a small fixed JSON body. Clients speak plain HTTP/1.1 with keep-alive to every proxy; each proxy keeps its upstream connections alive.", path)
	p("")
	p("The floor is a bare `httputil.ReverseProxy` (its Rewrite sets the URL and Authorization only) on the wallet's own upstream Transport (`proxy.NewTransport`, MaxIdleConnsPerHost = the round's connections), with a pool of 32 KiB copy buffers and the wallet's GC settings: %s.", r.gcSettings())
	p("")

	var failures []string
	rps := map[string]map[string]float64{} // round → target → req/s
	for _, rd := range r.rounds {
		rps[rd.name] = r.throughputTable(p, rd)
		for _, t := range rd.targets {
			if t.failed != "" {
				failures = append(failures, fmt.Sprintf("- %s: %s", t.proc, t.failed))
			}
		}
		if rd.name == "plain" {
			if r.walletSkip != "" && r.want["wallet"] {
				p("Wallet skipped: %s.", r.walletSkip)
				p("")
			}
			rr := rps[rd.name]
			p("Throughput ratios (same run, same settings):")
			p("")
			p("| ratio | value | target |")
			p("|---|--:|---|")
			p("| wallet / floor | %s | >= %.1f |", ratioOf(rr, "wallet", "floor"), targetWalletOverFloor)
			p("| wallet / nginx | %s | >= %.1f (issue 4) |", ratioOf(rr, "wallet", "nginx"), targetWalletOverNginx)
			p("| floor / nginx | %s | reference |", ratioOf(rr, "floor", "nginx"))
			p("| nginx / direct | %s | reference |", ratioOf(rr, "nginx", "direct"))
			p("")
			if byRound := roundRatios(rd.target("wallet"), rd.target("floor")); byRound != "" {
				// The ratio above divides medians taken over different rounds;
				// each round ran both targets back to back, so its own ratio
				// shows how much of a difference is the machine's drift.
				p("wallet / floor within each round: %s.", byRound)
				p("")
			}
		} else {
			rr := rps[rd.name]
			p("Ratios in this round: wallet / floor %s, wallet / nginx %s, floor / nginx %s.",
				ratioOf(rr, "wallet", "floor"), ratioOf(rr, "wallet", "nginx"), ratioOf(rr, "floor", "nginx"))
			p("")
		}
		if rd.rate {
			r.rateTable(p, rd)
		}
	}
	p("\"CPU per call\" is the user and system time of the process group serving the calls (the stub for direct; nginx's master and workers; the floor or the wallet, its upstream calls included), from `/proc/PID/stat` before and after the run, divided by the calls answered; it includes whatever else the process did meanwhile (the wallet's usage writes and logs). \"Other CPU\" is the share of the machine that processes outside the benchmark used during the run; above a few percent the row is skewed.")
	p("")
	if len(failures) > 0 {
		p("Targets that failed during the run:")
		p("")
		p("```")
		p("%s", strings.Join(failures, "\n"))
		p("```")
		p("")
	}

	if r.wallet != nil && len(r.keyRuns) > 0 {
		p("## Wallet throughput by stored keys (stripe, paid tier)")
		p("")
		p("| stored keys | requests/s | p50 | p99 | CPU per call | non-2xx + socket errors | vs %s | time to store | other CPU |", thousands(int64(c.Keys[0])))
		p("|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
		base := r.keyRuns[c.Keys[0]].RPS
		for _, n := range c.Keys {
			k, ok := r.keyRuns[n]
			if !ok {
				continue
			}
			if k.Requests == 0 {
				p("| %s | 0 ⚠ no answer in %s | | | | | 0.00 | %s | %s |", thousands(int64(n)), wrkSeconds(c.Duration), roundDur(r.insertTimes[n]), fmtShare(k.otherCPU))
				continue
			}
			p("| %s | %s | %s | %s | %s | %s | %s | %s | %s |", thousands(int64(n)), thousands(int64(k.RPS)), fmtMs(k.P50), fmtMs(k.P99),
				fmtMicros(k.cpuPerCall), thousands(k.Non2xx+k.SocketErrors), ratio(k.RPS, base), roundDur(r.insertTimes[n]), fmtShare(k.otherCPU))
		}
		p("")
		if r.keysFailed != "" {
			p("The series stopped: %s", r.keysFailed)
			p("")
		}
		p("Keys are stored through `POST /keys` (%d concurrent requests) into the plain round's wallet; \"time to store\" is for the keys added at that step.", c.InsertConcurrency)
		p("")
	}
	if r.wallet != nil {
		p("## Wallet memory")
		p("")
		p("- peak RSS under load (VmRSS sampled every 100 ms during every wallet load run, in every round): %.1f MB", float64(r.rssPeakKB)/1024)
		p("- VmHWM at the end of the plain round's wallet (lifetime peak, including storing the keys): %.1f MB", float64(r.rssHWMKB)/1024)
		p("")
	}
	r.targetsTable(p, rps)
}

// gcSettings describes the GC settings the wallet and the floor share.
func (r *runner) gcSettings() string {
	var set []string
	gogc := false
	for _, kv := range r.goRuntimeEnv() {
		if k, _, _ := strings.Cut(kv, "="); k == "GOGC" || k == "GOMEMLIMIT" || k == "GOMAXPROCS" || k == "GODEBUG" {
			set = append(set, "`"+kv+"`")
			gogc = gogc || k == "GOGC"
		}
	}
	if !gogc {
		set = append([]string{"the adaptive GC floor (internal/gcfloor)"}, set...)
	}
	return strings.Join(set, ", ")
}

// roundTitle heads a round's tables.
func (r *runner) roundTitle(rd *round) string {
	switch rd.name {
	case "tls":
		proto := "HTTP/2 offered by ALPN"
		if !r.cfg.TLSH2 {
			proto = "HTTP/1.1 only"
		}
		return fmt.Sprintf("TLS upstream (the stub over HTTPS, self-signed certificate trusted by every proxy, %s)", proto)
	case "latency":
		return fmt.Sprintf("Upstream with %d ms of latency per answer", r.cfg.LatencyMs)
	}
	return "Plain HTTP upstream"
}

// throughputTable prints a round's wrk table and returns each target's
// median requests/s.
func (r *runner) throughputTable(p func(string, ...any), rd *round) map[string]float64 {
	c := r.cfg
	p("## %s: throughput (wrk -t%d -c%d -d%s --latency, keep-alive)", r.roundTitle(rd), c.Threads, rd.conns, wrkSeconds(c.Duration))
	p("")
	if c.Rounds > 1 {
		p("Median of %d interleaved rounds by requests/s; the other columns are that round's.", c.Rounds)
		p("")
	}
	var direct *measured
	if d := rd.target("direct"); d != nil && len(d.runs) > 0 {
		m := median(d.runs)
		direct = &m
	}
	extra, extraSep := "", ""
	switch rd.name {
	case "tls":
		extra, extraSep = " to the upstream |", "---|"
	case "latency":
		extra, extraSep = " added p99 over direct |", "--:|"
	}
	p("| target | requests/s | p50 | p99 |%s CPU per call | non-2xx | socket errors | upstream auth mismatches | other CPU |", extra)
	p("|---|--:|--:|--:|%s--:|--:|--:|--:|--:|", extraSep)
	ncols := 9
	if extra != "" {
		ncols++
	}
	rps := map[string]float64{}
	invalid := false
	var refusals []string
	for _, t := range rd.targets {
		if len(t.runs) == 0 {
			p("| %s | failed |%s", label(t.name), strings.Repeat(" |", ncols-2))
			continue
		}
		m := median(t.runs)
		rps[t.name] = m.RPS
		for _, run := range t.runs {
			if run.refusal != "" {
				refusals = append(refusals, fmt.Sprintf("- %s: %s non-2xx; one request afterwards got %s", t.proc, thousands(run.Non2xx), run.refusal))
			}
		}
		note := ""
		if m.Requests == 0 || m.Non2xx > 0 || m.mismatches > 0 || m.SocketErrors > 0 {
			note = " ⚠"
			invalid = true
		}
		// Every 2xx must have come from the stub (the count may differ by
		// the requests in flight when wrk stopped).
		if ok := m.Requests - m.Non2xx; m.upstream+int64(rd.conns) < ok {
			refusals = append(refusals, fmt.Sprintf("- %s: %s 2xx answers but the stub saw only %s requests: answers that never reached the upstream",
				t.proc, thousands(ok), thousands(m.upstream)))
			note = " ⚠"
			invalid = true
		}
		col := ""
		switch rd.name {
		case "tls":
			col = " " + protoOf(m) + " |"
		case "latency":
			col = " — |"
			if direct != nil && t.name != "direct" {
				col = fmt.Sprintf(" %+.2f ms |", float64(m.P99-direct.P99)/1e6)
			}
		}
		p("| %s%s | %s | %s | %s |%s %s | %s | %s | %s | %s |", label(t.name), note, thousands(int64(m.RPS)), fmtMs(m.P50), fmtMs(m.P99), col,
			fmtMicros(m.cpuPerCall), thousands(m.Non2xx), thousands(m.SocketErrors), thousands(m.mismatches), fmtShare(m.otherCPU))
	}
	if r.walletSkip != "" && r.want["wallet"] && rd.target("wallet") == nil {
		p("| wallet | skipped |%s", strings.Repeat(" |", ncols-2))
	}
	p("")
	if rd.name == "latency" {
		p("Closed loop at %d connections: each answer waits %d ms at the stub, so at most %s req/s can pass; added p99 is the target's median-round p99 minus direct's.",
			rd.conns, c.LatencyMs, thousands(int64(rd.conns*1000/max(1, c.LatencyMs))))
		p("")
	}
	if rd.name == "tls" {
		p("Client to proxy is plain HTTP; proxy to stub is TLS. \"To the upstream\" is the protocol the stub saw. nginx verifies the certificate (`proxy_ssl_trusted_certificate`, `proxy_ssl_verify on`) and reuses sessions (`proxy_ssl_session_reuse on`); the floor and the wallet trust it through `SSL_CERT_FILE`. Direct is wrk over TLS to the stub itself.")
		p("")
	}
	if invalid {
		p("⚠ Rows marked so had no answers, refused or failed requests, or requests that reached the stub without an injected key: their numbers do not measure proxying.")
		p("")
	}
	if len(refusals) > 0 {
		p("Refusals and anomalies seen:")
		p("")
		p("%s", strings.Join(refusals, "\n"))
		p("")
	}
	return rps
}

// protoOf names the protocol the stub saw a run's requests arrive over.
func protoOf(m measured) string {
	switch {
	case m.upstream == 0:
		return "?"
	case m.http2 == 0:
		return "HTTP/1.1"
	case m.http2 >= m.upstream:
		return "HTTP/2"
	}
	return fmt.Sprintf("%.0f%% HTTP/2", 100*float64(m.http2)/float64(m.upstream))
}

// rateTable prints a round's constant-rate table.
func (r *runner) rateTable(p func(string, ...any), rd *round) {
	c := r.cfg
	var direct *loadResult
	if d := rd.target("direct"); d != nil {
		direct = d.rate
	}
	p("## %s: latency at a constant %s req/s (bench/cmd/load, %s, up to %d connections)", r.roundTitle(rd), thousands(int64(c.Rate)), c.RateDuration, c.Connections)
	p("")
	p("Open loop: requests are released on schedule whatever the server does; latency runs from release, including any wait for a free connection.")
	p("")
	p("| target | achieved req/s | p50 | p99 | p99.9 | max | added p99 over direct | CPU per call | non-2xx + errors | other CPU |")
	p("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, t := range rd.targets {
		lr := t.rate
		if lr == nil {
			continue
		}
		added := "—"
		if direct != nil && t.name != "direct" {
			added = fmt.Sprintf("%+.2f ms", t.added)
		}
		p("| %s | %s | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %s | %s | %d | %s |", label(t.name), thousands(int64(lr.RPS+0.5)), lr.P50Ms, lr.P99Ms, lr.P999Ms, lr.MaxMs,
			added, fmtMicros(t.cpuPerCall), lr.Non2xx+lr.Errors+lr.Unsent, fmtShare(t.rateOtherCPU))
	}
	p("")
	if direct != nil && c.Rounds > 1 {
		p("%d interleaved rounds. Added p99 is taken within each round (the target's p99 minus direct's in the same round), and the table gives the median over the rounds; each row shows the round that median came from, and direct's row its median-p99 round. CPU per call is the median over the rounds.", c.Rounds)
		p("")
		var parts []string
		for _, t := range rd.targets {
			if t.name == "direct" || len(t.addedByRound) == 0 {
				continue
			}
			vals := make([]string, len(t.addedByRound))
			for i, v := range t.addedByRound {
				vals[i] = fmt.Sprintf("%+.2f", v)
			}
			parts = append(parts, fmt.Sprintf("%s %s ms", t.name, strings.Join(vals, ", ")))
		}
		p("Added p99 within each round: %s.", strings.Join(parts, "; "))
		p("")
	}
	if direct != nil {
		p("Go timers wake up to about 1 ms late, so the generator releases requests in small bursts: p99 %.2f ms behind the ideal schedule on the direct run. Latency runs from the actual release, so that lag is not in the figures; the bursts are the same for every row, and the added p99 compares like with like.", direct.LagP99Ms)
		p("")
	}
}

// cpuOf is a target's CPU per call for the targets table: at the constant
// rate when the round has it (the machine is not saturated there), else
// from its median throughput run.
func cpuOf(t *target) float64 {
	if t == nil {
		return -1
	}
	if len(t.rates) > 0 {
		return t.cpuPerCall
	}
	if len(t.runs) > 0 {
		return median(t.runs).cpuPerCall
	}
	return -1
}

// mark renders a verdict: met, not met, or n/a when not measurable.
func mark(measurable, ok bool) string {
	switch {
	case !measurable:
		return "n/a"
	case ok:
		return "met"
	}
	return "not met"
}

// targetsTable prints the targets, each computed within this run.
func (r *runner) targetsTable(p func(string, ...any), rps map[string]map[string]float64) {
	c := r.cfg
	p("## Targets (issue 12; ratios within this run)")
	p("")
	busiest := -1.0
	for _, t := range r.targets {
		for _, m := range t.runs {
			busiest = max(busiest, m.otherCPU)
		}
		for _, run := range t.rates {
			busiest = max(busiest, run.otherCPU)
		}
	}
	if busiest > 0.05 {
		p("⚠ Processes outside the benchmark used up to %s of the machine during some runs (\"other CPU\"): those rows, and the verdicts read from them, are skewed. Run again on a quiet machine, or with `ROUNDS=3` or more.", fmtShare(busiest))
		p("")
	}
	p("| target | measured | verdict |")
	p("|---|---|---|")
	if r.wallet == nil {
		why := "not in TARGETS"
		if r.walletSkip != "" {
			why = "skipped"
		}
		p("| all wallet targets | wallet %s | n/a |", why)
		return
	}
	for _, rd := range r.rounds {
		rr := rps[rd.name]
		_, hw := rr["wallet"]
		_, hf := rr["floor"]
		suffix := ""
		if rd.name != "plain" {
			suffix = ", " + rd.name + " round"
		}
		p("| wallet throughput >= %.1f x floor%s | %s x floor | %s |", targetWalletOverFloor, suffix, ratioOf(rr, "wallet", "floor"),
			mark(hw && hf, rr["wallet"] >= targetWalletOverFloor*rr["floor"]))
		wc, fc := cpuOf(rd.target("wallet")), cpuOf(rd.target("floor"))
		p("| wallet CPU per call <= floor's%s | wallet %s, floor %s | %s |", suffix, fmtMicros(wc), fmtMicros(fc), mark(wc >= 0 && fc >= 0, wc <= fc))
	}
	plain := r.rounds[0]
	wt, ft, nt := plain.target("wallet"), plain.target("floor"), plain.target("nginx")
	okRate := func(t *target) bool {
		return t != nil && t.rate != nil && t.rate.Non2xx+t.rate.Errors+t.rate.Unsent == 0 && plain.target("direct") != nil && plain.target("direct").rate != nil
	}
	addedOf := func(t *target) string {
		if !okRate(t) {
			return "not measured"
		}
		return fmt.Sprintf("%+.2f ms", t.added)
	}
	rate := thousands(int64(c.Rate))
	p("| added p99 over direct at %s req/s <= floor's | wallet %s, floor %s | %s |", rate, addedOf(wt), addedOf(ft),
		mark(okRate(wt) && okRate(ft), okRate(wt) && okRate(ft) && wt.added <= ft.added))
	p("| added p99 over direct at %s req/s <= nginx's | wallet %s, nginx %s | %s |", rate, addedOf(wt), addedOf(nt),
		mark(okRate(wt) && okRate(nt), okRate(wt) && okRate(nt) && wt.added <= nt.added))
	p("| added p99 over direct at %s req/s <= 1 ms (issue 4) | %s | %s |", rate, addedOf(wt),
		mark(okRate(wt), okRate(wt) && wt.added <= float64(targetAddedP99)/1e6))
	_, hw := rps["plain"]["wallet"]
	_, hn := rps["plain"]["nginx"]
	p("| wallet throughput >= %.1f x nginx (issue 4) | %s x nginx | %s |", targetWalletOverNginx, ratioOf(rps["plain"], "wallet", "nginx"),
		mark(hw && hn, rps["plain"]["wallet"] >= targetWalletOverNginx*rps["plain"]["nginx"]))
	lo, hi := c.Keys[0], c.Keys[len(c.Keys)-1]
	if k1, ok1 := r.keyRuns[lo]; ok1 && len(c.Keys) > 1 {
		if kn, ok := r.keyRuns[hi]; ok {
			p("| %s keys within 10%% of %s | %s x | %s |", thousands(int64(hi)), thousands(int64(lo)), ratio(kn.RPS, k1.RPS),
				mark(true, kn.RPS >= (1-targetKeysDrop)*k1.RPS))
		} else {
			p("| %s keys within 10%% of %s | not measured | not met |", thousands(int64(hi)), thousands(int64(lo)))
		}
	}
	p("| peak RSS < 150 MB | %.1f MB | %s |", float64(r.rssPeakKB)/1024, mark(r.rssPeakKB > 0, r.rssPeakKB*1024 < targetRSSBytes))
}

// roundDur keeps two or three significant digits of a duration.
func roundDur(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond)
	case d < time.Minute:
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

func label(name string) string {
	switch name {
	case "direct":
		return "direct (stub)"
	case "nginx":
		return "nginx"
	case "floor":
		return "floor (httputil.ReverseProxy)"
	case "wallet":
		return "wallet"
	}
	return name
}

// loadAvg is the 1-minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "unknown"
	}
	return f[0]
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return runtime.GOOS
	}
	return "Linux " + strings.TrimSpace(string(b))
}

// toolVersion returns the first line a tool prints for its version flag.
func toolVersion(bin, flag string) string {
	if bin == "" {
		return ""
	}
	out, _ := exec.Command(bin, flag).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	line = strings.TrimPrefix(line, "nginx version: ")
	if i := strings.Index(line, " Copyright"); i > 0 {
		line = line[:i]
	}
	return line
}
