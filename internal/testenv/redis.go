package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/apikeywallet/apiwallet/internal/redisconn"
)

// RedisOptions returns APIWALLET_TEST_REDIS_URL parsed, skipping t (failing
// it under CI=true) when the variable is unset.
func RedisOptions(t testing.TB) *redis.Options {
	t.Helper()
	u := Require(t, RedisEnv)
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("parse %s: %v", RedisEnv, err)
	}
	return opt
}

// RedisClient returns a client for opt that answered a PING, closed when t
// ends.
func RedisClient(t testing.TB, opt *redis.Options) *redis.Client {
	t.Helper()
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis at %s: %v", opt.Addr, err)
	}
	return c
}

// RedisPrefix returns a key prefix unique to t, beginning with base, and
// deletes every key under it from c when t ends (from every master, when
// c is a cluster client).
func RedisPrefix(t testing.TB, c redis.UniversalClient, base string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := base + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := redisconn.ForEachNode(ctx, c, func(ctx context.Context, n redis.UniversalClient) error {
			iter := n.Scan(ctx, 0, prefix+"*", 100).Iterator()
			for iter.Next(ctx) {
				n.Del(ctx, iter.Val())
			}
			return iter.Err()
		})
		if err != nil {
			t.Errorf("clean up %s*: %v", prefix, err)
		}
	})
	return prefix
}

// RedisClusterEnv names the variable holding a redis+cluster:// URL of a
// Redis Cluster (.ci/setup/10-redis-cluster.sh starts one).
const RedisClusterEnv = "APIWALLET_TEST_REDIS_CLUSTER_URL"

// RedisSentinelEnv names the variable holding a redis+sentinel:// URL of a
// master watched by Sentinel.
const RedisSentinelEnv = "APIWALLET_TEST_REDIS_SENTINEL_URL"

// RedisClusterURL returns APIWALLET_TEST_REDIS_CLUSTER_URL, skipping t
// (failing it under CI=true) when it is unset.
func RedisClusterURL(t testing.TB) string {
	t.Helper()
	return Require(t, RedisClusterEnv)
}

// RedisSentinelURL returns APIWALLET_TEST_REDIS_SENTINEL_URL, skipping t
// (failing it under CI=true) when it is unset.
func RedisSentinelURL(t testing.TB) string {
	t.Helper()
	return Require(t, RedisSentinelEnv)
}

// RedisDeployment is one kind of Redis a REDIS_URL may name, and the
// variable naming the test server of that kind.
type RedisDeployment struct{ Name, Env string }

// RedisDeployments are the kinds every Redis conformance test runs on:
// one server, a cluster and a master behind Sentinel.
var RedisDeployments = []RedisDeployment{
	{"single", RedisEnv},
	{"cluster", RedisClusterEnv},
	{"sentinel", RedisSentinelEnv},
}

// ForEachRedis runs fn as a subtest on each of RedisDeployments, with a
// client of its own (closed when the subtest ends) and the URL it was made
// from. A deployment whose variable is unset skips (fails under CI=true).
func ForEachRedis(t *testing.T, fn func(t *testing.T, url string, c redis.UniversalClient)) {
	t.Helper()
	for _, d := range RedisDeployments {
		t.Run(d.Name, func(t *testing.T) {
			u := Require(t, d.Env)
			fn(t, u, RedisUniversal(t, u))
		})
	}
}

// RedisUniversal returns a client for any REDIS_URL form that answered a
// PING, closed when t ends.
func RedisUniversal(t testing.TB, rawURL string) redis.UniversalClient {
	t.Helper()
	opt, err := redisconn.Parse(rawURL)
	if err != nil {
		t.Fatalf("parse redis URL: %v", err)
	}
	c := opt.NewClient()
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis at %v: %v", opt.Addrs(), err)
	}
	return c
}

// RedisServer is a redis-server process of a test's own, in memory only:
// stopping it loses every key, as a crash of a Redis without persistence
// does.
type RedisServer struct {
	t    testing.TB
	bin  string
	port int
	cmd  *exec.Cmd
}

// StartRedis starts a redis-server on a free loopback port, stopped when t
// ends. It skips t (fails it under CI=true) when redis-server is not on
// PATH.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if CI() {
			t.Fatal("redis-server is not on PATH but CI=true: this test must run in CI")
		}
		t.Skip("redis-server not on PATH; skipping")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &RedisServer{t: t, bin: bin, port: port}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Addr returns the server's host:port.
func (s *RedisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL returns the URL of the server's database 0.
func (s *RedisServer) URL() string { return "redis://" + s.Addr() + "/0" }

// Start starts the server again after Stop, empty, on the same port, and
// returns once it answers.
func (s *RedisServer) Start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(s.port),
		"--save", "", "--appendonly", "no", "--daemonize", "no")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.Stop()
			s.t.Fatalf("redis-server on %s did not answer: %v", s.Addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server at once, as a crash would, and waits for it to
// exit. It does nothing when the server is not running.
func (s *RedisServer) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}
