package ratelimit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testLimiter is the behavioural suite every Limiter passes. It runs in real
// time (Redis uses the server's clock), so it checks counts and bounds, and
// uses limits slow enough that the test's own duration cannot refill a
// bucket, except in the subtests about refilling. newLimiter returns a
// limiter whose keys do not collide with any other test's.
func testLimiter(t *testing.T, newLimiter func(t *testing.T) Limiter) {
	ctx := context.Background()

	allow := func(t *testing.T, l Limiter, key string, lim Limit, n int) Decision {
		t.Helper()
		d, err := l.Allow(ctx, key, lim, n)
		if err != nil {
			t.Fatalf("Allow(%q, %+v, %d): %v", key, lim, n, err)
		}
		return d
	}

	t.Run("BurstThenDenied", func(t *testing.T) {
		l := newLimiter(t)
		lim := Limit{Rate: 5, Period: time.Minute} // T = 12s, Burst = 5
		for i := range 5 {
			d := allow(t, l, "k", lim, 1)
			if !d.Allowed || d.Remaining != 4-i || d.Limit != 5 || d.RetryAfter != 0 {
				t.Fatalf("request %d: %+v, want allowed with remaining %d", i+1, d, 4-i)
			}
			if want := time.Duration(i+1) * 12 * time.Second; d.ResetAfter > want || d.ResetAfter < want-2*time.Second {
				t.Fatalf("request %d: ResetAfter %v, want about %v", i+1, d.ResetAfter, want)
			}
		}
		d := allow(t, l, "k", lim, 1)
		if d.Allowed || d.Remaining != 0 || d.Limit != 5 {
			t.Fatalf("6th request: %+v, want denied with remaining 0", d)
		}
		if d.RetryAfter <= 10*time.Second || d.RetryAfter > 12*time.Second {
			t.Fatalf("6th request: RetryAfter %v, want just under 12s", d.RetryAfter)
		}
		if d.ResetAfter <= 58*time.Second || d.ResetAfter > time.Minute {
			t.Fatalf("6th request: ResetAfter %v, want just under 1m", d.ResetAfter)
		}
	})

	t.Run("ExplicitBurst", func(t *testing.T) {
		l := newLimiter(t)
		lim := Limit{Rate: 100, Period: time.Hour, Burst: 3}
		got := 0
		for range 10 {
			if allow(t, l, "k", lim, 1).Allowed {
				got++
			}
		}
		if got != 3 {
			t.Fatalf("allowed %d of 10, want the burst 3", got)
		}
	})

	t.Run("DeniedTakesNothing", func(t *testing.T) {
		l := newLimiter(t)
		lim := Limit{Rate: 2, Period: time.Hour}
		allow(t, l, "k", lim, 2)
		for range 5 {
			if d := allow(t, l, "k", lim, 1); d.Allowed {
				t.Fatalf("allowed past the burst: %+v", d)
			}
		}
		// Denials did not push the TAT: a retry is still about one T away.
		d := allow(t, l, "k", lim, 1)
		if d.RetryAfter > 30*time.Minute || d.RetryAfter < 29*time.Minute {
			t.Fatalf("RetryAfter %v after denials, want about 30m", d.RetryAfter)
		}
	})

	t.Run("NGreaterThanOne", func(t *testing.T) {
		l := newLimiter(t)
		lim := Limit{Rate: 10, Period: time.Minute} // T = 6s
		for _, want := range []int{6, 2} {
			if d := allow(t, l, "k", lim, 4); !d.Allowed || d.Remaining != want {
				t.Fatalf("n=4: %+v, want allowed with remaining %d", d, want)
			}
		}
		d := allow(t, l, "k", lim, 4)
		if d.Allowed || d.Remaining != 2 {
			t.Fatalf("n=4 with 2 left: %+v, want denied with remaining 2", d)
		}
		if d.RetryAfter <= 10*time.Second || d.RetryAfter > 12*time.Second {
			t.Fatalf("n=4 with 2 left: RetryAfter %v, want just under 2T = 12s", d.RetryAfter)
		}
		if d := allow(t, l, "k", lim, 2); !d.Allowed || d.Remaining != 0 {
			t.Fatalf("n=2 with 2 left: %+v, want allowed with remaining 0", d)
		}
		if d := allow(t, l, "k", lim, 1); d.Allowed {
			t.Fatalf("n=1 with 0 left: %+v, want denied", d)
		}
	})

	t.Run("PeekTakesNothing", func(t *testing.T) {
		l := newLimiter(t)
		lim := Limit{Rate: 3, Period: time.Hour}
		for range 3 {
			if d := allow(t, l, "k", lim, 0); !d.Allowed || d.Remaining != 3 {
				t.Fatalf("n=0 on a full bucket: %+v, want allowed with remaining 3", d)
			}
		}
		allow(t, l, "k", lim, 1)
		if d := allow(t, l, "k", lim, 0); d.Remaining != 2 {
			t.Fatalf("n=0 after one request: %+v, want remaining 2", d)
		}
	})

	t.Run("IndependentKeys", func(t *testing.T) {
		l := newLimiter(t)
		lim := Limit{Rate: 2, Period: time.Hour}
		allow(t, l, "a", lim, 2)
		if d := allow(t, l, "a", lim, 1); d.Allowed {
			t.Fatalf("a: allowed past the burst: %+v", d)
		}
		for i, key := range []string{"b", "c", "a2", "A"} {
			if d := allow(t, l, key, lim, 2); !d.Allowed || d.Remaining != 0 {
				t.Fatalf("key %d %q: %+v, want a full bucket of its own", i, key, d)
			}
		}
	})

	t.Run("RefillsOverTime", func(t *testing.T) {
		l := newLimiter(t)
		lim := Limit{Rate: 20, Period: time.Second, Burst: 2} // T = 50ms
		allow(t, l, "k", lim, 2)
		d := allow(t, l, "k", lim, 1)
		if d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > 50*time.Millisecond {
			t.Fatalf("after the burst: %+v, want denied with RetryAfter in (0, 50ms]", d)
		}
		time.Sleep(d.RetryAfter + 5*time.Millisecond)
		if d := allow(t, l, "k", lim, 1); !d.Allowed {
			t.Fatalf("after RetryAfter: %+v, want allowed", d)
		}
		// Exactly one token came back (unless this machine stalled for 45ms).
		if d := allow(t, l, "k", lim, 1); d.Allowed {
			t.Logf("second request after one interval allowed: slow machine? %+v", d)
		}
		time.Sleep(2*50*time.Millisecond + 10*time.Millisecond)
		if d := allow(t, l, "k", lim, 0); d.Remaining != 2 || d.ResetAfter != 0 {
			t.Fatalf("after ResetAfter: %+v, want a full bucket", d)
		}
	})

	t.Run("ConcurrentExact", func(t *testing.T) {
		l := newLimiter(t)
		lim := Limit{Rate: 100, Period: time.Minute}
		var allowed atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range 50 {
			wg.Go(func() {
				for range 4 {
					d, err := l.Allow(ctx, "hot", lim, 1)
					if err != nil {
						t.Error(err)
						return
					}
					if d.Allowed {
						allowed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		checkExactly100(t, allowed.Load(), time.Since(start))
	})

	t.Run("InvalidArguments", func(t *testing.T) {
		l := newLimiter(t)
		for _, c := range []struct {
			lim  Limit
			n    int
			want error
		}{
			{Limit{Rate: 0, Period: time.Second}, 1, ErrInvalidLimit},
			{Limit{Rate: -1, Period: time.Second}, 1, ErrInvalidLimit},
			{Limit{Rate: 1, Period: 0}, 1, ErrInvalidLimit},
			{Limit{Rate: 1, Period: time.Second}, -1, ErrInvalidLimit},
			{Limit{Rate: 5, Period: time.Second}, 6, ErrExceedsBurst},
			{Limit{Rate: 5, Period: time.Second, Burst: 2}, 3, ErrExceedsBurst},
		} {
			if _, err := l.Allow(ctx, "k", c.lim, c.n); !errors.Is(err, c.want) {
				t.Errorf("Allow(%+v, %d) error %v, want %v", c.lim, c.n, err, c.want)
			}
		}
	})
}

// checkExactly100 checks a hammering of Limit{Rate: 100, Period: time.Minute}
// (T = 600ms) that took elapsed: exactly 100 allowed, plus one per 600ms the
// hammering lasted (none on any sane machine).
func checkExactly100(t *testing.T, allowed int64, elapsed time.Duration) {
	t.Helper()
	extra := int64(elapsed / (600 * time.Millisecond))
	if allowed < 100 || allowed > 100+extra {
		t.Fatalf("allowed %d in %v, want exactly 100 (+%d for refill)", allowed, elapsed, extra)
	}
	if extra > 0 {
		t.Logf("hammering took %v; allowed %d", elapsed, allowed)
	}
}

func TestInterval(t *testing.T) {
	for _, c := range []struct {
		l    Limit
		unit time.Duration
		want int64
	}{
		{Limit{Rate: 100, Period: time.Minute}, time.Nanosecond, 600_000_000},
		{Limit{Rate: 3, Period: time.Second}, time.Nanosecond, 333_333_334}, // rounded up
		{Limit{Rate: 3, Period: time.Second}, time.Microsecond, 333_334},
		{Limit{Rate: 10_000_000, Period: time.Second}, time.Microsecond, 1}, // at least 1
		{Limit{Rate: 1, Period: 1500 * time.Nanosecond}, time.Microsecond, 2},
	} {
		if got := interval(c.l, c.unit); got != c.want {
			t.Errorf("interval(%+v, %v) = %d, want %d", c.l, c.unit, got, c.want)
		}
	}
}
