package ratelimit

import (
	"context"
	"errors"
	"log/slog"

	"github.com/apikeywallet/apiwallet/internal/redisprobe"
)

// Fallback decides with a Redis limiter and, while Redis is unreachable,
// with a local one, so that an outage of Redis degrades rate limiting
// instead of failing every request.
//
// When a Redis call fails, Fallback logs one warning for the outage, marks
// itself unhealthy and from then on decides every call locally, with the
// limit divided by the number of instances (each at least 1), without
// touching Redis, so requests do not wait on a dead server. A background
// goroutine PINGs Redis once per second; on the first answer Fallback logs
// the recovery, becomes healthy and uses Redis again. Buckets are not
// copied between the two limiters: see the package documentation for the
// resulting overshoot.
type Fallback struct {
	primary   *Redis
	local     *Memory
	instances int
	monitor   *redisprobe.Monitor
}

// NewFallback returns a limiter using primary, and local with each limit
// divided by instances (the number of wallet instances sharing primary; < 1
// counts as 1) while primary is down. log may be nil (slog.Default).
func NewFallback(primary *Redis, local *Memory, instances int, log *slog.Logger) *Fallback {
	instances = max(instances, 1)
	return &Fallback{
		primary:   primary,
		local:     local,
		instances: instances,
		monitor: redisprobe.New(redisprobe.Config{
			Ping:      func(ctx context.Context) error { return primary.Ping(ctx) },
			Log:       log,
			Component: "ratelimit",
			WhileDown: "limiting locally",
			WhenBack:  "limiting through redis again",
			DownAttrs: []any{"instances", instances},
		}),
	}
}

// Healthy reports whether decisions are currently made by Redis.
func (f *Fallback) Healthy() bool { return f.monitor.Healthy() }

// Allow implements Limiter. It returns an error only for an invalid limit or
// n, or when ctx was canceled while Redis was being asked.
func (f *Fallback) Allow(ctx context.Context, key string, l Limit, n int) (Decision, error) {
	if _, err := check(l, n); err != nil {
		return Decision{}, err
	}
	if f.monitor.Healthy() {
		d, err := f.primary.Allow(ctx, key, l, n)
		if err == nil {
			return d, nil
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return Decision{}, err // the caller gave up; Redis is not to blame
		}
		f.monitor.MarkDown(err)
	}
	return f.local.Allow(ctx, key, f.localLimit(l), n)
}

// localLimit divides l among the instances, keeping both numbers >= 1.
func (f *Fallback) localLimit(l Limit) Limit {
	b := l.burst()
	return Limit{
		Rate:   max(l.Rate/f.instances, 1),
		Period: l.Period,
		Burst:  max(b/f.instances, 1),
	}
}

// Close stops the background probe, if any. Allow keeps working: while Redis
// is down, locally.
func (f *Fallback) Close() error {
	f.monitor.Close()
	return nil
}
