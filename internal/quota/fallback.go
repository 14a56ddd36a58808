package quota

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/apikeywallet/apiwallet/internal/redisprobe"
)

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
	primary *Redis
	local   *Memory
	log     *slog.Logger
	monitor *redisprobe.Monitor
}

// NewFallback returns a counter using primary, and local while primary is
// down. log may be nil (slog.Default).
func NewFallback(primary *Redis, local *Memory, log *slog.Logger) *Fallback {
	return newFallback(primary, local, log, redisprobe.DefaultInterval)
}

// newFallback is NewFallback probing a Redis that is down every probeEvery.
func newFallback(primary *Redis, local *Memory, log *slog.Logger, probeEvery time.Duration) *Fallback {
	if log == nil {
		log = slog.Default()
	}
	f := &Fallback{primary: primary, local: local, log: log}
	f.monitor = redisprobe.New(redisprobe.Config{
		Ping:      func(ctx context.Context) error { return primary.Ping(ctx) },
		Interval:  probeEvery,
		Log:       log,
		Component: "quota",
		WhileDown: "counting quotas locally",
		WhenBack:  "counting quotas in redis again",
		DownAttrs: []any{"instances", local.instances},
		OnRecover: f.reconcile,
	})
	return f
}

// Healthy reports whether Redis is counting.
func (f *Fallback) Healthy() bool { return f.monitor.Healthy() }

// Reserve implements Counter.
func (f *Fallback) Reserve(ctx context.Context, workspaceID string, period time.Time, included int64, hardStop bool) (Reservation, error) {
	if f.monitor.Healthy() {
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
	f.monitor.MarkDown(err)
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
	if f.monitor.Healthy() {
		n, err := f.primary.Used(ctx, workspaceID, period)
		if !f.failed(ctx, err) {
			return n, err
		}
	}
	return f.local.Used(ctx, workspaceID, period)
}

// reconcile adds the calls counted locally during an outage to the Redis
// counters, once, when Redis is back (the local counter starts afresh from
// the store at the next outage), and returns the recovery log's attributes.
func (f *Fallback) reconcile() []any {
	added, lost := 0, 0
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range f.local.drain() {
		if err := f.primary.add(ctx, c.workspaceID, c.period, c.n); err != nil {
			lost++
			continue
		}
		added++
	}
	return []any{"workspaces_reconciled", added, "workspaces_not_reconciled", lost}
}

// Close stops the background probe, if any.
func (f *Fallback) Close() error {
	f.monitor.Close()
	return nil
}
