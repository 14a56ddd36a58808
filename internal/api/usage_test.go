package api_test

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// usageAnswer is GET /usage's body.
type usageAnswer struct {
	From, To time.Time
	TZ       string
	GroupBy  string
	Totals   usageFigures
	Previous struct {
		From, To time.Time
		Totals   usageFigures
	}
	Rows []struct {
		Group, Label string
		usageFigures
	}
}

type usageFigures struct {
	Calls, Successes int64
	Errors           struct{ Client, Server, Network, Refused int64 }
	LatencyMs        struct{ P50, P95, P99 float64 }
	OverheadMs       struct{ P50, P95, P99 float64 }
	BytesIn          int64
	BytesOut         int64
	CostMicros       int64
	SavingsMicros    int64
	SavingsPercent   float64
}

// comparable is the part of the figures a direct count must reproduce
// exactly (percentiles are bucketed).
func (f usageFigures) exact() [10]int64 {
	return [10]int64{f.Calls, f.Successes, f.Errors.Client, f.Errors.Server, f.Errors.Network, f.Errors.Refused,
		f.BytesIn, f.BytesOut, f.CostMicros, f.SavingsMicros}
}

func (ts *testServer) usage(token, query string, headers ...string) usageAnswer {
	ts.t.Helper()
	r := ts.do("GET", "/usage?"+query, token, nil, headers...).want(ts.t, http.StatusOK)
	var a usageAnswer
	if err := json.Unmarshal(r.Body, &a); err != nil {
		ts.t.Fatalf("GET /usage?%s: %v: %s", query, err, r.Body)
	}
	return a
}

// usageOutcomeSQL classifies a usage_records row as analytics must,
// written independently of apiwallet.UsageOutcome.
const usageOutcomeSQL = `CASE
	WHEN r.status IN (502, 503) AND (r.unreached OR r.key_id = '') THEN 'refused'
	WHEN r.status BETWEEN 400 AND 499 THEN 'client'
	WHEN r.status >= 500 AND r.attempted LIKE '%:network_error' THEN 'network'
	WHEN r.status >= 500 THEN 'server'
	WHEN r.failed OR r.status = 0 THEN 'network'
	ELSE 'success' END`

// directCounts counts usage_records of ws in [from, to) grouped by the
// SQL expression group, with the figures /usage reports.
func (ts *testServer) directCounts(ws, group string, from, to time.Time) map[string][10]int64 {
	ts.t.Helper()
	q := `SELECT ` + group + `, COUNT(*),
		SUM(CASE WHEN o = 'success' THEN 1 ELSE 0 END), SUM(CASE WHEN o = 'client' THEN 1 ELSE 0 END),
		SUM(CASE WHEN o = 'server' THEN 1 ELSE 0 END), SUM(CASE WHEN o = 'network' THEN 1 ELSE 0 END),
		SUM(CASE WHEN o = 'refused' THEN 1 ELSE 0 END),
		SUM(bytes_in), SUM(bytes_out), SUM(cost_micros), SUM(saved_micros)
		FROM (SELECT r.*, ` + usageOutcomeSQL + ` AS o, k.tier AS key_tier FROM usage_records r
			LEFT JOIN api_keys k ON k.id = r.key_id AND k.workspace_id = r.workspace_id) x
		WHERE workspace_id = $1 AND created_at >= $2 AND created_at < $3 GROUP BY ` + group
	rows, err := ts.db.SQL().QueryContext(context.Background(), q, ws, from.UnixMicro(), to.UnixMicro())
	if err != nil {
		ts.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][10]int64{}
	for rows.Next() {
		var (
			g string
			v [10]int64
		)
		if err := rows.Scan(&g, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]); err != nil {
			ts.t.Fatal(err)
		}
		out[g] = v
	}
	if err := rows.Err(); err != nil {
		ts.t.Fatal(err)
	}
	return out
}

// usageWorld is a workspace with keys, tokens and a generated month of
// varied usage records written through InsertUsage.
type usageWorld struct {
	acct      account
	keys      []string // free openai, paid openai, free googlemaps, paid stripe
	tokens    []string // ids
	secrets   []string // token secrets, same order
	records   []apiwallet.Usage
	from, to  time.Time
	latencies []int64
}

