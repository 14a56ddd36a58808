package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Limit is Rate requests per Period, with bursts of up to Burst requests.
// Burst <= 0 means Burst = Rate.
type Limit struct {
	Rate   int
	Period time.Duration
	Burst  int
}

// PerMinute returns a Limit of rate requests per minute with Burst = rate.
func PerMinute(rate int) Limit { return Limit{Rate: rate, Period: time.Minute} }

// PerSecond returns a Limit of rate requests per second with Burst = rate.
func PerSecond(rate int) Limit { return Limit{Rate: rate, Period: time.Second} }

// Decision is the outcome of one Allow call, with the values of the
// RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset and Retry-After
// response headers.
type Decision struct {
	Allowed    bool
	Limit      int           // the limit's Rate (for RateLimit-Limit)
	Remaining  int           // requests that would be allowed right now, after this one
	ResetAfter time.Duration // until the bucket is full again (RateLimit-Reset)
	RetryAfter time.Duration // when not allowed: until the same request would be allowed; 0 when allowed
}

// Limiter decides whether requests fit their key's limit.
type Limiter interface {
	// Allow takes n (usually 1) from key's bucket if all n fit, atomically:
	// either all n are taken and Allowed is true, or nothing is taken.
	// n = 0 takes nothing and reports the bucket's state.
	Allow(ctx context.Context, key string, l Limit, n int) (Decision, error)
}

// ErrInvalidLimit is returned (wrapped) for a Limit with Rate <= 0 or
// Period <= 0, or for n < 0.
var ErrInvalidLimit = errors.New("ratelimit: invalid limit")

// ErrExceedsBurst is returned (wrapped) when n is larger than the limit's
// burst: such a request could never be allowed, however long it waits.
var ErrExceedsBurst = errors.New("ratelimit: n exceeds the burst")

// burst returns the effective burst of l.
func (l Limit) burst() int {
	if l.Burst <= 0 {
		return l.Rate
	}
	return l.Burst
}

// check validates l and n and returns the effective burst.
func check(l Limit, n int) (int, error) {
	if l.Rate <= 0 || l.Period <= 0 {
		return 0, fmt.Errorf("%w: %d per %v", ErrInvalidLimit, l.Rate, l.Period)
	}
	if n < 0 {
		return 0, fmt.Errorf("%w: n = %d", ErrInvalidLimit, n)
	}
	b := l.burst()
	if n > b {
		return 0, fmt.Errorf("%w: n = %d, burst = %d", ErrExceedsBurst, n, b)
	}
	return b, nil
}

// interval returns the emission interval Period/Rate in units of unit,
// rounded up so that rounding never lets more than Rate through per Period,
// and at least 1.
func interval(l Limit, unit time.Duration) int64 {
	p := int64(l.Period / unit)
	if l.Period%unit != 0 {
		p++
	}
	r := int64(l.Rate)
	t := p / r
	if p%r != 0 {
		t++
	}
	return max(t, 1)
}

// gcra is the decision for a bucket whose theoretical arrival time is tat
// (<= now means the bucket is full), at now, for n requests, with emission
// interval t and the given burst, all times in one unit. It returns the
// decision's numbers in that unit and the new tat (unchanged when denied).
//
// Both Memory and the Redis script (see redis.go) implement exactly this.
func gcra(tat, now, t int64, burst, n int) (allowed bool, remaining int, resetAfter, retryAfter, newTAT int64) {
	tat = max(tat, now)
	tolerance := t * int64(burst)
	next := tat + t*int64(n)
	if allowAt := next - tolerance; allowAt > now {
		return false, int((tolerance - (tat - now)) / t), tat - now, allowAt - now, tat
	}
	return true, int((tolerance - (next - now)) / t), next - now, 0, next
}

var (
	_ Limiter = (*Memory)(nil)
	_ Limiter = (*Redis)(nil)
	_ Limiter = (*Fallback)(nil)
)
