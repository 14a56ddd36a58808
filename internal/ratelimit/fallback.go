package ratelimit

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// probeEvery is how often a Fallback whose Redis is down PINGs it.
const probeEvery = time.Second

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
	primary    *Redis
	local      *Memory
	instances  int
	log        *slog.Logger
	probeEvery time.Duration

	healthy atomic.Bool

	mu       sync.Mutex
	down     bool      // an outage is in progress
	since    time.Time // when it began
	probing  bool      // the probe goroutine is running
	closed   bool
	stop     chan struct{}
	stopOnce sync.Once
}

// NewFallback returns a limiter using primary, and local with each limit
// divided by instances (the number of wallet instances sharing primary; < 1
// counts as 1) while primary is down. log may be nil (slog.Default).
func NewFallback(primary *Redis, local *Memory, instances int, log *slog.Logger) *Fallback {
	if log == nil {
		log = slog.Default()
	}
	f := &Fallback{
		primary:    primary,
		local:      local,
		instances:  max(instances, 1),
		log:        log,
		probeEvery: probeEvery,
		stop:       make(chan struct{}),
	}
	f.healthy.Store(true)
	return f
}

// Healthy reports whether decisions are currently made by Redis.
func (f *Fallback) Healthy() bool { return f.healthy.Load() }

// Allow implements Limiter. It returns an error only for an invalid limit or
// n, or when ctx was canceled while Redis was being asked.
func (f *Fallback) Allow(ctx context.Context, key string, l Limit, n int) (Decision, error) {
	if _, err := check(l, n); err != nil {
		return Decision{}, err
	}
	if f.healthy.Load() {
		d, err := f.primary.Allow(ctx, key, l, n)
		if err == nil {
			return d, nil
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return Decision{}, err // the caller gave up; Redis is not to blame
		}
		f.markDown(err)
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

func (f *Fallback) markDown(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.healthy.Store(false)
	if f.down {
		return
	}
	f.down = true
	f.since = time.Now()
	f.log.Warn("ratelimit: redis unavailable, limiting locally until it returns",
		"error", err.Error(), "instances", f.instances)
	if !f.probing && !f.closed {
		f.probing = true
		go f.probe()
	}
}

// probe PINGs Redis every f.probeEvery until it answers or f is closed.
func (f *Fallback) probe() {
	tick := time.NewTicker(f.probeEvery)
	defer tick.Stop()
	for {
		select {
		case <-f.stop:
			f.mu.Lock()
			f.probing = false
			f.mu.Unlock()
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(f.probeEvery, time.Second))
		err := f.primary.Ping(ctx)
		cancel()
		if err != nil {
			continue
		}
		f.mu.Lock()
		f.probing = false
		f.down = false
		f.healthy.Store(true)
		f.log.Info("ratelimit: redis is back, limiting through redis again",
			"outage", time.Since(f.since).Round(time.Millisecond).String())
		f.mu.Unlock()
		return
	}
}

// Close stops the background probe, if any. Allow keeps working: while Redis
// is down, locally.
func (f *Fallback) Close() error {
	f.stopOnce.Do(func() {
		f.mu.Lock()
		f.closed = true
		f.mu.Unlock()
		close(f.stop)
	})
	return nil
}
