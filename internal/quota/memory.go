package quota

import (
	"context"
	"sync"
	"time"
)

// loadTimeout bounds reading a month's count from the usage store.
const loadTimeout = 10 * time.Second

// Memory counts in process. The first time it meets a workspace in a month
// it reads the month's count from the usage store (one query, shared by
// the calls that arrive meanwhile), so a restart does not reset quotas;
// from then on every decision is a map lookup and an increment under a
// mutex, with no I/O.
//
// Used alone (one wallet instance), Memory is exact. As Fallback's local
// counter it stands in for Redis on one of several instances and lets this
// instance use only its share of what the store says remains: see
// NewMemory.
type Memory struct {
	store     UsageStore
	instances int64

	mu      sync.Mutex
	entries map[memKey]*memEntry
	latest  int64 // the newest period seen (unix seconds), to sweep older months
}

type memKey struct {
	workspaceID string
	period      int64 // unix seconds of the month's first instant
}

// memEntry is one workspace's month. Its fields are guarded by Memory.mu,
// except ready, closed once base (or err) is loaded.
type memEntry struct {
	ready chan struct{}
	err   error
	base  int64 // the count the usage store held when the entry was made
	n     int64 // calls counted here since
}

// NewMemory returns an in-process counter reading each month's starting
// count from store (nil: start at zero). With instances > 1 (Fallback's
// local counter while Redis is down) a hard stop lets this instance count
// only floor(remaining/instances) calls, remaining being included minus the
// store's count when the entry was made, so that the instances together
// stay within the quota; instances <= 1 means the whole remainder.
func NewMemory(store UsageStore, instances int) *Memory {
	return &Memory{store: store, instances: int64(max(instances, 1)), entries: map[memKey]*memEntry{}}
}

// Reserve implements Counter. Its only I/O is the usage store query the
// first time a workspace is met in a month.
func (m *Memory) Reserve(ctx context.Context, workspaceID string, period time.Time, included int64, hardStop bool) (Reservation, error) {
	period = MonthStart(period)
	k := memKey{workspaceID, period.Unix()}
	for {
		e, err := m.entry(ctx, k, period)
		if err != nil {
			return Reservation{}, err
		}
		m.mu.Lock()
		if m.entries[k] != e {
			m.mu.Unlock()
			continue // drained while it loaded: take the new one
		}
		if hardStop && e.n >= m.allowance(e, included) {
			used := max(e.base+e.n, min(included, e.base+e.n*m.instances))
			m.mu.Unlock()
			return Reservation{}, &Exceeded{Included: included, Used: used, ResetAt: NextMonth(period)}
		}
		e.n++
		used := e.base + e.n
		m.mu.Unlock()
		return Reservation{WorkspaceID: workspaceID, Period: period, Included: included, HardStop: hardStop,
			Used: used, backend: inMemory, entry: e}, nil
	}
}

// allowance is how many calls this instance may count in e under a hard
// stop at included. m.mu must be held.
func (m *Memory) allowance(e *memEntry, included int64) int64 {
	return max(included-e.base, 0) / m.instances
}

// entry returns k's entry, loading its base from the store once.
func (m *Memory) entry(ctx context.Context, k memKey, period time.Time) (*memEntry, error) {
	m.mu.Lock()
	e := m.entries[k]
	if e == nil {
		e = &memEntry{ready: make(chan struct{})}
		if k.period > m.latest {
			// A new month: the older ones are done with. Reservations
			// still in flight hold their entry and settle on it.
			for old := range m.entries {
				if old.period < k.period {
					delete(m.entries, old)
				}
			}
			m.latest = k.period
		}
		m.entries[k] = e
		m.mu.Unlock()
		// Other calls wait on this load: it must not fail because this
		// one's client went away.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
		base, err := storeCount(lctx, m.store, k.workspaceID, period)
		cancel()
		m.mu.Lock()
		e.base, e.err = base, err
		if err != nil && m.entries[k] == e {
			delete(m.entries, k) // the next call tries again
		}
		close(e.ready)
		m.mu.Unlock()
	} else {
		m.mu.Unlock()
	}
	select {
	case <-e.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if e.err != nil {
		return nil, e.err
	}
	return e, nil
}

// Settle implements Counter; it never fails.
func (m *Memory) Settle(_ context.Context, res Reservation, happened bool) error {
	if happened || res.backend != inMemory || res.entry == nil {
		return nil
	}
	m.mu.Lock()
	if res.entry.n > 0 {
		res.entry.n--
	}
	m.mu.Unlock()
	return nil
}

// Used implements Counter: what this process knows, or the store's count
// for a month it has not met.
func (m *Memory) Used(ctx context.Context, workspaceID string, period time.Time) (int64, error) {
	period = MonthStart(period)
	m.mu.Lock()
	e := m.entries[memKey{workspaceID, period.Unix()}]
	m.mu.Unlock()
	if e != nil {
		select {
		case <-e.ready:
			if e.err == nil {
				m.mu.Lock()
				defer m.mu.Unlock()
				return e.base + e.n, nil
			}
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return storeCount(ctx, m.store, workspaceID, period)
}

// counted is the calls a Memory counted for one workspace and month.
type counted struct {
	workspaceID string
	period      time.Time
	n           int64
}

// drain forgets every entry and returns the calls counted in each (those
// with any), for Fallback to add to Redis when it returns.
func (m *Memory) drain() []counted {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []counted
	for k, e := range m.entries {
		if e.n > 0 {
			out = append(out, counted{k.workspaceID, time.Unix(k.period, 0).UTC(), e.n})
		}
	}
	m.entries = map[memKey]*memEntry{}
	return out
}

// Len returns the number of workspace-months held.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}