func newUsageWorld(t *testing.T, ts *testServer, n int) *usageWorld {
	t.Helper()
	w := &usageWorld{acct: ts.register(fmt.Sprintf("usage-%d@example.com", time.Now().UnixNano()))}
	for i, k := range []struct{ svc, secret, tier string }{
		{"openai", "sk-proj-freeUSAGEfake0000000000000001", "free"},
		{"openai", "sk-proj-paidUSAGEfake0000000000000002", "paid"},
		{"googlemaps", "AIzaUSAGEfake00000000000000000003", "free"},
		{"stripe", "sk_test_USAGEfake000000000000000004", "paid"},
	} {
		r := ts.do("POST", "/keys", w.acct.Token, map[string]any{"key": k.secret, "service": k.svc, "tier": k.tier,
			"label": fmt.Sprintf("key %d", i)}).want(t, http.StatusCreated)
		w.keys = append(w.keys, r.JSON()["id"].(string))
	}
	for _, name := range []string{"billing app", "search app"} {
		r := ts.do("POST", "/tokens", w.acct.Token, map[string]any{"name": name}).want(t, http.StatusCreated)
		w.tokens = append(w.tokens, r.JSON()["id"].(string))
		w.secrets = append(w.secrets, r.JSON()["token"].(string))
	}
	w.from = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	w.to = time.Date(2026, 11, 4, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(13, 7))
	services := map[string]string{w.keys[0]: "openai", w.keys[1]: "openai", w.keys[2]: "googlemaps", w.keys[3]: "stripe",
		"": "openai", apiwallet.FallbackKeyID: "openweather", "key_deleted": "stripe"}
	keyIDs := append(slices.Clone(w.keys), "", apiwallet.FallbackKeyID, "key_deleted")
	endpoints := []string{"POST /v1/chat/completions", "GET /v1/models", "GET /maps/api/geocode/json", "POST /v1/charges"}
	statuses := []int{200, 200, 200, 201, 200, 404, 429, 500, 502, 503, 0}
	for i := range n {
		key := keyIDs[rng.IntN(len(keyIDs))]
		u := apiwallet.Usage{ID: apiwallet.NewID("use"), WorkspaceID: w.acct.WorkspaceID, Service: services[key], KeyID: key,
			UserID: w.acct.ID, Method: "POST", Endpoint: endpoints[rng.IntN(len(endpoints))], Attempts: 1,
			Status: statuses[rng.IntN(len(statuses))], Strategy: "cost",
			LatencyMicros: int64(200 + rng.ExpFloat64()*80_000), OverheadMicros: int64(10 + rng.IntN(3000)),
			BytesIn: int64(rng.IntN(5000)), BytesOut: int64(rng.IntN(50_000)),
			// Spread over the three days and a little before, to fill the
			// previous period too.
			CreatedAt: w.from.Add(-6 * time.Hour).Add(time.Duration(rng.Int64N(int64(78 * time.Hour)))),
		}
		if t := rng.IntN(3); t < 2 {
			u.TokenID = w.tokens[t]
		}
		u.Attempted = fmt.Sprintf("%s:%d", key, u.Status)
		if u.Status == 502 && rng.IntN(2) == 0 {
			u.Attempted = key + ":network_error"
		}
		u.Failed = u.Status >= 500 || u.Status == 429 || u.Status == 0 || i%97 == 0
		u.Unreached = u.Status == 502 && key == "" // nothing reached
		if !u.Failed && key != "" {
			if key == w.keys[0] || key == w.keys[2] {
				u.SavedMicros = 2000
			} else {
				u.CostMicros = 2000
			}
		}
		w.records = append(w.records, u)
		if !u.CreatedAt.Before(w.from) && u.CreatedAt.Before(w.to) {
			w.latencies = append(w.latencies, u.LatencyMicros)
		}
	}
	// Through the real store, in batches as the recorder writes them.
	for start := 0; start < len(w.records); start += 500 {
		if err := ts.db.InsertUsage(context.Background(), w.records[start:min(start+500, len(w.records))]); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// /usage figures equal a direct count over the raw usage records, for
// every grouping, on both backends.
func TestUsageEqualsRawRecords(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		w := newUsageWorld(t, ts, 3000)
		period := "from=2026-11-01T00:00:00Z&to=2026-11-04T00:00:00Z"
		hourExpr := `CAST(created_at - created_at % 3600000000 AS TEXT)`
		dayExpr := func(offsetHours int) string {
			return fmt.Sprintf(`CAST((created_at + %d) - (created_at + %d) %% 86400000000 AS TEXT)`,
				int64(offsetHours)*3600e6, int64(offsetHours)*3600e6)
		}
		tierExpr := `COALESCE(key_tier, CASE key_id WHEN '' THEN 'none' WHEN 'fallback' THEN 'fallback' ELSE 'deleted' END)`
		cases := []struct {
			groupBy, tz, expr string
			// group turns an answer's group into the direct count's.
			group func(string) string
		}{
			{"service", "", "service", nil},
			{"key", "", "key_id", nil},
			{"tier", "", tierExpr, nil},
			{"token", "", "token_id", nil},
			{"member", "", "user_id", nil},
			{"endpoint", "", "endpoint", nil},
			{"hour", "", hourExpr, rfcToMicros(0)},
			{"day", "", dayExpr(0), rfcToMicros(0)},
			// Tokyo is UTC+9 all year: its days start at 15:00 UTC.
			{"day", "Asia/Tokyo", dayExpr(9), rfcToMicros(9)},
		}
		for _, c := range cases {
			q := period + "&group_by=" + c.groupBy
			from, to := w.from, w.to
			if c.tz != "" {
				q = "from=2026-11-01&to=2026-11-03&tz=" + c.tz + "&group_by=" + c.groupBy
				from, to = w.from.Add(-9*time.Hour), w.to.Add(-9*time.Hour)
			}
			a := ts.usage(w.acct.Token, q)
			want := ts.directCounts(w.acct.WorkspaceID, c.expr, from, to)
			got := map[string][10]int64{}
			var total usageFigures
			for _, r := range a.Rows {
				g := r.Group
				if c.group != nil {
					g = c.group(g)
				}
				if r.Calls > 0 {
					got[g] = r.exact()
				}
				total.Calls += r.Calls
			}
			if len(got) != len(want) {
				t.Errorf("group_by=%s tz=%s: %d groups, want %d:\n got %v\nwant %v", c.groupBy, c.tz, len(got), len(want), got, want)
			}
			for g, v := range want {
				if got[g] != v {
					t.Errorf("group_by=%s tz=%s group %q = %v, want %v", c.groupBy, c.tz, g, got[g], v)
				}
			}
			if total.Calls != a.Totals.Calls {
				t.Errorf("group_by=%s: rows sum to %d calls, totals say %d", c.groupBy, total.Calls, a.Totals.Calls)
			}
			if c.groupBy == "hour" && len(a.Rows) != 72 {
				t.Errorf("group_by=hour: %d rows, want 72 (every hour, empty ones too)", len(a.Rows))
			}
			if c.groupBy == "day" && len(a.Rows) != 3 {
				t.Errorf("group_by=day tz=%s: %d rows, want 3", c.tz, len(a.Rows))
			}
		}

		// The previous period is the 3 days before, counted the same way.
		a := ts.usage(w.acct.Token, period)
		prev := ts.directCounts(w.acct.WorkspaceID, "SUBSTR(workspace_id, 1, 0)", w.from.Add(-72*time.Hour), w.from)[""]
		if a.Previous.Totals.exact() != prev || prev[0] == 0 {
			t.Errorf("previous = %v, want %v", a.Previous.Totals.exact(), prev)
		}
		// Filters narrow the same way.
		f := ts.usage(w.acct.Token, period+"&service=openai&key_id="+w.keys[1]+"&token_id="+w.tokens[0])
		wantF := ts.directCounts(w.acct.WorkspaceID, "CASE WHEN service = 'openai' AND key_id = '"+w.keys[1]+
			"' AND token_id = '"+w.tokens[0]+"' THEN 'y' ELSE 'n' END", w.from, w.to)["y"]
		if f.Totals.exact() != wantF || wantF[0] == 0 {
			t.Errorf("filtered totals = %v, want %v", f.Totals.exact(), wantF)
		}

		// Percentiles are within the histogram's bound (a factor 1.26) of
		// the exact ones.
		slices.Sort(w.latencies)
		for _, p := range []struct {
			q   float64
			got float64
		}{{0.5, a.Totals.LatencyMs.P50}, {0.95, a.Totals.LatencyMs.P95}, {0.99, a.Totals.LatencyMs.P99}} {
			exact := float64(w.latencies[int(math.Ceil(p.q*float64(len(w.latencies))))-1]) / 1000
			if ratio := p.got / exact; ratio < 1/1.27 || ratio > 1.27 {
				t.Errorf("p%.0f = %.3f ms, exact %.3f ms: outside the bucket bound", p.q*100, p.got, exact)
			}
		}

		// CSV has the same rows.
		r := ts.do("GET", "/usage?"+period+"&group_by=key", w.acct.Token, nil, "Accept", "text/csv").want(t, http.StatusOK)
		recs, err := csv.NewReader(strings.NewReader(string(r.Body))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		byKey := ts.usage(w.acct.Token, period+"&group_by=key")
		if len(recs) != len(byKey.Rows)+1 || recs[0][0] != "group" || recs[0][2] != "calls" {
			t.Fatalf("CSV has %d lines for %d rows: %v", len(recs), len(byKey.Rows), recs[0])
		}
		for i, row := range byKey.Rows {
			if recs[i+1][0] != row.Group || recs[i+1][2] != fmt.Sprint(row.Calls) {
				t.Errorf("CSV line %d = %v, want group %s calls %d", i+1, recs[i+1], row.Group, row.Calls)
			}
		}

		// Bad input is a problem naming the field.
		for _, q := range []string{"group_by=week", "tz=Mars/Base", "from=yesterday", "from=2026-11-05&to=2026-11-01",
			"from=2025-01-01&to=2026-11-01", "group_by=hour&from=2026-01-01&to=2026-03-01"} {
			ts.do("GET", "/usage?"+q, w.acct.Token, nil).want(t, http.StatusBadRequest)
		}
	})
}

// rfcToMicros turns a bucket start (RFC 3339) into the direct count's
// group: microseconds since the epoch, shifted by the zone's offset.
func rfcToMicros(offsetHours int) func(string) string {
	return func(s string) string {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return "bad " + s
		}
		return fmt.Sprint(t.UnixMicro() + int64(offsetHours)*3600e6)
	}
}

