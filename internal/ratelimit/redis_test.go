package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet/internal/redisconn"
	"github.com/apikeywallet/apiwallet/internal/testenv"
	"github.com/redis/go-redis/v9"
)

// testRedisClient returns a client for APIWALLET_TEST_REDIS_URL (skipping, or
// failing under CI=true, when it is unset), closed when t ends.
func testRedisClient(t *testing.T) *redis.Client {
	t.Helper()
	return testenv.RedisClient(t, testenv.RedisOptions(t))
}

// testPrefix returns a key prefix unique to t and deletes every key under it
// when t ends.
func testPrefix(t *testing.T, c redis.UniversalClient) string {
	t.Helper()
	return testenv.RedisPrefix(t, c, "apiwallet-test:ratelimit:")
}

// The conformance tests of every limiter, on one server, a cluster and
// Sentinel.
func TestRedisBehaviour(t *testing.T) {
	testenv.ForEachRedis(t, func(t *testing.T, _ string, c redis.UniversalClient) {
		testLimiter(t, func(t *testing.T) Limiter { return NewRedis(c, testPrefix(t, c)) })
	})
}

func TestRedisKeyExpiresAtReset(t *testing.T) {
	testenv.ForEachRedis(t, testRedisKeyExpiresAtReset)
}

func testRedisKeyExpiresAtReset(t *testing.T, _ string, c redis.UniversalClient) {
	prefix := testPrefix(t, c)
	l := NewRedis(c, prefix)
	ctx := context.Background()
	lim := Limit{Rate: 10, Period: time.Second, Burst: 2} // T = 100ms

	d, err := l.Allow(ctx, "k", lim, 2)
	if err != nil || !d.Allowed {
		t.Fatalf("Allow: %+v, %v", d, err)
	}
	ttl, err := c.PTTL(ctx, prefix+"k").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > d.ResetAfter+time.Millisecond || d.ResetAfter > 200*time.Millisecond {
		t.Fatalf("PTTL %v with ResetAfter %v, want 0 < PTTL <= ResetAfter (+1ms rounding) <= 200ms", ttl, d.ResetAfter)
	}
	// A denied request or a peek writes nothing.
	if d, _ := l.Allow(ctx, "k", lim, 1); d.Allowed {
		t.Fatalf("allowed past the burst: %+v", d)
	}
	if _, err := l.Allow(ctx, "peek", lim, 0); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Exists(ctx, prefix+"peek").Result(); n != 0 {
		t.Fatal("a peek created a key")
	}
	time.Sleep(ttl + 50*time.Millisecond)
	if n, _ := c.Exists(ctx, prefix+"k").Result(); n != 0 {
		t.Fatal("the bucket key outlived its reset time")
	}
}

func TestRedisScriptReloadedAfterFlush(t *testing.T) {
	testenv.ForEachRedis(t, testRedisScriptReloadedAfterFlush)
}

// On a cluster SCRIPT FLUSH empties every master's script cache.
func testRedisScriptReloadedAfterFlush(t *testing.T, _ string, c redis.UniversalClient) {
	l := NewRedis(c, testPrefix(t, c))
	ctx := context.Background()
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if d, err := l.Allow(ctx, "k", PerMinute(5), 1); err != nil || !d.Allowed {
		t.Fatalf("Allow after SCRIPT FLUSH: %+v, %v", d, err)
	}
}

// Three wallet instances, each with its own client, 50 goroutines each, on
// one key: exactly Rate allowed in all.
func TestRedisInstancesShareOneLimit(t *testing.T) {
	testenv.ForEachRedis(t, testRedisInstancesShareOneLimit)
}

func testRedisInstancesShareOneLimit(t *testing.T, url string, first redis.UniversalClient) {
	prefix := testPrefix(t, first)
	limiters := []*Redis{NewRedis(first, prefix)}
	for range 2 {
		limiters = append(limiters, NewRedis(testenv.RedisUniversal(t, url), prefix))
	}
	ctx := context.Background()
	lim := Limit{Rate: 100, Period: time.Minute}
	// Load the script first so the hammering measures decisions only.
	if _, err := limiters[0].Allow(ctx, "warmup", lim, 0); err != nil {
		t.Fatal(err)
	}

	var allowed atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, l := range limiters {
		for range 50 {
			wg.Go(func() {
				<-start
				for range 3 {
					d, err := l.Allow(ctx, "shared", lim, 1)
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
	}
	began := time.Now()
	close(start)
	wg.Wait()
	checkExactly100(t, allowed.Load(), time.Since(began))
}

// On a cluster the buckets of different keys live on different masters,
// each decided by its own node: the cluster tests above really span
// nodes, and no script needs keys from two of them.
func TestRedisClusterSpreadsBuckets(t *testing.T) {
	c := testenv.RedisUniversal(t, testenv.RedisClusterURL(t))
	prefix := testPrefix(t, c)
	l := NewRedis(c, prefix)
	ctx := context.Background()
	for i := range 30 {
		if d, err := l.Allow(ctx, fmt.Sprintf("ws_%d", i), PerMinute(1), 1); err != nil || !d.Allowed {
			t.Fatalf("Allow ws_%d: %+v, %v", i, d, err)
		}
		if d, err := l.Allow(ctx, fmt.Sprintf("ws_%d", i), PerMinute(1), 1); err != nil || d.Allowed {
			t.Fatalf("second Allow ws_%d: %+v, %v", i, d, err)
		}
	}
	var mu sync.Mutex
	perNode := map[string]int{}
	err := redisconn.ForEachNode(ctx, c, func(ctx context.Context, n redis.UniversalClient) error {
		keys, err := n.Keys(ctx, prefix+"*").Result()
		mu.Lock()
		perNode[n.(*redis.Client).Options().Addr] = len(keys)
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, k := range perNode {
		total += k
	}
	t.Logf("30 buckets over the masters: %v", perNode)
	if len(perNode) < 3 || total != 30 {
		t.Fatalf("buckets per master %v, want 30 over at least 3 masters", perNode)
	}
	for addr, k := range perNode {
		if k == 0 {
			t.Fatalf("no bucket on master %s: %v", addr, perNode)
		}
	}
}
