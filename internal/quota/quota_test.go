package quota

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// fakeStore answers WorkspaceUsage with a fixed count per workspace and
// month, counting the queries.
type fakeStore struct {
	mu      sync.Mutex
	calls   map[string]int64 // workspace + "|" + YYYY-MM
	queries atomic.Int64
	err     error
	delay   time.Duration
}

func newFakeStore() *fakeStore { return &fakeStore{calls: map[string]int64{}} }

func (s *fakeStore) set(ws string, period time.Time, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[ws+"|"+monthLabel(MonthStart(period))] = n
}

func (s *fakeStore) WorkspaceUsage(ctx context.Context, ws string, from, to time.Time) (apiwallet.UsageSummary, error) {
	s.queries.Add(1)
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return apiwallet.UsageSummary{}, s.err
	}
	if !from.Equal(MonthStart(from)) || !to.Equal(NextMonth(from)) {
		return apiwallet.UsageSummary{}, errors.New("not a whole month")
	}
	var sum apiwallet.UsageSummary
	sum.Calls = s.calls[ws+"|"+monthLabel(from)]
	return sum, nil
}

// hammer runs workers goroutines, each reserving until refused, and
// returns how many reservations succeeded and the refusals seen.
func hammer(t *testing.T, counters []Counter, workers int, ws string, period time.Time, included int64) (int64, []*Exceeded) {
	t.Helper()
	var (
		ok      atomic.Int64
		mu      sync.Mutex
		refused []*Exceeded
		wg      sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := counters[w%len(counters)]
			for {
				_, err := c.Reserve(context.Background(), ws, period, included, true)
				var ex *Exceeded
				if errors.As(err, &ex) {
					mu.Lock()
					refused = append(refused, ex)
					mu.Unlock()
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	return ok.Load(), refused
}

// testCounter is the behaviour every Counter shares. newCounter returns
// counters sharing one count (several for Redis, as several instances).
func testCounter(t *testing.T, newCounter func(t *testing.T, store UsageStore) []Counter) {
	ctx := context.Background()
	now := time.Date(2031, 3, 17, 12, 0, 0, 0, time.UTC)
	reset := time.Date(2031, 4, 1, 0, 0, 0, 0, time.UTC)

	t.Run("exact under concurrency, starting from the store", func(t *testing.T) {
		store := newFakeStore()
		store.set("ws_a", now, 500)
		cs := newCounter(t, store)
		got, refused := hammer(t, cs, 200, "ws_a", now, 1500)
		if got != 1000 {
			t.Fatalf("%d reservations succeeded with 1,000 remaining", got)
		}
		if len(refused) != 200 {
			t.Fatalf("%d refusals, want one per worker (200)", len(refused))
		}
		for _, ex := range refused {
			if ex.Included != 1500 || ex.Used != 1500 || !ex.ResetAt.Equal(reset) {
				t.Fatalf("refusal %+v, want included 1500, used 1500, reset %v", ex, reset)
			}
		}
		if n, err := cs[0].Used(ctx, "ws_a", now); err != nil || n != 1500 {
			t.Fatalf("Used = %d, %v; want 1500", n, err)
		}
		t.Logf("200 workers: %d reserved, %d refused, %d store queries", got, len(refused), store.queries.Load())
	})

	t.Run("refund gives the call back", func(t *testing.T) {
		store := newFakeStore()
		c := newCounter(t, store)[0]
		var last Reservation
		for i := range 3 {
			res, err := c.Reserve(ctx, "ws_r", now, 3, true)
			if err != nil {
				t.Fatalf("reserve %d: %v", i, err)
			}
			if res.Used != int64(i+1) || !res.Period.Equal(MonthStart(now)) || !res.Valid() {
				t.Fatalf("reservation %+v", res)
			}
			last = res
		}
		if _, err := c.Reserve(ctx, "ws_r", now, 3, true); err == nil {
			t.Fatal("a fourth call of three went through")
		}
		if err := c.Settle(ctx, last, true); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Reserve(ctx, "ws_r", now, 3, true); err == nil {
			t.Fatal("settling a call that happened refunded it")
		}
		if err := c.Settle(ctx, last, false); err != nil {
			t.Fatal(err)
		}
		if n, _ := c.Used(ctx, "ws_r", now); n != 2 {
			t.Fatalf("after a refund Used = %d, want 2", n)
		}
		if _, err := c.Reserve(ctx, "ws_r", now, 3, true); err != nil {
			t.Fatalf("the refunded call is not available again: %v", err)
		}
		if err := c.Settle(ctx, Reservation{}, false); err != nil {
			t.Fatalf("settling the zero reservation: %v", err)
		}
	})

	t.Run("no hard stop counts overage", func(t *testing.T) {
		c := newCounter(t, newFakeStore())[0]
		for i := range 5 {
			res, err := c.Reserve(ctx, "ws_p", now, 2, false)
			if err != nil || res.Used != int64(i+1) {
				t.Fatalf("call %d: %+v %v", i, res, err)
			}
		}
		if n, _ := c.Used(ctx, "ws_p", now); n != 5 {
			t.Fatalf("Used = %d, want 5", n)
		}
	})

	t.Run("months and workspaces are separate", func(t *testing.T) {
		store := newFakeStore()
		store.set("ws_m", now, 10)
		c := newCounter(t, store)[0]
		if _, err := c.Reserve(ctx, "ws_m", now, 10, true); err == nil {
			t.Fatal("a full month took a call")
		}
		next := reset.Add(time.Minute)
		res, err := c.Reserve(ctx, "ws_m", next, 10, true)
		if err != nil || res.Used != 1 || !res.Period.Equal(reset) {
			t.Fatalf("first call of the next month: %+v %v", res, err)
		}
		if _, err := c.Reserve(ctx, "ws_other", now, 10, true); err != nil {
			t.Fatalf("another workspace: %v", err)
		}
		if n, _ := c.Used(ctx, "ws_unseen", now); n != 0 {
			t.Fatalf("unseen workspace used %d", n)
		}
	})

	t.Run("zero included refuses at once", func(t *testing.T) {
		c := newCounter(t, newFakeStore())[0]
		_, err := c.Reserve(ctx, "ws_z", now, 0, true)
		var ex *Exceeded
		if !errors.As(err, &ex) || ex.Used != 0 || ex.Included != 0 {
			t.Fatalf("got %v", err)
		}
	})
}

func TestMemory(t *testing.T) {
	testCounter(t, func(t *testing.T, store UsageStore) []Counter { return []Counter{NewMemory(store, 1)} })
}

// The store is asked once per workspace and month, however many calls
// arrive while it answers; a failed load is tried again by the next call.
func TestMemoryLoadsOnce(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	store := newFakeStore()
	store.delay = 50 * time.Millisecond
	m := NewMemory(store, 1)
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := m.Reserve(ctx, "ws_1", now, 1000, true); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if q := store.queries.Load(); q != 1 {
		t.Fatalf("%d store queries for one workspace-month", q)
	}
	if n, _ := m.Used(ctx, "ws_1", now); n != 50 {
		t.Fatalf("Used = %d", n)
	}

	store.err = errors.New("database down")
	store.delay = 0
	if _, err := m.Reserve(ctx, "ws_2", now, 1000, true); err == nil {
		t.Fatal("no error while the store fails")
	}
	store.err = nil
	if res, err := m.Reserve(ctx, "ws_2", now, 1000, true); err != nil || res.Used != 1 {
		t.Fatalf("after the store recovered: %+v %v", res, err)
	}
	// A new month sweeps the old ones.
	if _, err := m.Reserve(ctx, "ws_1", NextMonth(now), 1000, true); err != nil {
		t.Fatal(err)
	}
	if m.Len() != 1 {
		t.Fatalf("%d entries after the month turned, want 1", m.Len())
	}
}

// As a fallback on one of three instances, Memory lets this instance use a
// third of what remains.
func TestMemoryShare(t *testing.T) {
	now := time.Now()
	store := newFakeStore()
	store.set("ws", now, 400)
	m := NewMemory(store, 3)
	got, refused := hammer(t, []Counter{m}, 20, "ws", now, 1000)
	if got != 200 {
		t.Fatalf("%d reserved, want 600/3 = 200", got)
	}
	if refused[0].Used != 1000 {
		t.Fatalf("refusal says used %d, want the estimate 1000", refused[0].Used)
	}
	drained := m.drain()
	if len(drained) != 1 || drained[0].n != 200 || drained[0].workspaceID != "ws" || !drained[0].period.Equal(MonthStart(now)) {
		t.Fatalf("drain: %+v", drained)
	}
	if m.Len() != 0 {
		t.Fatal("drain kept entries")
	}
}

func TestMonthBoundaries(t *testing.T) {
	for _, c := range []struct{ in, start, next string }{
		{"2030-01-31T23:59:59.999Z", "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z"},
		{"2030-12-15T10:00:00Z", "2030-12-01T00:00:00Z", "2031-01-01T00:00:00Z"},
		{"2030-03-01T00:30:00+01:00", "2030-02-01T00:00:00Z", "2030-03-01T00:00:00Z"}, // UTC decides
	} {
		in, _ := time.Parse(time.RFC3339Nano, c.in)
		if got := MonthStart(in).Format(time.RFC3339); got != c.start {
			t.Errorf("MonthStart(%s) = %s, want %s", c.in, got, c.start)
		}
		if got := NextMonth(in).Format(time.RFC3339); got != c.next {
			t.Errorf("NextMonth(%s) = %s, want %s", c.in, got, c.next)
		}
	}
}

type fakeWorkspaces map[string]string

func (f fakeWorkspaces) FindWorkspaceByID(_ context.Context, id string) (*apiwallet.Workspace, error) {
	p, ok := f[id]
	if !ok {
		return nil, apiwallet.Errorf(apiwallet.ENOTFOUND, "workspace not found")
	}
	return &apiwallet.Workspace{ID: id, Plan: p}, nil
}

type testEpoch struct{ n atomic.Uint64 }

func (e *testEpoch) Load() uint64 { return e.n.Load() }

func TestPlans(t *testing.T) {
	ctx := context.Background()
	ws := fakeWorkspaces{"free": "free", "pro": "professional", "ent": "enterprise", "cus": "custom"}
	p := &WorkspacePlans{Workspaces: ws, FreeQuota: 250}
	for id, want := range map[string]struct {
		n    int64
		stop bool
	}{"free": {250, true}, "pro": {100_000, false}, "ent": {1_000_000, false}, "cus": {0, false}} {
		n, stop, err := p.PlanFor(ctx, id)
		if err != nil || n != want.n || stop != want.stop {
			t.Errorf("%s: %d %v %v, want %d %v", id, n, stop, err, want.n, want.stop)
		}
	}
	if _, _, err := p.PlanFor(ctx, "nope"); apiwallet.ErrorCode(err) != apiwallet.ENOTFOUND {
		t.Errorf("unknown workspace: %v", err)
	}

	var lookups atomic.Int64
	epoch := &testEpoch{}
	clock := time.Unix(1_000_000, 0)
	c := NewCachedPlans(PlansFunc(func(ctx context.Context, id string) (int64, bool, error) {
		lookups.Add(1)
		return p.PlanFor(ctx, id)
	}), time.Minute, epoch)
	c.now = func() time.Time { return clock }
	for range 10 {
		if n, _, _ := c.PlanFor(ctx, "free"); n != 250 {
			t.Fatal(n)
		}
	}
	if lookups.Load() != 1 {
		t.Fatalf("%d lookups for 10 calls within the TTL", lookups.Load())
	}
	ws["free"] = "professional"
	if n, _, _ := c.PlanFor(ctx, "free"); n != 250 {
		t.Fatal("the cache did not hold")
	}
	epoch.n.Add(1)
	if n, stop, _ := c.PlanFor(ctx, "free"); n != 100_000 || stop {
		t.Fatalf("after an epoch bump: %d %v", n, stop)
	}
	ws["free"] = "enterprise"
	clock = clock.Add(61 * time.Second)
	if n, _, _ := c.PlanFor(ctx, "free"); n != 1_000_000 {
		t.Fatalf("after the TTL: %d", n)
	}
	if lookups.Load() != 3 {
		t.Fatalf("%d lookups", lookups.Load())
	}
}
