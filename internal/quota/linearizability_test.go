package quota

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/apikeywallet/apiwallet/internal/testenv"
)

// The quota counter must behave as one exact counter with a hard stop,
// whatever the concurrency and however many instances share it: every
// history of concurrent reservations, refunds and reads must be
// linearizable against that model. porcupine searches for an order of the
// operations, consistent with their real-time overlap, in which the model
// gives every answer that was actually seen; finding none is a failure.

type linOp uint8

const (
	linReserve linOp = iota
	linRefund
	linUsed
)

type linInput struct {
	op       linOp
	included int64
}

type linOutput struct {
	ok   bool  // reserve: counted; refund, used: the call succeeded
	used int64 // reserve: the count including this call, or the count seen when refused; used: the count
}

// exactCounter is the model: the month's count, an int64.
var exactCounter = porcupine.Model{
	Init: func() any { return int64(0) },
	Step: func(state, input, output any) (bool, any) {
		n, in, out := state.(int64), input.(linInput), output.(linOutput)
		switch in.op {
		case linReserve:
			if n < in.included {
				return out.ok && out.used == n+1, n + 1
			}
			return !out.ok && out.used == n, n
		case linRefund:
			return out.ok, n - 1
		default:
			return out.ok && out.used == n, n
		}
	},
	Hash: func(state any) uint64 { return uint64(state.(int64)) },
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		switch in.op {
		case linReserve:
			if out.ok {
				return fmt.Sprintf("reserve → %d", out.used)
			}
			return fmt.Sprintf("reserve → refused at %d", out.used)
		case linRefund:
			return "refund"
		default:
			return fmt.Sprintf("used → %d", out.used)
		}
	},
	DescribeState: func(state any) string { return fmt.Sprint(state.(int64)) },
}

// recordHistory runs clients goroutines, spread over the counters (one per
// instance), each making ops operations on one workspace: a reservation,
// then with some chance a refund of it, and now and then a read. It
// returns the history and how many reservations were kept (not refunded).
func recordHistory(t *testing.T, counters []Counter, clients, ops int, included int64) ([]porcupine.Operation, int64) {
	t.Helper()
	ctx := context.Background()
	ws, period := "ws_lin", time.Now()
	start := time.Now()
	stamp := func() int64 { return int64(time.Since(start)) }
	var (
		mu      sync.Mutex
		history []porcupine.Operation
		kept    atomic.Int64
		wg      sync.WaitGroup
	)
	record := func(client int, in linInput, call int64, out linOutput) {
		ret := stamp()
		mu.Lock()
		history = append(history, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
		mu.Unlock()
	}
	for c := range clients {
		counter := counters[c%len(counters)]
		rng := rand.New(rand.NewPCG(uint64(c), 7))
		wg.Go(func() {
			for range ops {
				if rng.IntN(5) == 0 {
					call := stamp()
					n, err := counter.Used(ctx, ws, period)
					if err != nil {
						t.Error(err)
						return
					}
					record(c, linInput{op: linUsed}, call, linOutput{ok: true, used: n})
					continue
				}
				in := linInput{op: linReserve, included: included}
				call := stamp()
				res, err := counter.Reserve(ctx, ws, period, included, true)
				var exc *Exceeded
				switch {
				case errors.As(err, &exc):
					record(c, in, call, linOutput{used: exc.Used})
					continue
				case err != nil:
					t.Error(err)
					return
				}
				record(c, in, call, linOutput{ok: true, used: res.Used})
				if rng.IntN(3) != 0 {
					kept.Add(1)
					continue
				}
				call = stamp()
				if err := counter.Settle(ctx, res, false); err != nil {
					t.Error(err)
					return
				}
				record(c, linInput{op: linRefund}, call, linOutput{ok: true})
			}
		})
	}
	wg.Wait()
	return history, kept.Load()
}

func checkLinearizable(t *testing.T, counters []Counter) {
	const clients, ops, included = 12, 200, 150
	history, kept := recordHistory(t, counters, clients, ops, included)
	if t.Failed() {
		return
	}
	res, _ := porcupine.CheckOperationsVerbose(exactCounter, history, time.Minute)
	if res != porcupine.Ok {
		t.Fatalf("the history of %d operations is %s against an exact counter with a hard stop", len(history), res)
	}
	// Every kept reservation is a call forwarded: the hard stop allows
	// no more than the quota.
	if kept > included {
		t.Fatalf("%d reservations kept with a quota of %d: overshoot %d", kept, included, kept-included)
	}
	t.Logf("%d operations on %d counters linearizable; %d of a quota of %d kept, overshoot 0", len(history), len(counters), kept, included)
}

// One instance without Redis: the in-process counter.
func TestMemoryLinearizable(t *testing.T) {
	checkLinearizable(t, []Counter{NewMemory(newFakeStore(), 1)})
}

// Three instances sharing Redis, each through the Fallback the server
// builds, with Redis healthy.
func TestRedisLinearizable(t *testing.T) {
	opt := testenv.RedisOptions(t)
	admin := testenv.RedisClient(t, opt)
	prefix := testPrefix(t, admin)
	store := newFakeStore()
	var counters []Counter
	for range 3 {
		f := NewFallback(NewRedis(testenv.RedisClient(t, opt), prefix, store), NewMemory(store, 3), slog.New(slog.DiscardHandler))
		t.Cleanup(func() { f.Close() })
		counters = append(counters, f)
	}
	checkLinearizable(t, counters)
}

// The checker is not vacuous: a counter that lets one call past the hard
// stop produces a history it rejects.
func TestLinearizabilityCheckCatchesOvershoot(t *testing.T) {
	history, _ := recordHistory(t, []Counter{&leaky{Counter: NewMemory(newFakeStore(), 1)}}, 4, 40, 10)
	if res := porcupine.CheckOperationsTimeout(exactCounter, history, time.Minute); res != porcupine.Illegal {
		t.Fatalf("a counter that overshoots by one: %s, want Illegal", res)
	}
}

// leaky counts one call beyond the quota before its hard stop holds.
type leaky struct {
	Counter
	once sync.Once
}

func (l *leaky) Reserve(ctx context.Context, ws string, period time.Time, included int64, hardStop bool) (Reservation, error) {
	res, err := l.Counter.Reserve(ctx, ws, period, included, hardStop)
	var exc *Exceeded
	if errors.As(err, &exc) {
		leaked := false
		l.once.Do(func() { leaked = true })
		if leaked {
			return l.Counter.Reserve(ctx, ws, period, included+1, hardStop)
		}
	}
	return res, err
}
