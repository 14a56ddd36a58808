package metering_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/metering"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openDB returns a migrated SQLite store in a temporary directory.
func openDB(t testing.TB) *sqldb.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, filepath.Join(t.TempDir(), "wallet.db"), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, quiet()); err != nil {
		t.Fatal(err)
	}
	return db
}

func call(ws string, n int) apiwallet.Usage {
	return apiwallet.Usage{
		WorkspaceID: ws, Service: "stripe", KeyID: fmt.Sprintf("key_%d", n%3), TokenID: "tok_1",
		Method: "GET", Status: 200, Attempts: 1, Attempted: "key_1:200", Strategy: "cost",
		LatencyMicros: 1500, OverheadMicros: 80, BytesIn: 10, BytesOut: 200, CostMicros: 100,
	}
}

// counts returns the raw records and the rollups' call total of ws.
func counts(t *testing.T, db *sqldb.DB, ws string) (records, rolledUp int64) {
	t.Helper()
	ctx := context.Background()
	if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*), COUNT(DISTINCT id) FROM usage_records WHERE workspace_id = $1`, ws).
		Scan(&records, new(int64)); err != nil {
		t.Fatal(err)
	}
	if err := db.SQL().QueryRowContext(ctx, `SELECT COALESCE(SUM(calls), 0) FROM usage_hourly WHERE workspace_id = $1`, ws).
		Scan(&rolledUp); err != nil {
		t.Fatal(err)
	}
	return records, rolledUp
}

func closeWithin(t *testing.T, r *metering.Recorder, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// Every one of many concurrent calls is written exactly once, in the
// records and in the rollups, and Close leaves nothing behind.
func TestConcurrentRecordsWrittenOnce(t *testing.T) {
	db := openDB(t)
	r := metering.NewRecorder(db, quiet(), metering.Options{})
	const n = 10_000
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { r.Record(call("ws_a", i)) })
	}
	wg.Wait()
	closeWithin(t, r, 30*time.Second)

	records, rolledUp := counts(t, db, "ws_a")
	if records != n || rolledUp != n {
		t.Fatalf("records = %d, rollup calls = %d; want %d each", records, rolledUp, n)
	}
	s, err := db.WorkspaceUsage(context.Background(), "ws_a", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil || s.Calls != n || s.CostMicros != 100*n {
		t.Fatalf("WorkspaceUsage = %+v, %v", s, err)
	}
	if st := r.Stats(); st.Written != n || st.Dropped != 0 || st.Queued != 0 || st.Errors != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

// flaky fails its first calls: the first ones before writing anything,
// then one after committing (the acknowledgement was lost), which is the
// case idempotency exists for.
type flaky struct {
	apiwallet.UsageStore
	calls        atomic.Int64
	failBefore   int64 // calls 1..failBefore fail without writing
	failAfterAck int64 // call number that writes, then fails
}

func (f *flaky) InsertUsage(ctx context.Context, batch []apiwallet.Usage) error {
	c := f.calls.Add(1)
	if c <= f.failBefore {
		return errors.New("connection refused")
	}
	if c == f.failAfterAck {
		if err := f.UsageStore.InsertUsage(ctx, batch); err != nil {
			return err
		}
		return errors.New("connection reset after commit")
	}
	return f.UsageStore.InsertUsage(ctx, batch)
}

// A batch that fails is retried with the same IDs until written, and is
// counted once even when an attempt failed after it had committed.
func TestRetriesWriteOnce(t *testing.T) {
	db := openDB(t)
	store := &flaky{UsageStore: db, failBefore: 2, failAfterAck: 3}
	r := metering.NewRecorder(store, quiet(), metering.Options{BatchSize: 100, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond})
	const n = 1234
	for i := range n {
		r.Record(call("ws_r", i))
	}
	closeWithin(t, r, 30*time.Second)

	records, rolledUp := counts(t, db, "ws_r")
	if records != n || rolledUp != n {
		t.Fatalf("records = %d, rollup calls = %d; want %d each", records, rolledUp, n)
	}
	if st := r.Stats(); st.Errors != 3 || st.Written != n || st.Dropped != 0 {
		t.Fatalf("Stats = %+v; want 3 errors, %d written, none dropped", st, n)
	}
}

// Close writes what is queued at once, without waiting for the flush
// interval.
func TestCloseFlushesPromptly(t *testing.T) {
	db := openDB(t)
	r := metering.NewRecorder(db, quiet(), metering.Options{FlushInterval: time.Hour})
	for i := range 10 {
		r.Record(call("ws_c", i))
	}
	start := time.Now()
	closeWithin(t, r, 10*time.Second)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v", d)
	}
	if records, rolledUp := counts(t, db, "ws_c"); records != 10 || rolledUp != 10 {
		t.Fatalf("records = %d, rollup calls = %d; want 10", records, rolledUp)
	}
	// Afterwards records are refused, and counted.
	r.Record(call("ws_c", 11))
	if st := r.Stats(); st.Dropped != 1 {
		t.Fatalf("Record after Close: %+v", st)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// A full batch is written without waiting for the flush interval, and
// Flush writes what was recorded before it.
func TestBatchAndFlush(t *testing.T) {
	db := openDB(t)
	r := metering.NewRecorder(db, quiet(), metering.Options{BatchSize: 50, FlushInterval: time.Hour})
	defer closeWithin(t, r, 10*time.Second)
	for i := range 50 {
		r.Record(call("ws_b", i))
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.Stats().Written < 50 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := r.Stats(); st.Written != 50 || st.Batches != 1 {
		t.Fatalf("a full batch was not written at once: %+v", st)
	}
	for i := range 7 {
		r.Record(call("ws_b", i))
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if records, _ := counts(t, db, "ws_b"); records != 57 {
		t.Fatalf("after Flush: %d records, want 57", records)
	}
}

// gated blocks every InsertUsage until open is closed.
type gated struct {
	apiwallet.UsageStore
	open chan struct{}
}

func (g *gated) InsertUsage(ctx context.Context, batch []apiwallet.Usage) error {
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.UsageStore.InsertUsage(ctx, batch)
}

// A full queue makes Record wait briefly for room, then drop and count the
// record; it never blocks for long, and every record it accepted is
// written once the store answers again.
func TestFullQueue(t *testing.T) {
	db := openDB(t)
	store := &gated{UsageStore: db, open: make(chan struct{})}
	reg := prometheus.NewRegistry()
	r := metering.NewRecorder(store, quiet(), metering.Options{
		BatchSize: 5, QueueSize: 10, FullWait: 30 * time.Millisecond, Registerer: reg,
	})
	for i := range 10 {
		r.Record(call("ws_f", i))
	}
	start := time.Now()
	r.Record(call("ws_f", 10))
	if d := time.Since(start); d < 30*time.Millisecond || d > time.Second {
		t.Fatalf("Record on a full queue returned after %v; want about 30ms", d)
	}
	if st := r.Stats(); st.Dropped != 1 || st.Queued != 10 {
		t.Fatalf("Stats = %+v; want 1 dropped, 10 queued", st)
	}

	// Room made while a Record waits lets it through.
	done := make(chan struct{})
	r2 := metering.NewRecorder(store, quiet(), metering.Options{BatchSize: 5, QueueSize: 10, FullWait: 5 * time.Second})
	for i := range 10 {
		r2.Record(call("ws_g", i))
	}
	go func() { r2.Record(call("ws_g", 10)); close(done) }()
	time.Sleep(20 * time.Millisecond)
	close(store.open)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a waiting Record was not let through when room was made")
	}
	closeWithin(t, r, 10*time.Second)
	closeWithin(t, r2, 10*time.Second)
	if records, rolledUp := counts(t, db, "ws_f"); records != 10 || rolledUp != 10 {
		t.Fatalf("ws_f: records = %d, rollup calls = %d; want 10", records, rolledUp)
	}
	if records, _ := counts(t, db, "ws_g"); records != 11 || r2.Stats().Dropped != 0 {
		t.Fatalf("ws_g: records = %d, stats %+v; want 11, none dropped", records, r2.Stats())
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		switch {
		case m.GetCounter() != nil:
			got[mf.GetName()] = m.GetCounter().GetValue()
		case m.GetHistogram() != nil:
			// Every write attempt is timed: here, one per batch.
			got[mf.GetName()] = float64(m.GetHistogram().GetSampleCount())
		default:
			got[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	want := map[string]float64{
		"apiwallet_usage_records_written_total": 10, "apiwallet_usage_batches_total": 2,
		"apiwallet_usage_errors_total": 0, "apiwallet_usage_dropped_total": 1, "apiwallet_usage_queue_length": 0,
		"apiwallet_usage_queue_capacity": 10, "apiwallet_usage_flush_duration_seconds": 2,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("metrics = %v, want %v", got, want)
	}
}

type down struct{ apiwallet.UsageStore }

func (down) InsertUsage(context.Context, []apiwallet.Usage) error {
	return errors.New("database is down")
}

// When the database stays down, Close gives up when its context ends and
// says how many records were lost; they are counted as dropped.
func TestCloseGivesUp(t *testing.T) {
	r := metering.NewRecorder(down{}, quiet(), metering.Options{RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond})
	for i := range 25 {
		r.Record(call("ws_d", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := r.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "25 usage records") {
		t.Fatalf("Close = %v; want it to report 25 lost records", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v after its context ended", d)
	}
	if st := r.Stats(); st.Dropped != 25 || st.Queued != 0 || st.Written != 0 || st.Errors == 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

// Records get IDs when they have none and keep the ones they have; a
// record without a workspace cannot be stored and is counted as dropped.
func TestIDs(t *testing.T) {
	db := openDB(t)
	r := metering.NewRecorder(db, quiet(), metering.Options{})
	mine := call("ws_i", 1)
	mine.ID = "use_given"
	r.Record(mine)
	r.Record(call("ws_i", 2))
	r.Record(call("", 3))
	closeWithin(t, r, 10*time.Second)
	rows, err := db.SQL().Query(`SELECT id, created_at FROM usage_records WHERE workspace_id = 'ws_i' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var (
			id string
			at int64
		)
		if err := rows.Scan(&id, &at); err != nil {
			t.Fatal(err)
		}
		if at == 0 {
			t.Fatalf("%s has no time", id)
		}
		ids = append(ids, id)
	}
	if len(ids) != 2 || !slices.Contains(ids, "use_given") ||
		!strings.HasPrefix(ids[0], "use_") || !strings.HasPrefix(ids[1], "use_") || ids[0] == ids[1] {
		t.Fatalf("ids = %v", ids)
	}
	if st := r.Stats(); st.Dropped != 1 || st.Written != 2 {
		t.Fatalf("Stats = %+v", st)
	}
}

