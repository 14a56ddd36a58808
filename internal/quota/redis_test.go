package quota

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/apikeywallet/apiwallet/internal/testenv"
)

// testPrefix returns a key prefix unique to t, deleting its keys when t ends.
func testPrefix(t *testing.T, c redis.UniversalClient) string {
	t.Helper()
	return testenv.RedisPrefix(t, c, "apiwallet-test:quota:")
}

// Three counters on three clients, as three wallet instances, share one
// count: on one server, a cluster and Sentinel.
func TestRedis(t *testing.T) {
	testenv.ForEachRedis(t, func(t *testing.T, url string, admin redis.UniversalClient) {
		testCounter(t, func(t *testing.T, store UsageStore) []Counter {
			prefix := testPrefix(t, admin)
			var cs []Counter
			for range 3 {
				cs = append(cs, NewRedis(testenv.RedisUniversal(t, url), prefix, store))
			}
			return cs
		})
	})
}

// The counter key is named by workspace and month and expires about 40
// days after it is made; the store is read only while it is missing.
func TestRedisKey(t *testing.T) {
	testenv.ForEachRedis(t, testRedisKey)
}

func testRedisKey(t *testing.T, _ string, c redis.UniversalClient) {
	ctx := context.Background()
	prefix := testPrefix(t, c)
	store := newFakeStore()
	now := time.Now()
	store.set("ws_k", now, 7)
	r := NewRedis(c, prefix, store)
	for range 3 {
		if _, err := r.Reserve(ctx, "ws_k", now, 100, true); err != nil {
			t.Fatal(err)
		}
	}
	key := prefix + "ws_k:" + MonthStart(now).Format("2006-01")
	if r.Key("ws_k", now) != key {
		t.Fatalf("key %q, want %q", r.Key("ws_k", now), key)
	}
	if v, err := c.Get(ctx, key).Int64(); err != nil || v != 10 {
		t.Fatalf("%s = %d, %v; want 7 from the store + 3", key, v, err)
	}
	ttl := c.TTL(ctx, key).Val()
	if ttl < 39*24*time.Hour || ttl > 40*24*time.Hour {
		t.Fatalf("TTL %v, want about 40 days", ttl)
	}
	if q := store.queries.Load(); q != 1 {
		t.Fatalf("%d store queries", q)
	}
	// A refund never takes a counter below zero nor creates one.
	if err := r.Settle(ctx, Reservation{WorkspaceID: "ws_gone", Period: MonthStart(now), backend: inRedis}, false); err != nil {
		t.Fatal(err)
	}
	if n := c.Exists(ctx, r.Key("ws_gone", now)).Val(); n != 0 {
		t.Fatal("a refund created a counter")
	}
}

// While Redis is unreachable, Fallback counts this instance's share
// locally; when Redis returns it counts there again, with the local calls
// added to the surviving counter.
func TestFallback(t *testing.T) {
	ctx := context.Background()
	opt := testenv.RedisOptions(t)
	admin := testenv.RedisClient(t, opt)
	prefix := testPrefix(t, admin)
	p := testenv.StartProxy(t, opt.Addr)
	popt := *opt
	popt.Addr = p.Addr()
	popt.MaxRetries = -1
	popt.DialTimeout, popt.ReadTimeout, popt.WriteTimeout = 200*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond
	client := redis.NewClient(&popt)
	defer client.Close()

	now := time.Now()
	store := newFakeStore()
	store.set("ws", now, 100)
	var logs testenv.LogBuffer
	f := newFallback(NewRedis(client, prefix, store), NewMemory(store, 3), slog.New(slog.NewTextHandler(&logs, nil)), 50*time.Millisecond)
	defer f.Close()

	for range 50 {
		if _, err := f.Reserve(ctx, "ws", now, 1000, true); err != nil {
			t.Fatal(err)
		}
	}
	key := prefix + "ws:" + MonthStart(now).Format("2006-01")
	if v := admin.Get(ctx, key).Val(); v != "150" {
		t.Fatalf("redis count %s, want 150", v)
	}

	p.Stop()
	// The store knows 500 calls (the others' records flushed meanwhile):
	// this instance may use (1000-500)/3 = 166 locally.
	store.set("ws", now, 500)
	got, _ := hammer(t, []Counter{f}, 10, "ws", now, 1000)
	if got != 166 {
		t.Fatalf("%d calls counted locally during the outage, want 166", got)
	}
	if f.Healthy() {
		t.Fatal("still healthy with redis unreachable")
	}
	if n, err := f.Used(ctx, "ws", now); err != nil || n != 666 {
		t.Fatalf("Used during the outage = %d, %v; want 500 + 166", n, err)
	}

	p.Start()
	deadline := time.Now().Add(5 * time.Second)
	for !f.Healthy() {
		if time.Now().After(deadline) {
			t.Fatalf("not healthy 5 s after redis returned; logs:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The reconciliation runs just after the flip.
	for admin.Get(ctx, key).Val() != "316" {
		if time.Now().After(deadline) {
			t.Fatalf("redis count %s, want 150 + 166 local calls", admin.Get(ctx, key).Val())
		}
		time.Sleep(10 * time.Millisecond)
	}
	res, err := f.Reserve(ctx, "ws", now, 1000, true)
	if err != nil || res.Used != 317 || res.backend != inRedis {
		t.Fatalf("after recovery: %+v %v", res, err)
	}
	if err := f.Settle(ctx, res, false); err != nil {
		t.Fatal(err)
	}
	if v := admin.Get(ctx, key).Val(); v != "316" {
		t.Fatalf("after a refund redis holds %s", v)
	}
	for _, want := range []string{"redis unavailable", "redis is back", "workspaces_reconciled=1"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
}

// A Sentinel failover: the counter follows the Sentinel to the promoted
// replica, which holds the count replicated before the switch.
func TestRedisSentinelFailover(t *testing.T) {
	ctx := context.Background()
	set := testenv.StartSentinelSet(t)
	c := testenv.RedisUniversal(t, set.URL())
	store := newFakeStore()
	now := time.Now()
	r := NewRedis(c, "apiwallet:quota:", store)
	for range 10 {
		if _, err := r.Reserve(ctx, "ws_f", now, 100, true); err != nil {
			t.Fatal(err)
		}
	}
	// The count has reached the replica before the switch (replication is
	// asynchronous: WAIT makes it so).
	if n, err := c.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT: %d replicas, %v", n, err)
	}
	set.Failover()
	var res Reservation
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if res, err = r.Reserve(ctx, "ws_f", now, 100, true); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reservation 10 s after the failover: %v", err)
		}
	}
	if res.Used != 11 {
		t.Fatalf("after the failover the count is %d, want 11", res.Used)
	}
	role, err := c.Do(ctx, "ROLE").Slice()
	if err != nil || role[0] != "master" {
		t.Fatalf("the client talks to ROLE %v, %v", role, err)
	}
	if m, _ := set.Master(ctx); m != set.ReplicaAddr {
		t.Fatalf("master %s, want the promoted replica %s", m, set.ReplicaAddr)
	}
	if q := store.queries.Load(); q != 1 {
		t.Fatalf("%d store queries: the promoted replica lost the counter", q)
	}
}