// A wallet access token reads the usage of its own calls and nothing
// else: not another token's, not the user's own dashboard calls.
func TestUsageAccessTokenSeesOwnCalls(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		w := newUsageWorld(t, ts, 600)
		period := "from=2026-11-01T00:00:00Z&to=2026-11-04T00:00:00Z"
		own := ts.directCounts(w.acct.WorkspaceID, "token_id", w.from, w.to)
		for i, secret := range w.secrets {
			a := ts.usage(secret, period+"&group_by=token")
			if a.Totals.exact() != own[w.tokens[i]] || own[w.tokens[i]][0] == 0 {
				t.Errorf("token %d sees %v, want its own %v", i, a.Totals.exact(), own[w.tokens[i]])
			}
			if len(a.Rows) != 1 || a.Rows[0].Group != w.tokens[i] {
				t.Errorf("token %d sees groups %+v, want only itself", i, a.Rows)
			}
			// Asking for another token's calls is refused; a key filter
			// still narrows only its own calls.
			ts.do("GET", "/usage?"+period+"&token_id="+w.tokens[1-i], secret, nil).want(t, http.StatusForbidden)
			k := ts.usage(secret, period+"&key_id="+w.keys[1])
			mine := ts.directCounts(w.acct.WorkspaceID, "CASE WHEN key_id = '"+w.keys[1]+"' AND token_id = '"+
				w.tokens[i]+"' THEN 'y' ELSE 'n' END", w.from, w.to)["y"]
			if k.Totals.exact() != mine {
				t.Errorf("token %d with key_id sees %v, want %v", i, k.Totals.exact(), mine)
			}
			// Management routes stay closed to it.
			ts.do("GET", "/usage/keys", secret, nil).want(t, http.StatusForbidden)
			ts.do("GET", "/usage/recommendations", secret, nil).want(t, http.StatusForbidden)
		}
		all := ts.usage(w.acct.Token, period)
		if all.Totals.Calls <= own[w.tokens[0]][0]+own[w.tokens[1]][0] {
			t.Errorf("the user's view (%d calls) should include the login calls too", all.Totals.Calls)
		}
	})
}

