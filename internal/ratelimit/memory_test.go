package ratelimit

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock for Memory.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestMemoryBehaviour(t *testing.T) {
	testLimiter(t, func(t *testing.T) Limiter { return NewMemory(nil) })
}

// step is one call in a scripted scenario: advance the clock, then Allow.
type step struct {
	advance time.Duration
	key     string // "k" when empty
	n       int
	want    Decision
}

func TestMemoryExactTiming(t *testing.T) {
	const ms = time.Millisecond
	tenPerSec := Limit{Rate: 10, Period: time.Second} // T = 100ms, Burst 10
	burst3 := Limit{Rate: 10, Period: time.Second, Burst: 3}

	yes := func(rem int, reset time.Duration) Decision {
		return Decision{Allowed: true, Limit: 10, Remaining: rem, ResetAfter: reset}
	}
	no := func(rem int, reset, retry time.Duration) Decision {
		return Decision{Allowed: false, Limit: 10, Remaining: rem, ResetAfter: reset, RetryAfter: retry}
	}

	cases := []struct {
		name  string
		limit Limit
		steps []step
	}{
		{
			name:  "burst then exact spacing",
			limit: burst3,
			steps: []step{
				{n: 1, want: yes(2, 100*ms)},
				{n: 1, want: yes(1, 200*ms)},
				{n: 1, want: yes(0, 300*ms)},
				{n: 1, want: no(0, 300*ms, 100*ms)},
				{n: 1, advance: 99 * ms, want: no(0, 201*ms, 1*ms)},
				{n: 1, advance: 1 * ms, want: yes(0, 300*ms)},
				{n: 1, advance: 50 * ms, want: no(0, 250*ms, 50*ms)},
				{n: 1, advance: 50 * ms, want: yes(0, 300*ms)},
				{n: 1, advance: 100 * ms, want: yes(0, 300*ms)},
				{n: 1, want: no(0, 300*ms, 100*ms)},
			},
		},
		{
			name:  "partial refill",
			limit: burst3,
			steps: []step{
				{n: 3, want: yes(0, 300*ms)},
				{n: 1, advance: 250 * ms, want: yes(1, 150*ms)}, // 2 back, 1 taken
				{n: 1, want: yes(0, 250*ms)},
				{n: 1, want: no(0, 250*ms, 50*ms)},
				{advance: 1000 * ms, n: 3, want: yes(0, 300*ms)}, // full again
			},
		},
		{
			name:  "default burst is rate",
			limit: tenPerSec,
			steps: []step{
				{n: 10, want: yes(0, 1000*ms)},
				{n: 1, want: no(0, 1000*ms, 100*ms)},
				{n: 1, advance: 1000 * ms, want: yes(9, 100*ms)},
			},
		},
		{
			name:  "n greater than one",
			limit: tenPerSec,
			steps: []step{
				{n: 4, want: yes(6, 400*ms)},
				{n: 4, want: yes(2, 800*ms)},
				{n: 4, want: no(2, 800*ms, 200*ms)},
				{advance: 150 * ms, n: 4, want: no(3, 650*ms, 50*ms)},
				{advance: 50 * ms, n: 4, want: yes(0, 1000*ms)},
				{n: 0, want: yes(0, 1000*ms)},
			},
		},
		{
			name:  "independent keys",
			limit: burst3,
			steps: []step{
				{key: "a", n: 3, want: yes(0, 300*ms)},
				{n: 1, key: "a", want: no(0, 300*ms, 100*ms)},
				{n: 1, key: "b", want: yes(2, 100*ms)},
				{key: "c", n: 3, want: yes(0, 300*ms)},
				{n: 1, advance: 100 * ms, key: "a", want: yes(0, 300*ms)},
				{n: 1, key: "b", want: yes(2, 100*ms)},
			},
		},
		{
			name:  "uneven interval rounds up",
			limit: Limit{Rate: 3, Period: time.Second, Burst: 1}, // T = 333333334ns
			steps: []step{
				{n: 1, want: Decision{Allowed: true, Limit: 3, ResetAfter: 333333334}},
				{n: 1, advance: 333333333, want: Decision{Limit: 3, ResetAfter: 1, RetryAfter: 1}},
				{n: 1, advance: 1, want: Decision{Allowed: true, Limit: 3, ResetAfter: 333333334}},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock := newFakeClock()
			m := NewMemory(clock.Now)
			for i, s := range c.steps {
				clock.Advance(s.advance)
				key, n := s.key, s.n
				if key == "" {
					key = "k"
				}
				got, err := m.Allow(context.Background(), key, c.limit, n)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if got != s.want {
					t.Fatalf("step %d (+%v, %q, n=%d): got %+v, want %+v", i, s.advance, key, n, got, s.want)
				}
			}
		})
	}
}

