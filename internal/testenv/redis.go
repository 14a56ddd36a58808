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
// deletes every key under it from c when t ends.
func RedisPrefix(t testing.TB, c redis.UniversalClient, base string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := base + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("clean up %s*: %v", prefix, err)
		}
	})
	return prefix
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