// Another workspace's usage, key health and recommendations are never
// visible: naming a workspace the caller is not in is a 404.
func TestUsageOtherWorkspace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		w := newUsageWorld(t, ts, 200)
		mallory := ts.register(fmt.Sprintf("mallory-%d@example.com", time.Now().UnixNano()))
		for _, path := range []string{"/usage?from=2026-11-01&to=2026-11-03", "/usage?group_by=key", "/usage/keys",
			"/usage/recommendations", "/usage/live"} {
			r := ts.do("GET", path, mallory.Token, nil, "X-Workspace-Id", w.acct.WorkspaceID).want(t, http.StatusNotFound)
			for _, id := range append(slices.Clone(w.keys), w.tokens...) {
				if strings.Contains(string(r.Body), id) {
					t.Errorf("%s shows %s of another workspace", path, id)
				}
			}
		}
		// Her own workspace has nothing of his.
		a := ts.usage(mallory.Token, "from=2026-11-01&to=2026-11-03")
		if a.Totals.Calls != 0 || len(a.Rows) != 0 {
			t.Errorf("mallory sees %d calls in her own workspace", a.Totals.Calls)
		}
		h := ts.do("GET", "/usage/keys", mallory.Token, nil).want(t, http.StatusOK).JSON()
		if keys := h["keys"].([]any); len(keys) != 0 {
			t.Errorf("mallory's key health lists %d keys", len(keys))
		}
	})
}

