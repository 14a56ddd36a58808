package storetest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// usageBase is an hour start far from any real data.
var usageBase = time.Date(2031, 3, 15, 10, 0, 0, 0, time.UTC)

// newUsage returns a record of one call; the numbers vary with n so that
// wrong sums show.
func newUsage(ws, service, key string, at time.Time, n int) apiwallet.Usage {
	return apiwallet.Usage{
		ID: apiwallet.NewID("use"), WorkspaceID: ws, Service: service, KeyID: key,
		TokenID: "tok_test", UserID: "usr_test", Method: "POST", Status: 200, Attempts: 1,
		Attempted: key + ":200", Strategy: "cost", Premium: n%3 == 0, Failed: n%5 == 0, Unreached: n%7 == 0,
		LatencyMicros: int64(1000 + n), OverheadMicros: int64(50 + n), BytesIn: int64(10 * n),
		BytesOut: int64(100 * n), CostMicros: int64(n), SavedMicros: int64(2 * n), CreatedAt: at,
	}
}

// sumUsage is what the rollups must say about batch.
func sumUsage(batch []apiwallet.Usage) apiwallet.UsageSummary {
	var s apiwallet.UsageSummary
	by := map[string]*apiwallet.ServiceUsage{}
	var order []string
	for _, u := range batch {
		t := apiwallet.UsageTotals{Calls: 1, CostMicros: u.CostMicros, SavedMicros: u.SavedMicros,
			BytesIn: u.BytesIn, BytesOut: u.BytesOut, LatencyMicros: u.LatencyMicros}
		if u.Failed {
			t.Failed = 1
		}
		if u.Premium {
			t.Premium = 1
		}
		if u.Unreached {
			t.Unreached = 1
		}
		s.Add(t)
		if by[u.Service] == nil {
			by[u.Service] = &apiwallet.ServiceUsage{Service: u.Service}
			order = append(order, u.Service)
		}
		by[u.Service].Add(t)
	}
	slices.Sort(order)
	for _, name := range order {
		s.Services = append(s.Services, *by[name])
	}
	return s
}

// keyCounts is what KeyUsageSince must return for batch.
func keyCounts(batch []apiwallet.Usage, ws, service string, since time.Time) map[string]int64 {
	m := map[string]int64{}
	for _, u := range batch {
		if u.WorkspaceID == ws && u.Service == service && u.KeyID != "" && !u.CreatedAt.Before(since) {
			m[u.KeyID]++
		}
	}
	return m
}

func mustInsertUsage(t *testing.T, s Store, batch []apiwallet.Usage) {
	t.Helper()
	if err := s.InsertUsage(context.Background(), batch); err != nil {
		t.Fatalf("InsertUsage(%d): %v", len(batch), err)
	}
}

func wantSummary(t *testing.T, s Store, ws string, from, to time.Time, want apiwallet.UsageSummary) {
	t.Helper()
	got, err := s.WorkspaceUsage(context.Background(), ws, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("WorkspaceUsage(%s, %s, %s) =\n%+v\nwant\n%+v", ws, from.Format(time.RFC3339), to.Format(time.RFC3339), got, want)
	}
}

func wantKeyCounts(t *testing.T, s Store, ws, service string, since time.Time, want map[string]int64) {
	t.Helper()
	got, err := s.KeyUsageSince(context.Background(), ws, service, since)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("KeyUsageSince(%s, %s, %s) = %v, want %v", ws, service, since.Format(time.RFC3339Nano), got, want)
	}
}

func testUsage(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("Sums", func(t *testing.T) { testUsageSums(t, newStore(t)) })
	t.Run("Idempotent", func(t *testing.T) { testUsageIdempotent(t, newStore(t)) })
	t.Run("KeyUsageSince", func(t *testing.T) { testKeyUsageSince(t, newStore(t)) })
	t.Run("Scoping", func(t *testing.T) { testUsageScoping(t, newStore(t)) })
	t.Run("Invalid", func(t *testing.T) { testUsageInvalid(t, newStore(t)) })
	t.Run("Erasure", func(t *testing.T) { testUsageErasure(t, newStore(t)) })
}

