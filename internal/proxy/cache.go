package proxy

import (
	"sync"
	"sync/atomic"
	"time"
)

// Epoch is a generation counter. Anything that may change who may call
// what, or with which key, bumps it; cached entries from an older epoch are
// never served.
type Epoch struct{ n atomic.Uint64 }

// Bump invalidates every cache entry made before it.
func (e *Epoch) Bump() { e.n.Add(1) }

// Load returns the current generation.
func (e *Epoch) Load() uint64 { return e.n.Load() }

// ttlCache is a map whose entries expire after a TTL or at an epoch bump.
// Reads take a read lock only.
type ttlCache[K comparable, V any] struct {
	mu      sync.RWMutex
	m       map[K]ttlEntry[V]
	epoch   *Epoch
	ttl     time.Duration
	maxSize int
}

type ttlEntry[V any] struct {
	v       V
	epoch   uint64
	expires int64 // unix nanoseconds
}

func newTTLCache[K comparable, V any](epoch *Epoch, ttl time.Duration, maxSize int) *ttlCache[K, V] {
	return &ttlCache[K, V]{m: make(map[K]ttlEntry[V]), epoch: epoch, ttl: ttl, maxSize: maxSize}
}

func (c *ttlCache[K, V]) get(k K, now int64) (V, bool) {
	v, ok, _ := c.lookup(k, now)
	return v, ok
}

// lookup is get, and also reports whether the entry is aging: in the last
// fifth of its TTL, when a caller that can reload it in the background
// should, so that no reader waits for it to expire.
func (c *ttlCache[K, V]) lookup(k K, now int64) (v V, ok, aging bool) {
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || e.epoch != c.epoch.Load() || now >= e.expires {
		return v, false, false
	}
	return e.v, true, now >= e.expires-int64(c.ttl)/5
}

// stale is get that also returns an expired entry, as long as no epoch
// bump has made it invalid: something a caller may check is still current
// more cheaply than it can load it again.
func (c *ttlCache[K, V]) stale(k K) (v V, ok bool) {
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || e.epoch != c.epoch.Load() {
		return v, false
	}
	return e.v, true
}

// put stores v as of epoch, the generation read before v was loaded, so
// that a bump during the load makes the entry stale at once.
func (c *ttlCache[K, V]) put(k K, v V, epoch uint64, now int64) {
	c.mu.Lock()
	if len(c.m) >= c.maxSize {
		// Drop everything stale; if that is not enough, start over. Both
		// are rare: the caches hold credentials and workspaces in use.
		cur := c.epoch.Load()
		for k, e := range c.m {
			if e.epoch != cur || now >= e.expires {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.maxSize {
			clear(c.m)
		}
	}
	c.m[k] = ttlEntry[V]{v: v, epoch: epoch, expires: now + int64(c.ttl)}
	c.mu.Unlock()
}

// each calls fn with every entry held, current or not: a snapshot taken
// under the read lock, so that fn runs without holding it.
func (c *ttlCache[K, V]) each(fn func(k K, v V)) {
	type kv struct {
		k K
		v V
	}
	c.mu.RLock()
	all := make([]kv, 0, len(c.m))
	for k, e := range c.m {
		all = append(all, kv{k, e.v})
	}
	c.mu.RUnlock()
	for _, e := range all {
		fn(e.k, e.v)
	}
}
