package redisprobe

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet/internal/testenv"
)

// fakeRedis answers PING when up.
type fakeRedis struct {
	up    atomic.Bool
	pings atomic.Int64
}

func (r *fakeRedis) Ping(context.Context) error {
	r.pings.Add(1)
	if r.up.Load() {
		return nil
	}
	return errors.New("connection refused")
}

func newMonitor(r *fakeRedis, logs *testenv.LogBuffer, onRecover func() []any) *Monitor {
	return New(Config{
		Ping:      r.Ping,
		Interval:  10 * time.Millisecond,
		Log:       slog.New(slog.NewTextHandler(logs, nil)),
		Component: "test",
		WhileDown: "working locally",
		WhenBack:  "working through redis again",
		DownAttrs: []any{"instances", 3},
		OnRecover: onRecover,
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 5 s", what)
		}
	}
}

// One outage: one warning however many calls fail, probes until Redis
// answers, then healthy, the hook once and one recovery message.
func TestOutageAndRecovery(t *testing.T) {
	r := &fakeRedis{}
	logs := &testenv.LogBuffer{}
	var recovered atomic.Int64
	m := newMonitor(r, logs, func() []any {
		if m := recovered.Add(1); m != 1 {
			t.Errorf("hook ran %d times", m)
		}
		return []any{"reconciled", 7}
	})
	defer m.Close()
	if !m.Healthy() {
		t.Fatal("a new Monitor is not healthy")
	}
	for range 20 {
		m.MarkDown(errors.New("dial tcp: connection refused"))
	}
	if m.Healthy() {
		t.Fatal("healthy after MarkDown")
	}
	waitFor(t, "a few failing probes", func() bool { return r.pings.Load() >= 3 })
	if m.Healthy() || recovered.Load() != 0 {
		t.Fatal("recovered while Redis is down")
	}
	r.up.Store(true)
	waitFor(t, "healthy once Redis answers", m.Healthy)
	waitFor(t, "the recovery message", func() bool { return logs.Count("level=INFO") == 1 })
	for _, want := range []string{
		`level=WARN msg="test: redis unavailable, working locally until it returns" error="dial tcp: connection refused" instances=3`,
		`level=INFO msg="test: redis is back, working through redis again" outage=`,
		` reconciled=7`,
	} {
		if logs.Count(want) != 1 {
			t.Errorf("logs lack %q once:\n%s", want, logs)
		}
	}
	if n := logs.Count("level=WARN"); n != 1 {
		t.Fatalf("%d warnings for one outage, want 1:\n%s", n, logs)
	}
	// Healthy again, the probe has stopped.
	n := r.pings.Load()
	time.Sleep(50 * time.Millisecond)
	if r.pings.Load() != n {
		t.Fatal("still probing after the recovery")
	}

	// A second outage is a new one.
	r.up.Store(false)
	m.MarkDown(errors.New("again"))
	if m.Healthy() || logs.Count("level=WARN") != 2 {
		t.Fatalf("second outage not marked:\n%s", logs)
	}
}

// Close stops the probe; MarkDown after Close marks the outage but starts
// no probe.
func TestClose(t *testing.T) {
	r := &fakeRedis{}
	m := newMonitor(r, &testenv.LogBuffer{}, nil)
	m.MarkDown(errors.New("down"))
	waitFor(t, "a probe", func() bool { return r.pings.Load() >= 1 })
	m.Close()
	m.Close() // twice is fine
	time.Sleep(30 * time.Millisecond)
	n := r.pings.Load()
	r.up.Store(true)
	time.Sleep(50 * time.Millisecond)
	if r.pings.Load() != n || m.Healthy() {
		t.Fatalf("probed after Close (%d, then %d pings); healthy %v", n, r.pings.Load(), m.Healthy())
	}

	closed := newMonitor(r, &testenv.LogBuffer{}, nil)
	closed.Close()
	r.up.Store(false)
	closed.MarkDown(errors.New("down"))
	time.Sleep(50 * time.Millisecond)
	if closed.Healthy() || r.pings.Load() != n {
		t.Fatal("a closed Monitor probed")
	}
}

func TestDefaults(t *testing.T) {
	m := New(Config{Ping: (&fakeRedis{}).Ping, Component: "test"})
	defer m.Close()
	if m.cfg.Interval != DefaultInterval || m.cfg.Log == nil {
		t.Fatalf("defaults: interval %v, log %v", m.cfg.Interval, m.cfg.Log)
	}
}