// Rollups sum every field of the records, by service, over the hours of
// the period asked for; a month is exactly its own calls.
func testUsageSums(t *testing.T, s Store) {
	ws := apiwallet.NewID("ws")
	march := time.Date(2031, 3, 1, 0, 0, 0, 0, time.UTC)
	april := march.AddDate(0, 1, 0)
	var inMarch, batch []apiwallet.Usage
	for i := range 60 {
		service, key := "stripe", fmt.Sprintf("key_s%d", i%3)
		if i%4 == 0 {
			service, key = "openai", "key_o"
		}
		if i%10 == 0 {
			key = "" // no usable key: counted as a call, under no key
		}
		// Spread over March, including its very first and very last
		// microsecond.
		at := march.Add(time.Duration(i) * 12 * time.Hour)
		switch i {
		case 0:
			at = march
		case 59:
			at = april.Add(-time.Microsecond)
		}
		u := newUsage(ws, service, key, at, i+1)
		batch = append(batch, u)
		inMarch = append(inMarch, u)
	}
	// Neighbours that March must not include.
	batch = append(batch,
		newUsage(ws, "stripe", "key_s0", march.Add(-time.Microsecond), 1000),
		newUsage(ws, "stripe", "key_s0", april, 2000))
	// Inserted in several batches, as the recorder does.
	mustInsertUsage(t, s, batch[:25])
	mustInsertUsage(t, s, batch[25:])

	want := sumUsage(inMarch)
	if want.Calls != 60 || want.Unreached != 8 || want.Billable() != 52 || len(want.Services) != 2 {
		t.Fatalf("test setup: %+v", want)
	}
	wantSummary(t, s, ws, march, april, want)
	wantSummary(t, s, ws, march.AddDate(-1, 0, 0), april.AddDate(1, 0, 0), sumUsage(batch))
	// Hour granularity: from is taken down to its hour, to is exclusive.
	wantSummary(t, s, ws, march.Add(30*time.Minute), march.Add(time.Hour), sumUsage(inMarch[:1]))
	wantSummary(t, s, ws, march, march, apiwallet.UsageSummary{})
	wantSummary(t, s, "ws_nobody", march, april, apiwallet.UsageSummary{})
}

