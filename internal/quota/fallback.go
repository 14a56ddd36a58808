package quota

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

// Fallback counts in Redis and, while Redis is unreachable, in a local
// Memory made with the number of instances (NewMemory), like
// ratelimit.Fallback does for rate limits: an outage of Redis degrades
// quotas to per-instance shares instead of failing every call.
//
// When a Redis call fails, Fallback logs one warning for the outage, marks
// itself unhealthy and from then on counts locally without touching Redis.
// The local counter starts each workspace's month from the usage store
// (what every instance has flushed so far) and lets this instance use
// floor(remaining/instances) of it. A background goroutine PINGs Redis
// once per second; on the first answer Fallback logs the recovery, uses
// Redis again, and adds the calls it counted locally to the Redis counters
// that still exist (a counter Redis lost is initialised again from the
// usage store, which holds those calls' records). See the package
// documentation for the worst-case overshoot.
type Fallback struct {
	primary    *Redis
	local      *Memory
	log        *slog.Logger
	probeEvery time.Duration

	healthy atomic.Bool

	mu       sync.Mutex
	down     bool
	since    time.Time
	probing  bool
	closed   bool
	stop     chan struct{}
	stopOnce sync.Once
}

// NewFallback returns a counter using primary, and local while primary is
// down. log may be nil (slog.Default).
func NewFallback(primary *Redis, local *Memory, log *slog.Logger) *Fallback {
	if log == nil {
		log = slog.Default()
	}
	f := &Fallback{primary: primary, local: local, log: log, probeEvery: probeEvery, stop: make(chan struct{})}
	f.healthy.Store(true)
	return f
}

// Healthy reports whether Redis is counting.
func (f *Fallback) Healthy() bool { return f.healthy.Load() }

// Reserve implements Counter.
func (f *Fallback) Reserve(ctx context.Context, workspaceID string, period time.Time, included int64, hardStop bool) (Reservation, error) {
	if f.healthy.Load() {
		res, err := f.primary.Reserve(ctx, workspaceID, period, included, hardStop)
		if !f.failed(ctx, err) {
			return res, err
		}
	}
	return f.local.Reserve(ctx, workspaceID, period, included, hardStop)
}

// failed reports whether err is Redis failing (and then marks it down).
func (f *Fallback) failed(ctx context.Context, err error) bool {
	if err == nil || !IsRedisError(err) {
		return false
	}
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return false // the caller gave up; Redis is not to blame
	}
	f.markDown(err)
	return true
}

// Settle implements Counter, refunding a reservation where it was counted.
// A refund Redis cannot take is logged and dropped: the count then errs on
// the strict side by one.
func (f *Fallback) Settle(ctx context.Context, res Reservation, happened bool) error {
	switch {
	case happened:
		return nil
	case res.backend == inMemory:
		return f.local.Settle(ctx, res, false)
	case res.backend == inRedis:
		err := f.primary.Settle(ctx, res, false)
		if f.failed(ctx, err) {
			f.log.Warn("quota: refund lost while redis is unavailable", "workspace_id", res.WorkspaceID)
			return nil
		}
		return err
	}
	return nil
}

// Used implements Counter.
func (f *Fallback) Used(ctx context.Context, workspaceID string, period time.Time) (int64, error) {
	if f.healthy.Load() {
		n, err := f.primary.Used(ctx, workspaceID, period)
		if !f.failed(ctx, err) {
			return n, err
		}
	}
	return f.local.Used(ctx, workspaceID, period)
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
	f.log.Warn("quota: redis unavailable, counting quotas locally until it returns",
		"error", err.Error(), "instances", f.local.instances)
	if !f.probing && !f.closed {
		f.probing = true
		go f.probe()
	}
}

// probe PINGs Redis every f.probeEvery until it answers or f is closed,
// then hands the local counts to Redis.
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
		outage := time.Since(f.since).Round(time.Millisecond)
		f.mu.Unlock()
		// New reservations go to Redis from here; the local counts are
		// added to it once, and the local counter starts afresh from the
		// store at the next outage.
		added, lost := 0, 0
		ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
		for _, c := range f.local.drain() {
			if err := f.primary.add(ctx, c.workspaceID, c.period, c.n); err != nil {
				lost++
				continue
			}
			added++
		}
		cancel()
		f.log.Info("quota: redis is back, counting quotas in redis again",
			"outage", outage.String(), "workspaces_reconciled", added, "workspaces_not_reconciled", lost)
		return
	}
}

// Close stops the background probe, if any.
func (f *Fallback) Close() error {
	f.stopOnce.Do(func() {
		f.mu.Lock()
		f.closed = true
		f.mu.Unlock()
		close(f.stop)
	})
	return nil
}
