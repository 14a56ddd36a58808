// Package gcfloor keeps the garbage collector from running too often on a
// small live heap. The wallet runs it, and so does the benchmark's bare
// proxy floor, so that the two compare under the same GC settings.
package gcfloor

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// gcFloor is the least the heap grows between two garbage collections.
//
// With GOGC=100 the collector starts when the heap has doubled since the
// last one. A wallet's live heap is a few megabytes until it holds many
// keys, so under load it collected several times a second, and each cycle
// takes one of its processors for a moment: at a constant 2,000 calls a
// second that was a clear part of the proxy's tail latency (p99 about
// 3.5 ms against 2.8 ms with collections a quarter as often) and of its
// throughput. Keeping the growth at gcFloor or more costs at most that
// much memory, and a large live heap (100,000 keys) is collected as with
// GOGC=100. 32 MB gave no more throughput and 10-20 MB more peak RSS.
const gcFloor = 16 << 20

// Run sets the GC percentage so that the next collection starts once the
// heap has grown by gcFloor, or doubled, whichever is more. It checks the
// live heap every interval until ctx ends. A caller whose operator set
// GOGC does not run it: the operator's setting wins.
func Run(ctx context.Context, interval time.Duration) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	current := 100
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		metrics.Read(sample)
		if want := gcPercentFor(sample[0].Value.Uint64()); want != current {
			debug.SetGCPercent(want)
			current = want
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// gcPercentFor is the GC percentage that lets a heap of live bytes grow
// by gcFloor, at least 100 and at most 2,000, in steps of 50 so that a
// live heap that wobbles does not change it every time.
func gcPercentFor(live uint64) int {
	if live == 0 {
		return 2000
	}
	pct := int(gcFloor * 100 / live)
	pct = pct / 50 * 50
	return min(max(pct, 100), 2000)
}
