package ratelimit

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

const (
	memoryShards = 64 // a power of two
	// sweepEvery is how often, at most, each shard drops its expired entries.
	sweepEvery = time.Minute
)

// Memory is an in-process GCRA limiter. It is safe for concurrent use.
//
// Buckets live in sharded maps, one mutex per shard. A bucket is a single
// int64, its theoretical arrival time (TAT); once the TAT is in the past the
// bucket is full and the entry carries no information, so each shard drops
// such entries lazily, at most once per sweepEvery, during an Allow call on
// that shard. Memory therefore holds only keys used within their last reset
// time plus up to one sweep interval. In the steady state an Allow call does
// not allocate.
type Memory struct {
	now    func() time.Time
	base   time.Time // times are kept as nanoseconds since base
	seed   maphash.Seed
	shards [memoryShards]memoryShard
}

type memoryShard struct {
	mu        sync.Mutex
	tats      map[string]int64 // ns since Memory.base
	peak      int              // largest len(tats) since the map was last rebuilt
	lastSweep int64
	_         [64]byte // keep shards on separate cache lines
}

// NewMemory returns an in-process limiter reading the time from now
// (time.Now when nil; tests inject a fake clock).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	m := &Memory{now: now, base: now(), seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].tats = make(map[string]int64)
	}
	return m
}

// Allow implements Limiter. It never returns an error other than
// ErrInvalidLimit or ErrExceedsBurst; ctx is not used.
func (m *Memory) Allow(_ context.Context, key string, l Limit, n int) (Decision, error) {
	burst, err := check(l, n)
	if err != nil {
		return Decision{}, err
	}
	t := interval(l, time.Nanosecond)
	now := int64(m.now().Sub(m.base)) // monotonic when the clock has a monotonic reading

	s := &m.shards[maphash.String(m.seed, key)&(memoryShards-1)]
	s.mu.Lock()
	if now-s.lastSweep >= int64(sweepEvery) {
		s.sweep(now)
	}
	tat, ok := s.tats[key]
	if !ok {
		tat = now
	}
	allowed, remaining, reset, retry, next := gcra(tat, now, t, burst, n)
	if allowed && n > 0 {
		s.tats[key] = next
		if len(s.tats) > s.peak {
			s.peak = len(s.tats)
		}
	}
	s.mu.Unlock()

	return Decision{
		Allowed:    allowed,
		Limit:      l.Rate,
		Remaining:  remaining,
		ResetAfter: time.Duration(reset),
		RetryAfter: time.Duration(retry),
	}, nil
}

// sweep drops the entries whose TAT is not after now, and rebuilds the map
// when it has shrunk to a quarter of its peak (Go maps never shrink).
// s.mu must be held.
func (s *memoryShard) sweep(now int64) {
	s.lastSweep = now
	for k, tat := range s.tats {
		if tat <= now {
			delete(s.tats, k)
		}
	}
	if s.peak >= 1024 && len(s.tats) <= s.peak/4 {
		fresh := make(map[string]int64, len(s.tats))
		for k, v := range s.tats {
			fresh[k] = v
		}
		s.tats = fresh
		s.peak = len(fresh)
	}
}

// Len returns the number of buckets held, including expired ones not yet
// swept.
func (m *Memory) Len() int {
	total := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		total += len(s.tats)
		s.mu.Unlock()
	}
	return total
}

// Sweep drops every expired bucket now, in all shards. Allow sweeps by
// itself; Sweep is for callers that want memory back at once.
func (m *Memory) Sweep() {
	now := int64(m.now().Sub(m.base))
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		s.sweep(now)
		s.mu.Unlock()
	}
}
