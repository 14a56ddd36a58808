// Command analytics measures GET /usage's read over a month of a
// workspace with 10 million calls, on SQLite and (with
// APIWALLET_TEST_DATABASE_URL or -pg) PostgreSQL.
//
// It writes the analytics rollup directly (sqldb.InsertAnalyticsRows):
// one row per hour, service, key, token, user and endpoint, as the
// recorder would leave after 10 million calls, then times the report
// for every grouping (each is two rollup reads: the period's groups and
// the previous period's totals), best of -runs.
//
//	go run ./bench/analytics [-calls 10000000] [-pg postgres://...]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/analytics"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
)

type services struct{}

func (services) Service(name string) (analytics.ServiceInfo, bool) {
	return analytics.ServiceInfo{DisplayName: name, PriceMicros: 2000}, true
}

func main() {
	calls := flag.Int64("calls", 10_000_000, "calls in the month")
	pg := flag.String("pg", os.Getenv("APIWALLET_TEST_DATABASE_URL"), "PostgreSQL URL (empty: SQLite only)")
	runs := flag.Int("runs", 5, "timed runs per grouping (best is reported)")
	flag.Parse()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "analytics-bench")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	backends := []struct{ name, dsn string }{{"sqlite", filepath.Join(dir, "wallet.db")}}
	if *pg != "" {
		dsn, drop, err := freshDatabase(ctx, *pg, dir)
		if err != nil {
			fail(err)
		}
		defer drop()
		backends = append(backends, struct{ name, dsn string }{"postgres", dsn})
	}
	for _, b := range backends {
		if err := run(ctx, b.name, b.dsn, dir, *calls, *runs); err != nil {
			fail(fmt.Errorf("%s: %w", b.name, err))
		}
	}
}

// freshDatabase creates an empty database beside the one admin names,
// so that the benchmark never touches existing data, and returns its URL
// and a function that drops it.
func freshDatabase(ctx context.Context, admin, dir string) (string, func(), error) {
	u, err := url.Parse(admin)
	if err != nil {
		return "", nil, err
	}
	adm, err := sqldb.Open(ctx, admin, dir)
	if err != nil {
		return "", nil, err
	}
	name := fmt.Sprintf("analytics_bench_%d", time.Now().UnixNano())
	if _, err := adm.SQL().ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		adm.Close()
		return "", nil, err
	}
	u.Path = "/" + name
	return u.String(), func() {
		_, _ = adm.SQL().ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		adm.Close()
	}, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "analytics bench:", err)
	os.Exit(1)
}

// The month measured: November 2026, 720 hours.
var (
	monthStart = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	monthEnd   = monthStart.AddDate(0, 1, 0)
)

func run(ctx context.Context, name, dsn, dir string, calls int64, runs int) error {
	db, err := sqldb.Open(ctx, dsn, dir)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		return err
	}
	ws := apiwallet.NewID("ws")
	t0 := time.Now()
	rows, err := generate(ctx, db, ws, calls)
	if err != nil {
		return err
	}
	// A second, smaller workspace shares the table, as it would.
	if _, err := generate(ctx, db, apiwallet.NewID("ws"), calls/10); err != nil {
		return err
	}
	if _, err := db.SQL().ExecContext(ctx, analyzeSQL(name)); err != nil {
		return err
	}
	fmt.Printf("%s: wrote %d rollup rows for %d calls in %v\n", name, rows, calls, time.Since(t0).Round(time.Millisecond))

	svc := &analytics.Service{Store: db, Keys: db, Tokens: db, Members: db, Services: services{},
		Now: func() time.Time { return monthEnd }}
	tokenQuery := analytics.Request{WorkspaceID: ws, From: monthStart, To: monthEnd, GroupBy: analytics.GroupDay, TokenID: "tok_0"}
	cases := []analytics.Request{}
	for _, g := range analytics.Groupings {
		cases = append(cases, analytics.Request{WorkspaceID: ws, From: monthStart, To: monthEnd, GroupBy: g})
	}
	cases = append(cases, tokenQuery)
	paris, _ := time.LoadLocation("Europe/Paris")
	cases = append(cases, analytics.Request{WorkspaceID: ws, From: monthStart, To: monthEnd, GroupBy: analytics.GroupDay, Loc: paris})
	for _, c := range cases {
		var best time.Duration
		var got int64
		for i := range runs {
			start := time.Now()
			rep, err := svc.Report(ctx, c)
			if err != nil {
				return err
			}
			d := time.Since(start)
			if i == 0 || d < best {
				best = d
			}
			got = rep.Totals.Calls
		}
		label := c.GroupBy
		if c.TokenID != "" {
			label += " token_id=" + c.TokenID
		}
		if c.Loc != nil {
			label += " tz=" + c.Loc.String()
		}
		fmt.Printf("%s: group_by=%-28s %8.1f ms  (%d calls, %d rows)\n", name, label, float64(best.Microseconds())/1000, got, rowsOf(ctx, svc, c))
	}
	return nil
}