// A batch written twice (a retry after a lost acknowledgement) and a batch
// overlapping one already written count each record once, in the records
// and in the rollups; so does a record repeated inside one batch, and
// batches raced from several writers.
func testUsageIdempotent(t *testing.T, s Store) {
	ctx := context.Background()
	ws := apiwallet.NewID("ws")
	var batch []apiwallet.Usage
	for i := range 40 {
		batch = append(batch, newUsage(ws, "stripe", fmt.Sprintf("key_%d", i%2), usageBase.Add(time.Duration(i)*5*time.Minute), i+1))
	}
	from, to := usageBase.Add(-time.Hour), usageBase.Add(24*time.Hour)
	mustInsertUsage(t, s, batch[:30])
	mustInsertUsage(t, s, batch[:30])
	wantSummary(t, s, ws, from, to, sumUsage(batch[:30]))
	wantKeyCounts(t, s, ws, "stripe", from, keyCounts(batch[:30], ws, "stripe", from))

	// Overlap: 20..39, of which 30..39 are new; 35 twice.
	overlap := append(append([]apiwallet.Usage(nil), batch[20:]...), batch[35])
	mustInsertUsage(t, s, overlap)
	wantSummary(t, s, ws, from, to, sumUsage(batch))
	wantKeyCounts(t, s, ws, "stripe", from, keyCounts(batch, ws, "stripe", from))
	// A since inside an hour reads the records too: still once each.
	mid := usageBase.Add(90 * time.Minute)
	wantKeyCounts(t, s, ws, "stripe", mid, keyCounts(batch, ws, "stripe", mid))

	// Eight writers racing the same new batch.
	var more []apiwallet.Usage
	for i := range 50 {
		more = append(more, newUsage(ws, "openai", "key_o", usageBase.Add(time.Duration(i)*time.Minute), i+7))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- s.InsertUsage(ctx, more) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	wantSummary(t, s, ws, from, to, sumUsage(append(append([]apiwallet.Usage(nil), batch...), more...)))
	wantKeyCounts(t, s, ws, "openai", from, map[string]int64{"key_o": 50})

	// A batch longer than one statement (backends split it), with old
	// records spread through it.
	var big, bigNew []apiwallet.Usage
	for i := range 333 {
		if i%11 == 0 {
			big = append(big, batch[i%len(batch)])
			continue
		}
		u := newUsage(ws, "anthropic", fmt.Sprintf("key_a%d", i%4), usageBase.Add(time.Duration(i)*time.Minute), i+3)
		big = append(big, u)
		bigNew = append(bigNew, u)
	}
	mustInsertUsage(t, s, big)
	mustInsertUsage(t, s, big)
	all := append(append(append([]apiwallet.Usage(nil), batch...), more...), bigNew...)
	wantSummary(t, s, ws, from, to, sumUsage(all))
	wantKeyCounts(t, s, ws, "anthropic", mid, keyCounts(all, ws, "anthropic", mid))

	if err := s.InsertUsage(ctx, nil); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
}

// KeyUsageSince is exact to the microsecond whatever since is: on an hour
// boundary, inside an hour, a microsecond either side of a record, across
// several hours and a day.
func testKeyUsageSince(t *testing.T, s Store) {
	ws := apiwallet.NewID("ws")
	h := usageBase
	ats := []time.Time{
		h.Add(-25 * time.Hour),
		h.Add(-time.Microsecond),
		h,
		h.Add(time.Microsecond),
		h.Add(29*time.Minute + 59*time.Second),
		h.Add(30 * time.Minute),
		h.Add(59*time.Minute + 59*time.Second + 999999*time.Microsecond),
		h.Add(time.Hour),
		h.Add(time.Hour + 15*time.Minute),
		h.Add(3*time.Hour + 45*time.Minute),
		h.Add(26 * time.Hour),
	}
	var batch []apiwallet.Usage
	for i, at := range ats {
		for k := range 3 {
			if (i+k)%2 == 0 {
				batch = append(batch, newUsage(ws, "stripe", fmt.Sprintf("key_%d", k), at, i*3+k+1))
			}
		}
		batch = append(batch, newUsage(ws, "openai", "key_0", at, i+1))    // other service
		batch = append(batch, newUsage(ws, "stripe", "", at, i+1))         // no key
		batch = append(batch, newUsage(ws, "stripe", "fallback", at, i+1)) // operator key
	}
	mustInsertUsage(t, s, batch)

	sinces := []time.Time{time.Time{}, h.Add(-48 * time.Hour), h.Add(-30 * time.Minute)}
	for _, at := range ats {
		sinces = append(sinces, at.Add(-time.Microsecond), at, at.Add(time.Microsecond))
	}
	sinces = append(sinces, h.Add(90*time.Minute), h.Add(2*time.Hour), h.Add(27*time.Hour))
	for _, since := range sinces {
		wantKeyCounts(t, s, ws, "stripe", since, keyCounts(batch, ws, "stripe", since))
		wantKeyCounts(t, s, ws, "openai", since, keyCounts(batch, ws, "openai", since))
	}
	wantKeyCounts(t, s, ws, "anthropic", time.Time{}, map[string]int64{})
}

// Another workspace's usage is never counted, even with the same service
// and key ids at the same times.
func testUsageScoping(t *testing.T, s Store) {
	a, b := apiwallet.NewID("ws"), apiwallet.NewID("ws")
	var mine, theirs []apiwallet.Usage
	for i := range 20 {
		at := usageBase.Add(time.Duration(i) * 7 * time.Minute)
		mine = append(mine, newUsage(a, "stripe", "key_1", at, i+1))
		theirs = append(theirs, newUsage(b, "stripe", "key_1", at, 100+i))
		theirs = append(theirs, newUsage(b, "stripe", "key_2", at, 200+i))
	}
	mustInsertUsage(t, s, append(append([]apiwallet.Usage(nil), mine...), theirs...))
	from, to := usageBase.Add(-time.Hour), usageBase.Add(time.Hour*5)
	wantSummary(t, s, a, from, to, sumUsage(mine))
	wantSummary(t, s, b, from, to, sumUsage(theirs))
	for _, since := range []time.Time{from, usageBase.Add(17 * time.Minute), usageBase.Add(time.Hour)} {
		wantKeyCounts(t, s, a, "stripe", since, keyCounts(mine, a, "stripe", since))
		wantKeyCounts(t, s, b, "stripe", since, keyCounts(theirs, b, "stripe", since))
	}
}

// A record without an ID (which could not be deduplicated) or a workspace
// is refused, and its batch writes nothing.
func testUsageInvalid(t *testing.T, s Store) {
	ctx := context.Background()
	ws := apiwallet.NewID("ws")
	good := newUsage(ws, "stripe", "key_1", usageBase, 1)
	noID := newUsage(ws, "stripe", "key_1", usageBase, 2)
	noID.ID = ""
	noWS := newUsage("", "stripe", "key_1", usageBase, 3)
	for _, bad := range []apiwallet.Usage{noID, noWS} {
		wantCode(t, s.InsertUsage(ctx, []apiwallet.Usage{good, bad}), apiwallet.EINVALID)
	}
	wantSummary(t, s, ws, usageBase, usageBase.Add(time.Hour), apiwallet.UsageSummary{})

	// A zero CreatedAt is taken as now.
	now := newUsage(ws, "stripe", "key_1", time.Time{}, 4)
	before := time.Now().Add(-time.Second)
	mustInsertUsage(t, s, []apiwallet.Usage{now})
	wantKeyCounts(t, s, ws, "stripe", before, map[string]int64{"key_1": 1})
}

// Erasing an account erases its workspaces' usage.
func testUsageErasure(t *testing.T, s Store) {
	ctx := context.Background()
	u := MustCreateUser(t, s, "usage-erasure@example.com")
	ws := u.PersonalWorkspaceID
	mustInsertUsage(t, s, []apiwallet.Usage{newUsage(ws, "stripe", "key_1", usageBase, 1)})
	if _, err := s.DeleteUserAccount(ctx, u.ID, nil); err != nil {
		t.Fatal(err)
	}
	wantSummary(t, s, ws, time.Time{}, usageBase.AddDate(1, 0, 0), apiwallet.UsageSummary{})
	wantKeyCounts(t, s, ws, "stripe", time.Time{}, map[string]int64{})
}
