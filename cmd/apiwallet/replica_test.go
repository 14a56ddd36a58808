package main_test

// DATABASE_READ_URL on real processes and a real streaming replica: the
// usage analytics read the replica, everything else the primary.

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet/internal/testenv"
)

func TestReadReplicaServesUsage(t *testing.T) {
	primary, replica := testenv.PostgresReplicaAlone(t) // it pauses the replica
	stub := newStub(t)
	c := startCluster(t, 1, "DATABASE_URL="+primary, "DATABASE_READ_URL="+replica,
		"MAX_REQUESTS_PER_MINUTE=100000", "OPENAI_BASE_URL="+stub.URL)
	if !c.wallets[0].waitLog(`"read_replica":true`) {
		t.Fatalf("the wallet does not say it reads a replica:\n%s", c.wallets[0].Logs())
	}
	c.setup()
	u := c.wallets[0].url
	pdb, rdb := openDB(t, primary), openDB(t, replica)

	calls := func(n int) {
		t.Helper()
		for range n {
			c.must(200, "GET", c.callURL(0), c.token, nil)
		}
	}
	// usage is what GET /usage answers for today's calls.
	usage := func() int64 {
		t.Helper()
		st, _, b, err := c.do("GET", u+"/usage?period=day", c.jwt, nil)
		if err != nil || st != 200 {
			t.Fatalf("GET /usage: %d %v: %s\n%s", st, err, b, c.wallets[0].Logs())
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return int64(m["totals"].(map[string]any)["calls"].(float64))
	}
	// waitUsage polls GET /usage until it shows want calls.
	waitUsage := func(want int64) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			got := usage()
			if got == want {
				return time.Since(start)
			}
			if time.Since(start) > 20*time.Second {
				t.Fatalf("GET /usage shows %d calls 20 s on, want %d\n%s", got, want, c.wallets[0].Logs())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	onPrimary := func() int64 {
		return countRows(t, pdb, `SELECT COALESCE(SUM(calls), 0) FROM usage_hourly WHERE workspace_id = $1`, c.ws)
	}

	// The replica serves what it has replayed: the wallet's migrations
	// first. (A wallet upgraded with a new migration answers analytics
	// from the old schema until the replica catches up.)
	var lsn string
	if err := pdb.QueryRow(`SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var caught bool
		if err := rdb.QueryRow(`SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, lsn).Scan(&caught); err != nil {
			t.Fatal(err)
		}
		if caught {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the replica has not replayed the migrations 20 s on")
		}
	}

	calls(5)
	took := waitUsage(5)
	t.Logf("5 calls shown by GET /usage %v after the last one (recorder flush + replica replay)", took.Round(time.Millisecond))

	// Replay paused, the replica stands still while the primary moves on:
	// GET /usage keeps answering from the replica, with the old figure.
	ctx := context.Background()
	if _, err := rdb.ExecContext(ctx, `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if _, err := rdb.ExecContext(context.Background(), `SELECT pg_wal_replay_resume()`); err != nil {
				t.Errorf("resume replay: %v", err)
			}
		}
	}
	t.Cleanup(resume)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var state string
		if err := rdb.QueryRowContext(ctx, `SELECT pg_get_wal_replay_pause_state()`).Scan(&state); err != nil {
			t.Fatal(err)
		}
		if state == "paused" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replay pause state %q", state)
		}
	}
	calls(7)
	for deadline := time.Now().Add(20 * time.Second); onPrimary() != 12; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the primary holds %d calls, want 12", onPrimary())
		}
	}
	// Writes and what reads them back are on the primary, unaffected.
	c.must(201, "POST", u+"/tokens", c.jwt, map[string]any{"name": "while-paused", "services": []string{"openai"}})
	toks := c.must(200, "GET", u+"/tokens", c.jwt, nil)
	if n := len(toks["tokens"].([]any)); n != 2 {
		t.Fatalf("GET /tokens lists %d tokens right after a create, want 2", n)
	}
	if got := usage(); got != 5 {
		t.Fatalf("with the replica paused GET /usage shows %d calls, want the replica's 5 (the primary has 12)", got)
	}
	var onReplica int64
	if err := rdb.QueryRowContext(ctx, `SELECT COALESCE(SUM(calls), 0) FROM usage_hourly WHERE workspace_id = $1`, c.ws).Scan(&onReplica); err != nil || onReplica != 5 {
		t.Fatalf("the paused replica holds %d calls, %v", onReplica, err)
	}

	resume()
	took = waitUsage(12)
	t.Logf("replay resumed: GET /usage caught up with the primary's 12 calls within %v", took.Round(time.Millisecond))
}