// The scripted scenario: a free openai key with a quota of 7 and a paid
// one, and 12 calls through the real proxy to a local upstream. The free
// key serves the first 7, the paid key the other 5; openai costs $0.002
// (2,000 µ$) a call in the default catalog, so by hand:
//
//	cost    = 5 × 2,000 = 10,000 µ$ ($0.01)
//	savings = 7 × 2,000 = 14,000 µ$ ($0.014)
//	percent = 14,000 / (10,000 + 14,000) = 58.33 %
//
// The free key's quota is used up within the first minutes of the month
// at this pace, so the recommendation is quota_runs_out with the cost of
// the calls the rest of the month would put on the paid key.
func TestUsageSavingsScenario(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[]}`)
	})
	ts := proxySQLite(t, "OPENAI_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	paid := pw.addKey("openai", "sk-proj-paidSCENARIOfake0000000000000p", "paid", -1)
	free := pw.addKey("openai", "sk-proj-freeSCENARIOfake0000000000000f", "free", 7)
	_, tok := pw.token("openai")
	for range 12 {
		pw.call("GET", "/proxy/openai/v1/models", tok, nil).want(t, http.StatusOK)
	}
	pw.waitUsage(12)

	a := ts.usage(pw.acct.Token, "group_by=tier")
	if a.Totals.Calls != 12 || a.Totals.CostMicros != 10_000 || a.Totals.SavingsMicros != 14_000 {
		t.Fatalf("totals: %d calls, cost %d, savings %d; want 12, 10000, 14000", a.Totals.Calls, a.Totals.CostMicros, a.Totals.SavingsMicros)
	}
	if math.Abs(a.Totals.SavingsPercent-58.33) > 0.01 {
		t.Errorf("savings percent = %v, want 58.33", a.Totals.SavingsPercent)
	}
	tiers := map[string]int64{}
	for _, r := range a.Rows {
		tiers[r.Group] = r.Calls
	}
	if tiers["free"] != 7 || tiers["paid"] != 5 {
		t.Errorf("by tier: %v, want free 7 and paid 5", tiers)
	}

	h := ts.do("GET", "/usage/keys", pw.acct.Token, nil).want(t, http.StatusOK).JSON()
	for _, k := range h["keys"].([]any) {
		k := k.(map[string]any)
		switch k["id"] {
		case free:
			if k["freeQuota"] != 7.0 || k["freeUsed"] != 7.0 || k["freeLeft"] != 0.0 || k["calls"] != 7.0 {
				t.Errorf("free key health: %v", k)
			}
		case paid:
			if k["calls"] != 5.0 || k["errorRate"] != 0.0 {
				t.Errorf("paid key health: %v", k)
			}
		}
	}
	if s := h["summary"].(map[string]any); s["registered"] != 2.0 || s["active"] != 2.0 || s["successRate"] != 1.0 {
		t.Errorf("summary: %v", s)
	}

	recs := ts.do("GET", "/usage/recommendations", pw.acct.Token, nil).want(t, http.StatusOK).JSON()["recommendations"].([]any)
	var found bool
	for _, r := range recs {
		r := r.(map[string]any)
		if r["kind"] == "quota_runs_out" && r["keyId"] == free {
			found = true
			if r["savingsMicros"].(float64) <= 0 || !strings.Contains(r["detail"].(string), "$") {
				t.Errorf("the recommendation does not name the money: %v", r)
			}
		}
	}
	if !found {
		t.Errorf("no quota_runs_out recommendation for the free key: %v", recs)
	}
}

// With the paid key first in priority order and premium routing off,
// every call goes to the paid key while the free key's 7 calls go
// unused: raising the free key would have saved 7 × $0.002 = $0.014.
func TestUsageRecommendsFreeKeyFirst(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[]}`)
	})
	ts := proxySQLite(t, "OPENAI_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	paid := pw.addKey("openai", "sk-proj-paidPRIORITYfake0000000000000p", "paid", -1)
	free := pw.addKey("openai", "sk-proj-freePRIORITYfake0000000000000f", "free", 7)
	ts.do("PATCH", "/keys/"+free, pw.acct.Token, map[string]any{"priority": 10}).want(t, http.StatusOK)
	ts.do("PATCH", "/billing/settings", pw.acct.Token, map[string]any{"premiumRouting": false}).want(t, http.StatusOK)
	_, tok := pw.token("openai")
	for range 12 {
		r := pw.call("GET", "/proxy/openai/v1/models", tok, nil).want(t, http.StatusOK)
		if r.Header.Get("X-Wallet-Key-Id") != paid {
			t.Fatalf("call went to %s, want the paid key first", r.Header.Get("X-Wallet-Key-Id"))
		}
	}
	pw.waitUsage(12)
	recs := ts.do("GET", "/usage/recommendations", pw.acct.Token, nil).want(t, http.StatusOK).JSON()["recommendations"].([]any)
	for _, r := range recs {
		r := r.(map[string]any)
		if r["kind"] == "raise_free_priority" {
			if r["savingsMicros"] != 14_000.0 || !strings.Contains(r["detail"].(string), "$0.01") || r["keyId"] != free {
				t.Errorf("recommendation: %v", r)
			}
			return
		}
	}
	t.Errorf("no raise_free_priority recommendation: %v", recs)
}

