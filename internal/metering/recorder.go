package metering

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apikeywallet/apiwallet"
)

// Options tune a Recorder. Zero fields take the defaults.
type Options struct {
	// BatchSize is the most records written in one InsertUsage; reaching it
	// wakes the flusher at once. Default 500.
	BatchSize int
	// FlushInterval is the longest a record waits before being written
	// when fewer than BatchSize are queued. Default 1s.
	FlushInterval time.Duration
	// QueueSize bounds the records held in memory, written or not yet
	// acknowledged. Default 65536.
	QueueSize int
	// FullWait is how long Record waits for room in a full queue before it
	// drops the record. Default 50ms.
	FullWait time.Duration
	// RetryMin and RetryMax bound the backoff between attempts at a batch
	// that failed. Defaults 100ms and 10s.
	RetryMin time.Duration
	RetryMax time.Duration
	// AttemptTimeout bounds one InsertUsage. Default 30s.
	AttemptTimeout time.Duration
	// Registerer, if not nil, receives the recorder's metrics.
	Registerer prometheus.Registerer
}

func (o *Options) setDefaults() {
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 65536
	}
	if o.FullWait <= 0 {
		o.FullWait = 50 * time.Millisecond
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 100 * time.Millisecond
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(10*time.Second, o.RetryMin)
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = 30 * time.Second
	}
}

// Stats are a Recorder's counters since it started.
type Stats struct {
	Written int64 // records written
	Batches int64 // batches written
	Errors  int64 // failed write attempts (each retried unless dropped)
	Dropped int64 // records lost: queue full, recorded after Close, invalid, or unwritten when Close gave up
	Queued  int64 // records held now, not yet written
}

// Recorder batches usage records and writes them to a UsageStore in the
// background. Its methods are safe for concurrent use.
type Recorder struct {
	store apiwallet.UsageStore
	log   *slog.Logger
	opts  Options

	// Records queue in batches of fixed capacity BatchSize, recycled once
	// written, so that Record never grows (copies) a slice and, in the
	// steady state, never allocates.
	mu     sync.Mutex
	cur    []apiwallet.Usage   // the batch being filled
	full   [][]apiwallet.Usage // filled batches waiting for the flusher
	free   [][]apiwallet.Usage // written batches, emptied, for reuse
	space  chan struct{}       // closed (and replaced) whenever room is made or the recorder closes
	closed bool                // set by the flusher as it exits; Record then drops

	taking [][]apiwallet.Usage // flusher only: the batch list it swaps with full

	kick     chan struct{}   // a full batch is waiting
	flushReq chan chan error // Flush requests
	done     chan struct{}   // closed by Close
	stopped  chan struct{}   // closed when the flusher has exited
	closeMu  sync.Once
	runCtx   context.Context // canceled when Close gives up
	abort    context.CancelFunc
	lost     atomic.Int64 // records abandoned when Close gave up

	queued, written, batches, errs, dropped atomic.Int64
	lastDropLog                             atomic.Int64 // unix nanoseconds

	// flushTime observes each batch write; nil without a Registerer.
	flushTime prometheus.Observer
}

// NewRecorder starts a recorder writing to store. log may be nil.
func NewRecorder(store apiwallet.UsageStore, log *slog.Logger, opts Options) *Recorder {
	opts.setDefaults()
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Recorder{
		store: store, log: log, opts: opts,
		cur:      make([]apiwallet.Usage, 0, opts.BatchSize),
		space:    make(chan struct{}),
		kick:     make(chan struct{}, 1),
		flushReq: make(chan chan error),
		done:     make(chan struct{}),
		stopped:  make(chan struct{}),
		runCtx:   ctx, abort: cancel,
	}
	if opts.Registerer != nil {
		r.register(opts.Registerer)
	}
	go r.run()
	return r
}

func (r *Recorder) register(reg prometheus.Registerer) {
	counter := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	reg.MustRegister(
		counter("apiwallet_usage_records_written_total", "Usage records written to the database.", &r.written),
		counter("apiwallet_usage_batches_total", "Usage batches written to the database.", &r.batches),
		counter("apiwallet_usage_errors_total", "Failed attempts to write a usage batch (each is retried).", &r.errs),
		counter("apiwallet_usage_dropped_total", "Usage records lost: queue full, recorded after shutdown, or unwritten at shutdown.", &r.dropped),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "apiwallet_usage_queue_length",
			Help: "Usage records held in memory, not yet written.",
		}, func() float64 { return float64(r.queued.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "apiwallet_usage_queue_capacity",
			Help: "Usage records the recorder holds at most before it drops new ones (QueueSize).",
		}, func() float64 { return float64(r.opts.QueueSize) }),
	)
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "apiwallet_usage_flush_duration_seconds",
		Help:    "Time to write one usage batch to the database (each attempt, failed ones included).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	reg.MustRegister(h)
	r.flushTime = h
}

