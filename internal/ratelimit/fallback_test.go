package ratelimit

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet/internal/testenv"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
)

func TestMain(m *testing.M) {
	// go-redis logs every failed dial; the outage tests cause many on purpose.
	redis.SetLogger(&logging.VoidLogger{})
	os.Exit(m.Run())
}

// fastFailClient is a client that gives up on a dead server quickly.
func fastFailClient(t *testing.T, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{
		Addr:         addr,
		DialTimeout:  250 * time.Millisecond,
		ReadTimeout:  250 * time.Millisecond,
		WriteTimeout: 250 * time.Millisecond,
		MaxRetries:   -1,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestFallbackBehaviour(t *testing.T) {
	c := testRedisClient(t)
	testLimiter(t, func(t *testing.T) Limiter {
		f := NewFallback(NewRedis(c, testPrefix(t, c)), NewMemory(nil), 3, slog.New(slog.DiscardHandler))
		t.Cleanup(func() {
			if !f.Healthy() {
				t.Error("Fallback became unhealthy with Redis up")
			}
			f.Close()
		})
		return f
	})
}

func TestFallbackOutageAndRecovery(t *testing.T) {
	srv := testenv.StartRedis(t)
	client := fastFailClient(t, srv.Addr())
	logs := &testenv.LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	f := NewFallback(NewRedis(client, "rl:"), NewMemory(nil), 3, log)
	defer f.Close()
	ctx := context.Background()
	lim := Limit{Rate: 9, Period: time.Minute} // locally: 3 per minute, burst 3

	// Redis up: Redis decides.
	d, err := f.Allow(ctx, "k", lim, 1)
	if err != nil || !d.Allowed || d.Limit != 9 || d.Remaining != 8 {
		t.Fatalf("with Redis up: %+v, %v; want allowed by Redis, 8 remaining of 9", d, err)
	}
	if n, _ := client.Exists(ctx, "rl:k").Result(); n != 1 {
		t.Fatal("Redis holds no bucket for k")
	}
	if !f.Healthy() {
		t.Fatal("unhealthy with Redis up")
	}

	// Redis down: the local limiter decides with 9/3 = 3, without errors.
	srv.Stop()
	allowed := 0
	for i := range 10 {
		d, err := f.Allow(ctx, "k", lim, 1)
		if err != nil {
			t.Fatalf("call %d during the outage: %v", i, err)
		}
		if d.Limit != 3 {
			t.Fatalf("call %d during the outage: %+v, want the local limit 3", i, d)
		}
		if d.Allowed {
			allowed++
		}
	}
	if allowed != 3 {
		t.Fatalf("allowed %d during the outage, want 9/3 = 3", allowed)
	}
	if f.Healthy() {
		t.Fatal("Healthy() with Redis down")
	}
	// Other keys get their own local buckets; a bad limit is still an error.
	if d, _ := f.Allow(ctx, "other", lim, 3); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("other key during the outage: %+v", d)
	}
	if _, err := f.Allow(ctx, "k", Limit{}, 1); !errors.Is(err, ErrInvalidLimit) {
		t.Fatalf("invalid limit during the outage: %v", err)
	}
	time.Sleep(1500 * time.Millisecond) // let a failing probe or two run
	if n := logs.Count("level=WARN"); n != 1 {
		t.Fatalf("%d warnings for one outage, want 1:\n%s", n, logs)
	}

	// Redis back on the same port: healthy again within 10s, by itself.
	srv.Start()
	deadline := time.Now().Add(10 * time.Second)
	for !f.Healthy() {
		if time.Now().After(deadline) {
			t.Fatalf("not healthy 10s after Redis returned; logs:\n%s", logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := logs.Count("redis is back"); n != 1 {
		t.Fatalf("%d recovery messages, want 1:\n%s", n, logs)
	}
	// The restarted Redis is empty: Redis decides again, with the full limit.
	d, err = f.Allow(ctx, "k", lim, 1)
	if err != nil || !d.Allowed || d.Limit != 9 || d.Remaining != 8 {
		t.Fatalf("after recovery: %+v, %v; want allowed by Redis, 8 remaining of 9", d, err)
	}
	t.Logf("logs:\n%s", logs)
}

func TestFallbackStartsWithRedisDown(t *testing.T) {
	// Nothing listens on a port just released.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	logs := &testenv.LogBuffer{}
	f := NewFallback(NewRedis(fastFailClient(t, addr), "rl:"), NewMemory(nil), 0, slog.New(slog.NewTextHandler(logs, nil)))
	defer f.Close()
	lim := Limit{Rate: 2, Period: time.Hour}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := f.Allow(context.Background(), "k", lim, 1); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// instances 0 counts as 1: the whole limit, locally.
	if d, _ := f.Allow(context.Background(), "fresh", lim, 2); !d.Allowed || d.Limit != 2 {
		t.Fatalf("local decision: %+v, want allowed with limit 2", d)
	}
	if f.Healthy() {
		t.Fatal("Healthy() with no Redis")
	}
	if n := logs.Count("level=WARN"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, logs)
	}
}

func TestFallbackLocalLimitNeverZero(t *testing.T) {
	f := NewFallback(nil, NewMemory(nil), 10, nil)
	for _, c := range []struct{ in, want Limit }{
		{Limit{Rate: 100, Period: time.Minute}, Limit{Rate: 10, Period: time.Minute, Burst: 10}},
		{Limit{Rate: 100, Period: time.Minute, Burst: 5}, Limit{Rate: 10, Period: time.Minute, Burst: 1}},
		{Limit{Rate: 3, Period: time.Second}, Limit{Rate: 1, Period: time.Second, Burst: 1}},
	} {
		if got := f.localLimit(c.in); got != c.want {
			t.Errorf("localLimit(%+v) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestFallbackCanceledContextIsNotAnOutage(t *testing.T) {
	c := testRedisClient(t)
	f := NewFallback(NewRedis(c, testPrefix(t, c)), NewMemory(nil), 3, slog.New(slog.DiscardHandler))
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Allow(ctx, "k", PerMinute(5), 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Allow with a canceled context: %v, want context.Canceled", err)
	}
	if !f.Healthy() {
		t.Fatal("a canceled caller marked Redis unhealthy")
	}
}

func TestFallbackOnTimeout(t *testing.T) {
	// A server that accepts connections and never answers: every call times
	// out (ReadTimeout 250ms) instead of being refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})

	logs := &testenv.LogBuffer{}
	f := NewFallback(NewRedis(fastFailClient(t, ln.Addr().String()), "rl:"), NewMemory(nil), 2, slog.New(slog.NewTextHandler(logs, nil)))
	defer f.Close()
	lim := Limit{Rate: 4, Period: time.Hour}
	start := time.Now()
	d, err := f.Allow(context.Background(), "k", lim, 1)
	if err != nil || !d.Allowed || d.Limit != 2 || d.Remaining != 1 {
		t.Fatalf("on timeout: %+v, %v; want allowed locally, 1 of 2 remaining", d, err)
	}
	if f.Healthy() {
		t.Fatal("Healthy() with a server that times out")
	}
	// Once down, calls no longer wait for Redis.
	first := time.Since(start)
	start = time.Now()
	if d, _ := f.Allow(context.Background(), "k", lim, 1); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("second call: %+v", d)
	}
	if second := time.Since(start); second > 50*time.Millisecond {
		t.Fatalf("a call during the outage took %v (the first took %v), want no wait on Redis", second, first)
	}
	if !strings.Contains(logs.String(), "timeout") {
		t.Fatalf("the warning does not say what failed:\n%s", logs)
	}
}
