// Package redisprobe follows outages of a Redis that a component falls back
// from: ratelimit.Fallback and quota.Fallback work locally while their
// Redis is unreachable and use it again once it answers.
//
// A Monitor starts healthy. The component calls MarkDown when a Redis call
// fails; the first call of an outage logs one warning and starts a
// goroutine that PINGs Redis every interval. On the first answer the
// Monitor becomes healthy, runs the component's recovery hook and logs the
// recovery with how long the outage lasted.
package redisprobe

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often a Monitor PINGs a Redis that is down when
// Config.Interval is zero.
const DefaultInterval = time.Second

// Config describes a Monitor. Ping and Component are required.
type Config struct {
	// Ping checks that Redis answers.
	Ping func(context.Context) error
	// Interval is how often Ping is tried during an outage
	// (DefaultInterval when zero or negative). Each try may take
	// max(Interval, 1s).
	Interval time.Duration
	// Log receives the outage and recovery messages (slog.Default when
	// nil).
	Log *slog.Logger

	// The log messages read
	//   "<Component>: redis unavailable, <WhileDown> until it returns"
	//   "<Component>: redis is back, <WhenBack>"
	// for example Component "ratelimit", WhileDown "limiting locally",
	// WhenBack "limiting through redis again".
	Component, WhileDown, WhenBack string
	// DownAttrs are added to the outage warning, after its "error".
	DownAttrs []any

	// OnRecover, if set, runs once per outage just after the Monitor
	// became healthy again and before the recovery is logged; what it
	// returns is added to the recovery message, after its "outage".
	OnRecover func() []any
}

// Monitor tracks whether Redis is up. Its methods are safe for concurrent
// use.
type Monitor struct {
	cfg     Config
	healthy atomic.Bool

	mu       sync.Mutex
	down     bool      // an outage is in progress
	since    time.Time // when it began
	probing  bool      // the probe goroutine is running
	closed   bool
	stop     chan struct{}
	stopOnce sync.Once
}

// New returns a healthy Monitor.
func New(cfg Config) *Monitor {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	m := &Monitor{cfg: cfg, stop: make(chan struct{})}
	m.healthy.Store(true)
	return m
}

// Healthy reports whether Redis is taken to be up: no outage has been
// marked, or Redis answered since.
func (m *Monitor) Healthy() bool { return m.healthy.Load() }

// MarkDown records that a Redis call failed with err. The first call of an
// outage logs it and, unless m is closed, starts probing Redis.
func (m *Monitor) MarkDown(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.healthy.Store(false)
	if m.down {
		return
	}
	m.down = true
	m.since = time.Now()
	m.cfg.Log.Warn(m.cfg.Component+": redis unavailable, "+m.cfg.WhileDown+" until it returns",
		append([]any{"error", err.Error()}, m.cfg.DownAttrs...)...)
	if !m.probing && !m.closed {
		m.probing = true
		go m.probe()
	}
}

// probe PINGs Redis every interval until it answers or m is closed, then
// ends the outage.
func (m *Monitor) probe() {
	tick := time.NewTicker(m.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-m.stop:
			m.mu.Lock()
			m.probing = false
			m.mu.Unlock()
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(m.cfg.Interval, time.Second))
		err := m.cfg.Ping(ctx)
		cancel()
		if err != nil {
			continue
		}
		m.mu.Lock()
		m.probing = false
		m.down = false
		m.healthy.Store(true)
		outage := time.Since(m.since).Round(time.Millisecond)
		m.mu.Unlock()
		attrs := []any{"outage", outage.String()}
		if m.cfg.OnRecover != nil {
			attrs = append(attrs, m.cfg.OnRecover()...)
		}
		m.cfg.Log.Info(m.cfg.Component+": redis is back, "+m.cfg.WhenBack, attrs...)
		return
	}
}

// Close stops the probe goroutine, if any, and keeps MarkDown from starting
// another: after Close, an outage lasts until the component is gone.
func (m *Monitor) Close() {
	m.stopOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		close(m.stop)
	})
}