// Record queues u to be written. It returns at once unless the queue is
// full, when it waits up to Options.FullWait for room and then drops u,
// counting and logging the loss. A zero CreatedAt is set to now; an empty
// ID is assigned before u is first written. A record without a workspace
// cannot be stored and is dropped.
func (r *Recorder) Record(u apiwallet.Usage) {
	if u.WorkspaceID == "" {
		r.drop(1, "usage record without a workspace id")
		return
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = time.Now().UTC()
	}
	r.mu.Lock()
	if !r.closed && r.queued.Load() >= int64(r.opts.QueueSize) && !r.waitForRoom() {
		return
	}
	if r.closed {
		r.mu.Unlock()
		r.drop(1, "usage record after the recorder closed; record dropped")
		return
	}
	if r.cur == nil {
		r.cur = r.newBatch()
	}
	r.cur = append(r.cur, u)
	r.queued.Add(1)
	if len(r.cur) == r.opts.BatchSize {
		r.full = append(r.full, r.cur)
		r.cur = nil
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	r.mu.Unlock()
}

// maxFree bounds the written batches kept for reuse.
const maxFree = 8

// newBatch returns an empty batch, reused if one is free. r.mu is held.
func (r *Recorder) newBatch() []apiwallet.Usage {
	if n := len(r.free); n > 0 {
		b := r.free[n-1]
		r.free = r.free[:n-1]
		return b
	}
	return make([]apiwallet.Usage, 0, r.opts.BatchSize)
}

// waitForRoom waits, r.mu held, up to Options.FullWait for the queue to
// have room or the recorder to close, and reports whether it did with r.mu
// still held. Otherwise it drops the record and returns with r.mu free.
func (r *Recorder) waitForRoom() bool {
	timer := time.NewTimer(r.opts.FullWait)
	defer timer.Stop()
	for !r.closed && r.queued.Load() >= int64(r.opts.QueueSize) {
		space := r.space
		r.mu.Unlock()
		select {
		case <-space:
		case <-timer.C:
			r.drop(1, "usage queue full; record dropped")
			return false
		}
		r.mu.Lock()
	}
	return true
}

// drop counts n lost records and logs, at most once a minute.
func (r *Recorder) drop(n int64, why string) {
	total := r.dropped.Add(n)
	now := time.Now().UnixNano()
	last := r.lastDropLog.Load()
	if now-last >= int64(time.Minute) && r.lastDropLog.CompareAndSwap(last, now) {
		r.log.Error(why, "dropped", n, "dropped_total", total, "queue_size", r.opts.QueueSize)
	}
}

// Flush writes every record recorded before it was called, waiting for the
// write (and its retries) until ctx ends.
func (r *Recorder) Flush(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case r.flushReq <- reply:
	case <-r.stopped:
		return errors.New("metering: recorder closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close writes everything queued and stops the recorder. Records arriving
// while it drains are written too; later ones are dropped. If ctx ends
// first, Close abandons what is left, counts it as dropped and says how
// many records were lost. Calling Close again waits for the first.
func (r *Recorder) Close(ctx context.Context) error {
	r.closeMu.Do(func() { close(r.done) })
	select {
	case <-r.stopped:
	case <-ctx.Done():
		r.abort()
		<-r.stopped
	}
	if n := r.lost.Load(); n > 0 {
		return fmt.Errorf("metering: %d usage records not confirmed written at shutdown: %w", n, context.Cause(ctx))
	}
	return nil
}

// Stats returns the recorder's counters.
func (r *Recorder) Stats() Stats {
	return Stats{
		Written: r.written.Load(), Batches: r.batches.Load(), Errors: r.errs.Load(),
		Dropped: r.dropped.Load(), Queued: r.queued.Load(),
	}
}

// run is the flusher.
func (r *Recorder) run() {
	defer close(r.stopped)
	defer r.abort()
	tick := time.NewTicker(r.opts.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.kick:
			r.flush(false)
		case <-tick.C:
			r.flush(true)
		case reply := <-r.flushReq:
			reply <- r.flush(true)
		case <-r.done:
			r.drain()
			return
		}
	}
}

// drain flushes until the queue is empty (or Close gives up) and then
// closes the recorder under the same lock, so no record slips in between.
func (r *Recorder) drain() {
	for {
		r.mu.Lock()
		if (len(r.full) == 0 && len(r.cur) == 0) || r.runCtx.Err() != nil {
			r.closed = true
			left := len(r.cur)
			for _, b := range r.full {
				left += len(b)
			}
			r.cur, r.full = nil, nil
			r.queued.Add(-int64(left))
			r.signalSpace()
			r.mu.Unlock()
			if left > 0 {
				r.lose(int64(left))
			}
			return
		}
		r.mu.Unlock()
		r.flush(true)
	}
}

// lose records n records abandoned at shutdown.
func (r *Recorder) lose(n int64) {
	r.lost.Add(n)
	r.dropped.Add(n)
	r.log.Error("usage records not confirmed written at shutdown; lost", "records", n)
}

// signalSpace wakes every Record waiting for room. r.mu is held.
func (r *Recorder) signalSpace() {
	close(r.space)
	r.space = make(chan struct{})
}

// flush takes the full batches (and, if all, the one being filled) and
// writes each, retrying until written. It returns an error only when
// records were dropped or abandoned.
func (r *Recorder) flush(all bool) error {
	r.mu.Lock()
	batches := r.full
	r.full = r.taking[:0]
	if all && len(r.cur) > 0 {
		batches = append(batches, r.cur)
		r.cur = nil
	}
	r.mu.Unlock()
	var err error
	for i, b := range batches {
		for j := range b {
			if b[j].ID == "" {
				b[j].ID = apiwallet.NewID("use")
			}
		}
		if werr := r.write(b, r.keepingUp()); werr != nil {
			err = werr
			if r.runCtx.Err() != nil {
				// Close gave up: abandon this batch and the rest.
				var n int64
				for _, b := range batches[i:] {
					n += int64(len(b))
				}
				r.lose(n)
				r.release(batches[i:]...)
				break
			}
			// The store refused the batch (write dropped it); go on.
		}
		r.release(b)
	}
	clear(batches)
	r.taking = batches[:0]
	return err
}

// keepingUp reports whether the batch being written may be unhurried: at
// most one more batch is queued behind it and the recorder is not closing.
// Under a backlog, or at shutdown, batches go at full speed.
func (r *Recorder) keepingUp() bool {
	select {
	case <-r.done:
		return false
	default:
	}
	return r.queued.Load() <= 2*int64(r.opts.BatchSize)
}

// release takes written (or dropped) batches off the queue, keeps a few
// for reuse, and wakes writers waiting for room.
func (r *Recorder) release(batches ...[]apiwallet.Usage) {
	r.mu.Lock()
	for _, b := range batches {
		r.queued.Add(-int64(len(b)))
		clear(b) // drop the strings' references
		if len(r.free) < maxFree && cap(b) == r.opts.BatchSize {
			r.free = append(r.free, b[:0])
		}
	}
	r.signalSpace()
	r.mu.Unlock()
}

// write stores batch, retrying with exponential backoff and jitter until it
// is written or Close gives up. A batch the store refuses as invalid would
// fail forever; it is dropped instead, and logged.
func (r *Recorder) write(batch []apiwallet.Usage, unhurried bool) error {
	backoff := r.opts.RetryMin
	parent := r.runCtx
	if unhurried {
		parent = apiwallet.Unhurried(parent)
	}
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(parent, r.opts.AttemptTimeout)
		t0 := time.Now()
		err := r.store.InsertUsage(ctx, batch)
		cancel()
		if r.flushTime != nil {
			r.flushTime.Observe(time.Since(t0).Seconds())
		}
		if err == nil {
			r.written.Add(int64(len(batch)))
			r.batches.Add(1)
			if attempt > 1 {
				r.log.Info("usage batch written after retries", "records", len(batch), "attempts", attempt)
			}
			return nil
		}
		r.errs.Add(1)
		if r.runCtx.Err() != nil {
			return err
		}
		if apiwallet.ErrorCode(err) == apiwallet.EINVALID {
			r.dropped.Add(int64(len(batch)))
			r.log.Error("usage batch refused by the store; dropped", "records", len(batch), "err", err)
			return err
		}
		r.log.Warn("usage batch not written; retrying", "records", len(batch), "attempt", attempt,
			"retry_in", backoff, "err", err)
		// Full jitter over the upper half keeps instances that failed
		// together from retrying in lockstep.
		wait := backoff/2 + rand.N(backoff/2+1)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.runCtx.Done():
			t.Stop()
			return r.runCtx.Err()
		}
		backoff = min(2*backoff, r.opts.RetryMax)
	}
}