func rowsOf(ctx context.Context, svc *analytics.Service, c analytics.Request) int {
	rep, err := svc.Report(ctx, c)
	if err != nil {
		return -1
	}
	return len(rep.Rows)
}

func analyzeSQL(name string) string {
	if name == "sqlite" {
		return "ANALYZE"
	}
	return "ANALYZE usage_rollup"
}

// A workspace's shape: 5 services with 2 or 3 keys each (12 keys), 4
// access tokens of 2 users plus the 2 users' own logins, 4 endpoints
// per service.
var shape = []struct {
	service string
	keys    int
	weight  float64
}{{"openai", 3, 0.35}, {"stripe", 2, 0.25}, {"googlemaps", 3, 0.2}, {"openweather", 2, 0.15}, {"anthropic", 2, 0.05}}

type principal struct{ token, user string }

var principals = []principal{{"tok_0", "usr_0"}, {"tok_1", "usr_0"}, {"tok_2", "usr_1"}, {"tok_3", "usr_1"}, {"", "usr_0"}, {"", "usr_1"}}

// generate writes the rollup of calls calls over the month for ws, with
// a daily pattern (busier in the working day), and returns the rows
// written.
func generate(ctx context.Context, db *sqldb.DB, ws string, calls int64) (int, error) {
	rng := rand.New(rand.NewPCG(uint64(calls), 42))
	hours := int(monthEnd.Sub(monthStart) / time.Hour)
	weights := make([]float64, hours)
	var sum float64
	for h := range hours {
		hod := h % 24
		w := 0.3
		if hod >= 8 && hod < 19 {
			w = 1.5
		}
		weights[h] = w
		sum += w
	}
	var (
		batch []sqldb.AnalyticsRow
		total int
	)
	for h := range hours {
		hourCalls := float64(calls) * weights[h] / sum
		at := monthStart.Add(time.Duration(h) * time.Hour).UnixMicro()
		for si, s := range shape {
			for k := range s.keys {
				for pi, p := range principals {
					for e := range 4 {
						// Shares: keys alike, principals and endpoints
						// unequal.
						share := s.weight / float64(s.keys) * float64(pi+1) / 21 * float64(e+1) / 10
						n := int64(hourCalls*share + rng.Float64())
						if n == 0 {
							continue
						}
						r := sqldb.AnalyticsRow{WorkspaceID: ws, Service: s.service, KeyID: fmt.Sprintf("key_%d_%d", si, k),
							TokenID: p.token, UserID: p.user, Endpoint: fmt.Sprintf("POST /v1/%s/%d", s.service, e), Hour: at}
						fill(&r.UsageFigures, n, k == 0, rng)
						batch = append(batch, r)
					}
				}
			}
		}
		if len(batch) >= 5000 || h == hours-1 {
			if err := db.InsertAnalyticsRows(ctx, batch); err != nil {
				return total, err
			}
			total += len(batch)
			batch = batch[:0]
		}
	}
	return total, nil
}

// fill sets figures for n calls: mostly successes, a few errors of each
// class, latencies around 120 ms and overheads around 0.3 ms.
func fill(f *apiwallet.UsageFigures, n int64, free bool, rng *rand.Rand) {
	f.Calls = n
	f.ClientErrors = n * 3 / 100
	f.ServerErrors = n / 100
	f.NetworkErrors = n / 500
	f.RateLimited = f.ClientErrors / 3
	f.Successes = n - f.ClientErrors - f.ServerErrors - f.NetworkErrors
	if free {
		f.SavedMicros = f.Successes * 2000
	} else {
		f.CostMicros = f.Successes * 2000
	}
	f.BytesIn, f.BytesOut = n*300, n*4000
	f.LatencyMicrosSum, f.OverheadMicrosSum = n*120_000, n*300
	lat := slices.Repeat([]int64{0}, apiwallet.LatencyBuckets)
	for range min(n, 64) {
		lat[apiwallet.Bucket(int64(20_000+rng.ExpFloat64()*100_000), apiwallet.LatencyBaseMicros)]++
	}
	scale(lat, n)
	copy(f.Latency[:], lat)
	ovh := slices.Repeat([]int64{0}, apiwallet.LatencyBuckets)
	for range min(n, 64) {
		ovh[apiwallet.Bucket(int64(100+rng.ExpFloat64()*300), apiwallet.OverheadBaseMicros)]++
	}
	scale(ovh, n)
	copy(f.Overhead[:], ovh)
}

// scale stretches a sample histogram to n calls exactly.
func scale(h []int64, n int64) {
	var s int64
	for _, c := range h {
		s += c
	}
	var got int64
	last := 0
	for i, c := range h {
		h[i] = c * n / s
		got += h[i]
		if c > 0 {
			last = i
		}
	}
	h[last] += n - got
}