func TestMemoryNeverExceedsGCRABound(t *testing.T) {
	// Simulate a client retrying every millisecond for 10 minutes of fake
	// time: in every sliding window of one Period at most Burst+Rate-1 are
	// allowed, and over the whole run at most Burst + elapsed/T.
	clock := newFakeClock()
	m := NewMemory(clock.Now)
	lim := Limit{Rate: 7, Period: time.Second, Burst: 3}
	var times []time.Duration
	var elapsed time.Duration
	for elapsed = 0; elapsed < 10*time.Minute; elapsed += time.Millisecond {
		d, err := m.Allow(context.Background(), "k", lim, 1)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			times = append(times, elapsed)
		}
		clock.Advance(time.Millisecond)
	}
	if most := 3 + int(int64(elapsed)/interval(lim, time.Nanosecond)); len(times) > most {
		t.Fatalf("allowed %d over %v, want at most %d", len(times), elapsed, most)
	}
	if least := 7*600 - 1; len(times) < least {
		t.Fatalf("allowed %d over %v, want at least %d", len(times), elapsed, least)
	}
	for i := range times {
		j := i
		for j < len(times) && times[j]-times[i] < time.Second {
			j++
		}
		if j-i > 3+7-1 {
			t.Fatalf("%d allowed within one second from %v", j-i, times[i])
		}
	}
}

func TestMemorySweepsExpiredEntries(t *testing.T) {
	clock := newFakeClock()
	m := NewMemory(clock.Now)
	lim := Limit{Rate: 1, Period: time.Second}
	ctx := context.Background()
	for i := range 5000 {
		if _, err := m.Allow(ctx, "key-"+strconv.Itoa(i), lim, 1); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.Len(); got != 5000 {
		t.Fatalf("Len = %d, want 5000", got)
	}
	// Still within the reset time: nothing may be dropped.
	m.Sweep()
	if got := m.Len(); got != 5000 {
		t.Fatalf("Len after an early Sweep = %d, want 5000", got)
	}
	// Past every reset time and the sweep interval: calls sweep lazily.
	clock.Advance(sweepEvery + time.Second)
	for i := range 2000 {
		if _, err := m.Allow(ctx, "other-"+strconv.Itoa(i), lim, 0); err != nil {
			t.Fatal(err)
		}
	}
	// n=0 stores nothing; every shard was visited and swept.
	if got := m.Len(); got != 0 {
		t.Fatalf("Len after lazy sweeps = %d, want 0", got)
	}
	// The state of dropped keys is a full bucket, as before.
	if d, _ := m.Allow(ctx, "key-1", lim, 1); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("key-1 after sweep: %+v", d)
	}
}

func TestMemoryExplicitSweepRebuildsMap(t *testing.T) {
	clock := newFakeClock()
	m := NewMemory(clock.Now)
	lim := Limit{Rate: 1, Period: time.Second}
	for i := range 200_000 {
		_, _ = m.Allow(context.Background(), "key-"+strconv.Itoa(i), lim, 1)
	}
	clock.Advance(2 * time.Second)
	_, _ = m.Allow(context.Background(), "live", lim, 1)
	m.Sweep()
	if got := m.Len(); got != 1 {
		t.Fatalf("Len = %d, want 1", got)
	}
	for i := range m.shards {
		if p := m.shards[i].peak; p > 1 {
			t.Fatalf("shard %d peak %d after a sweep, want the map rebuilt", i, p)
		}
	}
}

func TestMemoryAllowDoesNotAllocate(t *testing.T) {
	m := NewMemory(nil)
	ctx := context.Background()
	lim := Limit{Rate: 1000, Period: time.Second}
	keys := []string{"a", "b", "c", "d"}
	for _, k := range keys {
		_, _ = m.Allow(ctx, k, lim, 1)
	}
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		_, _ = m.Allow(ctx, keys[i%len(keys)], lim, 1)
		i++
	})
	if allocs != 0 {
		t.Fatalf("Allow allocates %v times per call, want 0", allocs)
	}
}

func BenchmarkMemoryAllow(b *testing.B) {
	m := NewMemory(nil)
	ctx := context.Background()
	lim := Limit{Rate: 1_000_000, Period: time.Second}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "workspace:" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(512)) // goroutines walk the keys out of step
		for pb.Next() {
			if _, err := m.Allow(ctx, keys[i&1023], lim, 1); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func BenchmarkMemoryAllowOneKey(b *testing.B) {
	m := NewMemory(nil)
	ctx := context.Background()
	lim := Limit{Rate: 1_000_000, Period: time.Second}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Allow(ctx, "workspace:1", lim, 1); err != nil {
			b.Fatal(err)
		}
	}
}
