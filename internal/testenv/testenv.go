// Package testenv gives tests the real servers they need — PostgreSQL and
// Redis — from environment variables that .ci/run sets, and what tests of
// outages need with them: a redis-server of the test's own (StartRedis), a
// TCP proxy that can cut a server off (StartProxy) and a buffer for the
// logs they write (LogBuffer).
//
// A test that needs a server skips when its variable is unset (or, for
// StartRedis, when redis-server is not on PATH), except when CI=true:
// there a skip would hide a test that never ran, so it fails.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
)

// PostgresEnv names the variable holding an administrative PostgreSQL URL.
const PostgresEnv = "APIWALLET_TEST_DATABASE_URL"

// RedisEnv names the variable holding a Redis URL.
const RedisEnv = "APIWALLET_TEST_REDIS_URL"

// CI reports whether the tests run in CI, where nothing may be skipped.
func CI() bool { return os.Getenv("CI") == "true" }

// Require skips t, or fails it under CI, when the variable env is unset, and
// returns its value.
func Require(t testing.TB, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		if CI() {
			t.Fatalf("%s is not set but CI=true: this test must run in CI", env)
		}
		t.Skipf("%s not set; skipping (set it, or run bash .ci/run)", env)
	}
	return v
}

// PostgresURL creates a fresh, empty database for t on the server named by
// APIWALLET_TEST_DATABASE_URL, drops it when t ends, and returns its URL.
func PostgresURL(t testing.TB) string {
	t.Helper()
	return postgresURLOn(t, PostgresEnv, Require(t, PostgresEnv))
}

// postgresURLOn is PostgresURL on the server of admin, read from env.
func postgresURLOn(t testing.TB, env, admin string) string {
	t.Helper()
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("parse %s: %v", env, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "apiwallet_test_" + hex.EncodeToString(b[:])

	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		db.Close()
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		db.Close()
	})
	u.Path = "/" + name
	return u.String()
}

// PostgresReadEnv names the variable holding an administrative URL of a
// streaming read replica (hot standby) of PostgresReplicaOfEnv's server.
const PostgresReadEnv = "APIWALLET_TEST_DATABASE_READ_URL"

// PostgresReplicaOfEnv names the variable holding the administrative URL
// of the primary that PostgresReadEnv's replica follows.
const PostgresReplicaOfEnv = "APIWALLET_TEST_DATABASE_REPLICA_OF"

// PostgresReplica creates a fresh database for t on the primary that
// APIWALLET_TEST_DATABASE_READ_URL replicates, waits until the replica has
// it too, and returns the database's URL on each (dropped when t ends).
// It skips t (fails it under CI=true) when either variable is unset.
func PostgresReplica(t testing.TB) (primary, replica string) {
	t.Helper()
	return postgresReplica(t, false)
}

// PostgresReplicaAlone is PostgresReplica for a test that pauses the
// replica's replay (pg_wal_replay_pause): it waits until no other test,
// in any test process, is using the replica, and keeps the others waiting
// until it ends.
func PostgresReplicaAlone(t testing.TB) (primary, replica string) {
	t.Helper()
	return postgresReplica(t, true)
}

func postgresReplica(t testing.TB, alone bool) (primary, replica string) {
	t.Helper()
	readAdmin := Require(t, PostgresReadEnv)
	Require(t, PostgresReplicaOfEnv)
	// Test packages run in parallel processes on the one replica: an
	// advisory file lock shared by all of them serialises a pause with
	// every other use.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "apiwallet-test-replica.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	how := syscall.LOCK_SH
	if alone {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(lock.Fd()), how); err != nil {
		lock.Close()
		t.Fatalf("lock the test replica: %v", err)
	}
	t.Cleanup(func() { lock.Close() }) // closing releases the lock
	primary = postgresURLOn(t, PostgresReplicaOfEnv, Require(t, PostgresReplicaOfEnv))
	pu, err := url.Parse(primary)
	if err != nil {
		t.Fatal(err)
	}
	ru, err := url.Parse(readAdmin)
	if err != nil {
		t.Fatalf("parse %s: %v", PostgresReadEnv, err)
	}
	ru.Path = pu.Path
	replica = ru.String()

	db, err := sql.Open("pgx", replica)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var standby bool
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := db.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&standby)
		cancel()
		if err == nil && !standby {
			t.Fatalf("%s is not a standby: pg_is_in_recovery() is false", PostgresReadEnv)
		}
		if err == nil {
			return primary, replica
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica has not replayed the test database's creation 30 s later: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
