package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelSet is a master, its replica and one Sentinel (quorum 1)
// watching them as "apiwallet", all of a test's own, in memory only: a
// test may fail the master over without disturbing any other test.
type SentinelSet struct {
	t                       testing.TB
	MasterAddr, ReplicaAddr string
	SentinelAddr            string
	sentinel                *redis.SentinelClient
}

// StartSentinelSet starts the three servers on free loopback ports,
// stopped when t ends, and returns once the Sentinel knows the master and
// its replica. It skips t (fails it under CI=true) without redis-server.
func StartSentinelSet(t testing.TB) *SentinelSet {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if CI() {
			t.Fatal("redis-server is not on PATH but CI=true: this test must run in CI")
		}
		t.Skip("redis-server not on PATH; skipping")
	}
	dir := t.TempDir()
	start := func(name string, args ...string) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		args = append(args, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
			"--dir", dir, "--daemonize", "no")
		cmd := exec.Command(bin, args...)
		log, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); log.Close() })
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		waitFor(t, name+" answers", func(ctx context.Context) error {
			c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
			defer c.Close()
			return c.Ping(ctx).Err()
		})
		return addr
	}
	s := &SentinelSet{t: t}
	s.MasterAddr = start("master")
	mhost, mport, _ := net.SplitHostPort(s.MasterAddr)
	s.ReplicaAddr = start("replica", "--replicaof", mhost, mport)
	conf := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(
		"sentinel monitor apiwallet %s %s 1\nsentinel down-after-milliseconds apiwallet 5000\nsentinel failover-timeout apiwallet 10000\n",
		mhost, mport)), 0o600); err != nil {
		t.Fatal(err)
	}
	s.SentinelAddr = start("sentinel", conf, "--sentinel")
	s.sentinel = redis.NewSentinelClient(&redis.Options{Addr: s.SentinelAddr})
	t.Cleanup(func() { s.sentinel.Close() })
	waitFor(t, "the sentinel knows the replica", func(ctx context.Context) error {
		rs, err := s.sentinel.Replicas(ctx, "apiwallet").Result()
		if err != nil {
			return err
		}
		if len(rs) != 1 || rs[0]["flags"] != "slave" || rs[0]["master-link-status"] != "ok" {
			return fmt.Errorf("replicas %v", rs)
		}
		return nil
	})
	return s
}

// URL returns the redis+sentinel:// URL of the set's master, database 0.
func (s *SentinelSet) URL() string { return "redis+sentinel://" + s.SentinelAddr + "/apiwallet/0" }

// Master returns the address the Sentinel gives for the master now.
func (s *SentinelSet) Master(ctx context.Context) (string, error) {
	hp, err := s.sentinel.GetMasterAddrByName(ctx, "apiwallet").Result()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// Failover makes the Sentinel promote the replica and returns once the
// Sentinel names it as the master and it answers as one.
func (s *SentinelSet) Failover() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.sentinel.Failover(ctx, "apiwallet").Err(); err != nil {
		s.t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	waitFor(s.t, "the replica is the master", func(ctx context.Context) error {
		m, err := s.Master(ctx)
		if err != nil || m != s.ReplicaAddr {
			return fmt.Errorf("master %s, %v", m, err)
		}
		c := redis.NewClient(&redis.Options{Addr: s.ReplicaAddr, MaxRetries: -1})
		defer c.Close()
		role, err := c.Do(ctx, "ROLE").Slice()
		if err != nil || len(role) == 0 || role[0] != "master" {
			return fmt.Errorf("ROLE %v, %v", role, err)
		}
		return nil
	})
}

// waitFor polls check for up to 20 s, failing t if it never succeeds.
func waitFor(t testing.TB, what string, check func(context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := check(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