type nop struct{ apiwallet.UsageStore }

func (nop) InsertUsage(context.Context, []apiwallet.Usage) error { return nil }

// benchRecorder records with r in b's loop, serially or from every P, and
// reports the records dropped (none expected) per op.
func benchRecorder(b *testing.B, r *metering.Recorder, u apiwallet.Usage, parallel bool) {
	b.ReportAllocs()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r.Record(u)
			}
		})
	} else {
		for b.Loop() {
			r.Record(u)
		}
	}
	b.StopTimer()
	if err := r.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(r.Stats().Dropped)/float64(b.N), "dropped/op")
}

// BenchmarkRecordHotPath is what a proxied call pays: the record already
// has its ID and time, so the flusher (on another P) does almost nothing,
// and the store answers at once. Steady state: no allocation.
func BenchmarkRecordHotPath(b *testing.B) {
	u := call("ws_bench", 1)
	u.ID, u.CreatedAt = apiwallet.NewID("use"), time.Now().UTC()
	b.Run("serial", func(b *testing.B) {
		benchRecorder(b, metering.NewRecorder(nop{}, quiet(), metering.Options{}), u, false)
	})
	b.Run("parallel", func(b *testing.B) {
		benchRecorder(b, metering.NewRecorder(nop{}, quiet(), metering.Options{}), u, true)
	})
}