// The reporting time zone is a workspace setting: it is validated,
// shown in GET /billing/plan, and used when a request names none.
func TestUsageTimezoneSetting(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		a := ts.register(fmt.Sprintf("tz-%d@example.com", time.Now().UnixNano()))
		ts.do("PATCH", "/billing/settings", a.Token, map[string]any{"timezone": "Mars/Olympus"}).want(t, http.StatusBadRequest)
		ts.do("PATCH", "/billing/settings", a.Token, map[string]any{"timezone": "../../etc/passwd"}).want(t, http.StatusBadRequest)
		ts.do("PATCH", "/billing/settings", a.Token, map[string]any{"timezone": "Europe/Paris"}).want(t, http.StatusOK)
		if tz := ts.do("GET", "/billing/plan", a.Token, nil).want(t, http.StatusOK).JSON()["timezone"]; tz != "Europe/Paris" {
			t.Errorf("GET /billing/plan timezone = %v", tz)
		}
		u := ts.usage(a.Token, "from=2026-11-01&to=2026-11-02&group_by=day")
		if u.TZ != "Europe/Paris" || len(u.Rows) != 2 || u.Rows[0].Group != "2026-11-01T00:00:00+01:00" {
			t.Errorf("usage in the workspace's zone: tz %s rows %+v", u.TZ, u.Rows)
		}
	})
}

