package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// analyticsGroup is the value of dim for u.
func analyticsGroup(u *apiwallet.Usage, dim string) string {
	switch dim {
	case apiwallet.DimService:
		return u.Service
	case apiwallet.DimKey:
		return u.KeyID
	case apiwallet.DimToken:
		return u.TokenID
	case apiwallet.DimUser:
		return u.UserID
	case apiwallet.DimEndpoint:
		return u.Endpoint
	case apiwallet.DimHour:
		return u.CreatedAt.Truncate(time.Hour).Format(time.RFC3339)
	}
	return ""
}

// wantGroups sums batch as UsageGroups must, for the records in the
// hours [from truncated, to) that pass q's filters.
func wantGroups(batch []apiwallet.Usage, q apiwallet.UsageQuery) map[string]apiwallet.UsageFigures {
	out := map[string]apiwallet.UsageFigures{}
	for i := range batch {
		u := &batch[i]
		h := u.CreatedAt.Truncate(time.Hour)
		if u.WorkspaceID != q.WorkspaceID || h.Before(q.From.Truncate(time.Hour)) || !h.Before(q.To) ||
			(q.Service != "" && u.Service != q.Service) || (q.KeyID != "" && u.KeyID != q.KeyID) ||
			(q.TokenID != "" && u.TokenID != q.TokenID) {
			continue
		}
		g := analyticsGroup(u, q.GroupBy)
		f := out[g]
		f.AddRecord(u)
		out[g] = f
	}
	return out
}

func gotGroups(t *testing.T, s Store, q apiwallet.UsageQuery) map[string]apiwallet.UsageFigures {
	t.Helper()
	groups, err := s.UsageGroups(context.Background(), q)
	if err != nil {
		t.Fatalf("UsageGroups(%+v): %v", q, err)
	}
	out := map[string]apiwallet.UsageFigures{}
	for _, g := range groups {
		key := g.Group
		if q.GroupBy == apiwallet.DimHour {
			if g.Hour.Location() != time.UTC {
				t.Errorf("hour %v is not UTC", g.Hour)
			}
			key = g.Hour.Format(time.RFC3339)
		}
		if _, dup := out[key]; dup {
			t.Errorf("group %q twice", key)
		}
		out[key] = g.UsageFigures
	}
	return out
}

// testAnalytics checks the analytics rollups against the records they
// sum, for every dimension and filter, over periods that start and end
// inside days (so that whole days and part-days are combined), and that
// a retried batch counts once.
func testAnalytics(t *testing.T, newStore func(t *testing.T) Store) {
	s := newStore(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2031, 5, 10, 0, 0, 0, 0, time.UTC)
	var batch []apiwallet.Usage
	for i := range 1500 {
		ws := "ws_a"
		if i%10 == 0 {
			ws = "ws_b"
		}
		u := newUsage(ws, []string{"openai", "stripe", "maps"}[rng.IntN(3)], []string{"", "key_1", "key_2", "fallback"}[rng.IntN(4)],
			base.Add(time.Duration(rng.Int64N(int64(80*time.Hour)))), i)
		u.TokenID = []string{"", "tok_1", "tok_2"}[rng.IntN(3)]
		u.UserID = []string{"usr_1", "usr_2"}[rng.IntN(2)]
		u.Endpoint = []string{"GET /v1/models", "POST /v1/charges", ""}[rng.IntN(3)]
		u.Status = []int{200, 201, 404, 429, 500, 502, 503, 0}[rng.IntN(8)]
		u.LatencyMicros = int64(rng.ExpFloat64() * 200_000)
		u.OverheadMicros = int64(rng.IntN(5000))
		batch = append(batch, u)
	}
	for start := 0; start < len(batch); start += 400 {
		mustInsertUsage(t, s, batch[start:min(start+400, len(batch))])
	}
	// A retried batch adds nothing.
	mustInsertUsage(t, s, batch[:400])

	dims := []string{apiwallet.DimNone, apiwallet.DimService, apiwallet.DimKey, apiwallet.DimToken, apiwallet.DimUser,
		apiwallet.DimEndpoint, apiwallet.DimHour}
	periods := []struct{ from, to time.Time }{
		{base, base.Add(80 * time.Hour)},                                    // whole days and a part-day
		{base.Add(5*time.Hour + 30*time.Minute), base.Add(61 * time.Hour)},  // part-days at both ends
		{base.Add(26 * time.Hour), base.Add(30 * time.Hour)},                // inside one day
		{base.Add(-48 * time.Hour), base.Add(-24 * time.Hour)},              // nothing
		{base.Add(24 * time.Hour), base.Add(48*time.Hour + 15*time.Minute)}, // a day and the hour holding to
	}
	filters := []apiwallet.UsageQuery{{}, {Service: "openai"}, {KeyID: "key_2"}, {TokenID: "tok_1"},
		{Service: "stripe", KeyID: "key_1", TokenID: "tok_2"}}
	for _, p := range periods {
		for _, f := range filters {
			for _, d := range dims {
				q := f
				q.WorkspaceID, q.From, q.To, q.GroupBy = "ws_a", p.from, p.to, d
				want, got := wantGroups(batch, q), gotGroups(t, s, q)
				name := fmt.Sprintf("%s..%s %+v by %q", p.from.Format(time.RFC3339), p.to.Format(time.RFC3339), f, d)
				if len(got) != len(want) {
					t.Errorf("%s: %d groups, want %d", name, len(got), len(want))
				}
				for g, w := range want {
					if got[g] != w {
						t.Errorf("%s: group %q =\n %+v\nwant\n %+v", name, g, got[g], w)
					}
				}
			}
		}
	}
	// Another workspace's rows are never summed in.
	if got := gotGroups(t, s, apiwallet.UsageQuery{WorkspaceID: "ws_none", From: base, To: base.Add(80 * time.Hour)}); len(got) != 0 {
		t.Errorf("an empty workspace has groups: %v", got)
	}
	_, err := s.UsageGroups(ctx, apiwallet.UsageQuery{WorkspaceID: "ws_a", From: base, To: base.Add(time.Hour), GroupBy: "colour"})
	wantCode(t, err, apiwallet.EINVALID)
	keys := slices.Collect(func(yield func(string) bool) {
		for g := range gotGroups(t, s, apiwallet.UsageQuery{WorkspaceID: "ws_a", From: base, To: base.Add(80 * time.Hour), GroupBy: apiwallet.DimKey}) {
			if !yield(g) {
				return
			}
		}
	})
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"", "fallback", "key_1", "key_2"}) {
		t.Errorf("key groups = %v", keys)
	}
}
