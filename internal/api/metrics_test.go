package api_test

// The wallet's metrics (issue 14): they move as real proxied calls go
// through, and their labels never carry an id, a token or a path.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrapeMetrics reads the wallet's /metrics.
func (ts *testServer) scrapeMetrics() map[string]*dto.MetricFamily {
	ts.t.Helper()
	r := ts.do("GET", "/metrics", "", nil).want(ts.t, 200)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.Body))
	if err != nil {
		ts.t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// metricMatching returns the series of family name with the given labels
// (name, value pairs; others may be there too).
func metricMatching(fams map[string]*dto.MetricFamily, name string, labels ...string) []*dto.Metric {
	var out []*dto.Metric
next:
	for _, m := range fams[name].GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// metricSeries is the one series of name with the given labels, or nil.
func metricSeries(fams map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	if ms := metricMatching(fams, name, labels...); len(ms) == 1 {
		return ms[0]
	}
	return nil
}

// metricValue sums the counters, gauges or histogram counts of the series of
// name with the given labels; -1 when there are none.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	ms := metricMatching(fams, name, labels...)
	if len(ms) == 0 {
		return -1
	}
	var v float64
	for _, m := range ms {
		switch {
		case m.Counter != nil:
			v += m.GetCounter().GetValue()
		case m.Gauge != nil:
			v += m.GetGauge().GetValue()
		case m.Histogram != nil:
			v += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return v
}

func TestMetricsMoveWithProxiedCalls(t *testing.T) {
	const (
		freeKey   = "sk-proj-metricsFREEfake0000000000000a"
		paidKey   = "sk-proj-metricsPAIDfake0000000000000b"
		stripeKey = "sk_test_metricsSTRIPEfake000000000000s"
		antKey    = "sk-ant-metricsANTHROPICfake000000000000"
	)
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Header.Get("Authorization") == "Bearer "+freeKey:
			w.Header().Set("Retry-After", "300")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"error":{"message":"Rate limit reached"}}`)
		case r.Header.Get("Authorization") == "Bearer "+stripeKey:
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"error":{"message":"boom"}}`)
		default:
			_, _ = io.WriteString(w, `{"object":"list","data":[]}`)
		}
	})
	// Anthropic points at a port nothing listens on: a connect error.
	dead := newFakeUpstream(t, func(http.ResponseWriter, *http.Request) {})
	deadURL := dead.URL
	dead.Close()
	ts := proxySQLite(t, "OPENAI_BASE_URL="+up.URL, "STRIPE_BASE_URL="+up.URL, "ANTHROPIC_BASE_URL="+deadURL,
		"DEFAULT_FREE_QUOTA=6")
	pw := newProxyWorld(t, ts)

	// Before any traffic, the series dashboards and alerts read are there.
	before := ts.scrapeMetrics()
	for _, want := range [][]string{
		{"apiwallet_proxy_calls_total", "service", "openai", "tier", "paid", "class", "2xx"},
		{"apiwallet_proxy_upstream_errors_total", "service", "stripe", "class", "5xx"},
		{"apiwallet_proxy_fallbacks_total", "service", "openai"},
		{"apiwallet_proxy_refusals_total", "limit", "monthly_quota"},
		{"apiwallet_keys_unavailable", "service", "openai", "reason", "cooldown"},
		{"apiwallet_quota_used_ratio", "plan", "free"},
		{"apiwallet_audit_write_failures_total"},
		{"apiwallet_usage_queue_length"},
	} {
		if v := metricValue(before, want[0], want[1:]...); v != 0 {
			t.Errorf("%s%v = %v before any call, want a zero series", want[0], want[1:], v)
		}
	}
	if v := metricValue(before, "apiwallet_database_up"); v != 1 {
		t.Fatalf("database_up = %v, want 1", v)
	}

	freeID := pw.addKey("openai", freeKey, "free", -1)
	paidID := pw.addKey("openai", paidKey, "paid", -1)
	stripeID := pw.addKey("stripe", stripeKey, "paid", -1)
	antID := pw.addKey("anthropic", antKey, "paid", -1)
	tokID, tok := pw.token("openai", "stripe", "anthropic")
	chat := map[string]any{"model": "gpt-4o-mini", "messages": []map[string]string{{"role": "user", "content": "hi"}}}

	// 1: the free key answers 429, the paid one serves: a fallback.
	pw.call("POST", "/proxy/openai/v1/chat/completions", tok, chat).want(t, 200)
	// 2: the free key is cooling down; the paid one serves at once.
	pw.call("GET", "/proxy/openai/v1/models/gpt-"+freeID, tok, nil).want(t, 200)
	// 3: Stripe's upstream fails.
	if r := pw.call("GET", "/proxy/stripe/v1/balance", tok, nil); r.Status != 500 {
		t.Fatalf("stripe: status %d", r.Status)
	}
	// 4: Anthropic cannot be reached (refunded: it never left).
	pw.call("POST", "/proxy/anthropic/v1/messages", tok, map[string]any{"model": "claude"}).want(t, 502)

	m := ts.scrapeMetrics()
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"apiwallet_proxy_calls_total", []string{"service", "openai", "tier", "paid", "class", "2xx"}, 2},
		{"apiwallet_proxy_calls_total", []string{"service", "openai", "tier", "free", "class", "2xx"}, 0},
		{"apiwallet_proxy_calls_total", []string{"service", "stripe", "tier", "paid", "class", "5xx"}, 1},
		{"apiwallet_proxy_calls_total", []string{"service", "anthropic", "tier", "none", "class", "5xx"}, 1},
		{"apiwallet_proxy_upstream_errors_total", []string{"service", "openai", "class", "429"}, 1},
		{"apiwallet_proxy_upstream_errors_total", []string{"service", "stripe", "class", "5xx"}, 1},
		{"apiwallet_proxy_upstream_errors_total", []string{"service", "anthropic", "class", "connect"}, 1},
		{"apiwallet_proxy_upstream_errors_total", []string{"service", "openai", "class", "5xx"}, 0},
		{"apiwallet_proxy_fallbacks_total", []string{"service", "openai"}, 1},
		{"apiwallet_proxy_fallbacks_total", []string{"service", "stripe"}, 0},
		{"apiwallet_proxy_attempts_per_call", []string{"strategy", "cost"}, 4},
		{"apiwallet_proxy_upstream_duration_seconds", []string{"service", "openai"}, 3},
		{"apiwallet_proxy_upstream_duration_seconds", []string{"service", "stripe"}, 1},
		{"apiwallet_proxy_overhead_seconds", nil, 4},
		{"apiwallet_keys_unavailable", []string{"service", "openai", "reason", "cooldown"}, 1},
		{"apiwallet_keys_unavailable", []string{"service", "openai", "reason", "quarantined"}, 0},
		{"apiwallet_database_up", nil, 1},
	}
	for _, c := range checks {
		if got := metricValue(m, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if s := metricSeries(m, "apiwallet_proxy_attempts_per_call", "strategy", "cost"); s.GetHistogram().GetSampleSum() != 5 {
		t.Errorf("attempts sum = %v, want 5 (2+1+1+1)", s.GetHistogram().GetSampleSum())
	}
	if h, mi := metricValue(m, "apiwallet_keyset_cache_hits_total"), metricValue(m, "apiwallet_keyset_cache_misses_total"); h < 1 || mi < 3 {
		t.Errorf("key-set cache hits %v, misses %v: want the second openai call a hit and each service's first a miss", h, mi)
	}
	if _, ok := m["apiwallet_redis_up"]; ok {
		t.Error("redis_up exported without REDIS_URL")
	}

	// Limits: a token allowed one call a minute is refused the second.
	r := ts.do("POST", "/tokens", pw.acct.Token, map[string]any{"name": "slow", "services": []string{"openai"},
		"rate_limit_per_minute": 1}).want(t, 201)
	slowID, slow := r.JSON()["id"].(string), r.JSON()["token"].(string)
	pw.tokens = append(pw.tokens, slow)
	pw.call("GET", "/proxy/openai/v1/models", slow, nil).want(t, 200)
	pw.call("GET", "/proxy/openai/v1/models", slow, nil).want(t, 429)
	// The free plan's 6 calls: 3 counted so far (the unreached one was
	// refunded) and 1 by the slow token; two more, then a refusal.
	for i := range 2 {
		pw.call("GET", fmt.Sprintf("/proxy/openai/v1/files/file-%d", i), tok, nil).want(t, 200)
	}
	pw.call("GET", "/proxy/openai/v1/models", tok, nil).want(t, 429)

	if err := ts.recorder.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	m = ts.scrapeMetrics()
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"apiwallet_proxy_refusals_total", []string{"limit", "token_per_minute"}, 1},
		{"apiwallet_proxy_refusals_total", []string{"limit", "workspace_per_minute"}, 0},
		{"apiwallet_proxy_refusals_total", []string{"limit", "monthly_quota"}, 1},
		{"apiwallet_quota_used_ratio", []string{"plan", "free"}, 1},
		{"apiwallet_proxy_calls_total", []string{"service", "openai", "tier", "paid", "class", "2xx"}, 5},
		{"apiwallet_usage_queue_length", nil, 0},
	} {
		if got := metricValue(m, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if metricValue(m, "apiwallet_usage_flush_duration_seconds") < 1 {
		t.Error("no usage flush observed")
	}

	// No label value names a key, a token, the workspace, the user or a
	// path: the only label with slashes is the HTTP route pattern.
	ids := []string{freeID, paidID, stripeID, antID, tokID, slowID, pw.acct.WorkspaceID, pw.acct.ID, tok, slow,
		freeKey, paidKey, stripeKey, antKey}
	for name, f := range m {
		for _, s := range f.GetMetric() {
			for _, lp := range s.GetLabel() {
				v := lp.GetValue()
				for _, id := range ids {
					if strings.Contains(v, id) {
						t.Errorf("%s{%s=%q} names an id or secret", name, lp.GetName(), v)
					}
				}
				if strings.Contains(v, "/") && (lp.GetName() != "route" || strings.Contains(v, "/v1/")) {
					t.Errorf("%s{%s=%q} carries a path", name, lp.GetName(), v)
				}
			}
		}
	}
}

// However many keys, tokens, workspaces and paths the calls carry, the
// series stay the same set: a second round of calls with new ones adds
// no series, and no label value holds any of them.
func TestMetricsLabelsBounded(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(r.URL.Path, "/gone-") {
			w.WriteHeader(http.StatusNotFound)
		}
		_, _ = io.WriteString(w, `{"object":"list"}`)
	})
	ts := proxySQLite(t, "OPENAI_BASE_URL="+up.URL, "STRIPE_BASE_URL="+up.URL)
	var ids []string
	round := func(n int) {
		pw := newProxyWorld(t, ts)
		ids = append(ids, pw.acct.ID, pw.acct.WorkspaceID)
		for i := range 4 {
			ids = append(ids, pw.addKey("openai", fmt.Sprintf("sk-proj-bound%02d%02dfake000000000000000000", n, i), []string{"free", "paid"}[i%2], -1))
		}
		ids = append(ids, pw.addKey("stripe", fmt.Sprintf("sk_test_bound%02dfake00000000000000000000", n), "paid", -1))
		for i := range 3 {
			id, tok := pw.token("openai")
			sid, stok := pw.token("stripe")
			ids = append(ids, id, tok, sid, stok)
			p := fmt.Sprintf("/v1/files/file-%d-%d", n, i)
			pw.call("GET", "/proxy/openai"+p, tok, nil).want(t, 200)
			pw.call("GET", "/proxy/openai/v1/gone-"+tok[len(tok)-8:], tok, nil)
			// At the root: the token is scoped to stripe alone.
			pw.call("GET", fmt.Sprintf("/v1/customers/cus_%d%d", n, i), stok, nil).want(t, 200)
			ids = append(ids, p, fmt.Sprintf("cus_%d%d", n, i))
		}
		// Refusals and misses carry nothing either.
		pw.call("GET", "/proxy/no-such-service-"+pw.acct.ID+"/x", pw.acct.Token, nil).want(t, 404)
		pw.call("GET", "/keys/"+ids[len(ids)-1], pw.acct.Token, nil)
		pw.call("GET", "/proxy/openai/v1/models", "awk_not-a-token-"+pw.acct.ID, nil).want(t, 401)
	}
	count := func(fams map[string]*dto.MetricFamily) map[string]int {
		out := map[string]int{}
		for name, f := range fams {
			if strings.HasPrefix(name, "apiwallet_") {
				out[name] = len(f.GetMetric())
			}
		}
		return out
	}
	round(1)
	ts.scrapeMetrics() // so that /metrics itself has its series
	first := count(ts.scrapeMetrics())
	round(2)
	m := ts.scrapeMetrics()
	if second := count(m); fmt.Sprint(first) != fmt.Sprint(second) {
		t.Errorf("new keys, tokens and paths added series:\n first  %v\n second %v", first, second)
	}
	if metricValue(m, "apiwallet_proxy_calls_total", "service", "openai", "class", "4xx") < 6 {
		t.Errorf("the upstream's 404s were not counted: %v", metricValue(m, "apiwallet_proxy_calls_total", "service", "openai", "class", "4xx"))
	}
	for name, f := range m {
		for _, s := range f.GetMetric() {
			for _, lp := range s.GetLabel() {
				v := lp.GetValue()
				for _, id := range ids {
					if strings.Contains(v, id) {
						t.Errorf("%s{%s=%q} holds %q", name, lp.GetName(), v, id)
					}
				}
				if strings.Contains(v, "no-such-service") || strings.Contains(v, "awk_") || strings.Contains(v, "cus_") {
					t.Errorf("%s{%s=%q} holds what a client sent", name, lp.GetName(), v)
				}
			}
		}
	}
}