// BenchmarkRecord is a record as the proxy sends it, without an ID: the
// flusher assigns one (crypto/rand, two small allocations), so in this
// tight loop ns/op is the slower of Record and the flusher, and allocs/op
// counts the flusher's ID allocations, not Record's.
func BenchmarkRecord(b *testing.B) {
	u := call("ws_bench", 1)
	u.CreatedAt = time.Now().UTC()
	benchRecorder(b, metering.NewRecorder(nop{}, quiet(), metering.Options{}), u, false)
}

// BenchmarkRecordSQLite is end to end into SQLite: Record waits for room
// rather than drop, so ns/op is the sustained cost of a record through
// the database, the final Close included.
func BenchmarkRecordSQLite(b *testing.B) {
	u := call("ws_bench", 1)
	u.CreatedAt = time.Now().UTC()
	r := metering.NewRecorder(openDB(b), quiet(), metering.Options{FullWait: time.Minute})
	benchRecorder(b, r, u, false)
}

// marking records, for each InsertUsage, whether its context was marked
// unhurried; the first call waits for open.
type marking struct {
	apiwallet.UsageStore
	open  chan struct{}
	mu    sync.Mutex
	marks []bool
}

func (m *marking) InsertUsage(ctx context.Context, batch []apiwallet.Usage) error {
	m.mu.Lock()
	first := len(m.marks) == 0
	m.marks = append(m.marks, apiwallet.IsUnhurried(ctx))
	m.mu.Unlock()
	if first {
		<-m.open
	}
	return m.UsageStore.InsertUsage(ctx, batch)
}

func (m *marking) got() []bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.marks)
}

// A batch may be written unhurried only while the recorder keeps up: with
// a backlog of more than one batch behind it, or at Close, it goes at full
// speed. Batches larger than SQLite's chunk are written whole either way.
func TestUnhurriedOnlyWhileKeepingUp(t *testing.T) {
	db := openDB(t)
	store := &marking{UsageStore: db, open: make(chan struct{})}
	const size = 120 // several SQLite chunks, so the pauses run
	r := metering.NewRecorder(store, quiet(), metering.Options{BatchSize: size, FlushInterval: time.Hour})
	for i := range size {
		r.Record(call("ws_u", i))
	}
	// The first batch is held in the store while three more queue up.
	deadline := time.Now().Add(5 * time.Second)
	for len(store.got()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	for i := size; i < 4*size; i++ {
		r.Record(call("ws_u", i))
	}
	close(store.open)
	for r.Stats().Written < 4*size && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	// A partial batch is written by Close.
	for i := 4 * size; i < 4*size+7; i++ {
		r.Record(call("ws_u", i))
	}
	closeWithin(t, r, 10*time.Second)

	// Batch 2 has two more behind it (360 queued, over two batches);
	// batches 3 and 4 have at most one.
	want := []bool{true, false, true, true, false}
	if got := store.got(); !slices.Equal(got, want) {
		t.Fatalf("unhurried per batch = %v, want %v", got, want)
	}
	if records, rolledUp := counts(t, db, "ws_u"); records != 4*size+7 || rolledUp != 4*size+7 {
		t.Fatalf("records = %d, rollup calls = %d; want %d", records, rolledUp, 4*size+7)
	}
}