// GET /plans is public and shows an administrator's price change at once.
func TestPublicPlans(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		r := ts.do("GET", "/plans", "", nil).want(t, http.StatusOK).JSON()
		plans := r["plans"].([]any)
		if len(plans) < 3 {
			t.Fatalf("plans: %v", r)
		}
		admin := ts.makeAdmin(ts.register(fmt.Sprintf("admin-%d@example.com", time.Now().UnixNano())))
		ts.do("PUT", "/admin/plans/professional", admin.Token, map[string]any{"priceMicros": 31_000_000}).want(t, http.StatusOK)
		for _, p := range ts.do("GET", "/plans", "", nil).want(t, http.StatusOK).JSON()["plans"].([]any) {
			p := p.(map[string]any)
			if p["id"] == "professional" && p["priceMicros"] != 31_000_000.0 {
				t.Errorf("professional after the change: %v", p)
			}
		}
	})
}

// The business report adds key utilisation, success rate and average
// response time across every workspace this month, for ADMINs only.
func TestBusinessReportUsageFigures(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ts *testServer) {
		w := newUsageWorld(t, ts, 10)
		now := time.Now().UTC()
		var batch []apiwallet.Usage
		for i, st := range []int{200, 200, 200, 500} {
			batch = append(batch, apiwallet.Usage{ID: apiwallet.NewID("use"), WorkspaceID: w.acct.WorkspaceID, Service: "openai",
				KeyID: w.keys[1], Status: st, Failed: st >= 500, Attempted: w.keys[1] + ":" + fmt.Sprint(st),
				LatencyMicros: int64(100_000 * (i + 1)), CreatedAt: now})
		}
		if err := ts.db.InsertUsage(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		ts.do("GET", "/admin/reports/business", w.acct.Token, nil).want(t, http.StatusForbidden)
		admin := ts.makeAdmin(ts.register(fmt.Sprintf("ops-%d@example.com", time.Now().UnixNano())))
		r := ts.do("GET", "/admin/reports/business", admin.Token, nil).want(t, http.StatusOK).JSON()
		// One of the four stored keys served calls this month; 3 of 4
		// calls succeeded, averaging (100+200+300+400)/4 = 250 ms.
		if r["keyUtilisation"] != 0.25 || r["successRate"] != 0.75 || r["avgResponseMs"] != 250.0 {
			t.Errorf("report: utilisation %v, success %v, avg %v", r["keyUtilisation"], r["successRate"], r["avgResponseMs"])
		}
	})
}

// GET /usage/live streams an event for the calls recorded after it
// started, with their cost and savings by service.
func TestUsageLive(t *testing.T) {
	ts := newTestServer(t, filepath.Join(t.TempDir(), "wallet.db"))
	a := ts.register(fmt.Sprintf("live-%d@example.com", time.Now().UnixNano()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/usage/live", nil)
	req.Header.Set("Authorization", "Bearer "+a.Token)
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	rd := bufio.NewReader(res.Body)
	if line, _ := rd.ReadString('\n'); !strings.HasPrefix(line, ":") {
		t.Fatalf("first line %q", line)
	}
	batch := []apiwallet.Usage{
		{ID: apiwallet.NewID("use"), WorkspaceID: a.WorkspaceID, Service: "openai", KeyID: "key_x", Status: 200, CostMicros: 2000},
		{ID: apiwallet.NewID("use"), WorkspaceID: a.WorkspaceID, Service: "stripe", KeyID: "key_y", Status: 200, SavedMicros: 500},
		{ID: apiwallet.NewID("use"), WorkspaceID: a.WorkspaceID, Service: "openai", KeyID: "key_x", Status: 500, Failed: true},
	}
	if err := ts.db.InsertUsage(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended: %v", err)
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var ev struct {
			Calls, Errors, CostMicros, SavingsMicros int64
			ByService                                map[string]int64
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Calls != 3 || ev.Errors != 1 || ev.CostMicros != 2000 || ev.SavingsMicros != 500 ||
			ev.ByService["openai"] != 2 || ev.ByService["stripe"] != 1 {
			t.Errorf("event %s", data)
		}
		return
	}
}
