package routing

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// KeySet is a workspace's keys for one service, indexed once (when the
// keys change) so that planning a call costs about the same with 1 key or
// 100,000. It carries live per-key call counts (AddUsed, SetUsed) for the
// quota skip and least-used, and its own round-robin counter. Safe for
// concurrent use.
//
// Plans walk a view: the keys not known to be out for a while (quota used
// up, quarantined, or cooling down for parkMin or more) in cost order and
// in priority order. A key found out for a while during a plan is stepped
// over and counted; once parkThreshold such keys accumulate, the view is
// rebuilt without them (O(k), amortised over the keys that left). A key
// coming back (its count lowered below its quota, a quarantine cleared, a
// state forgotten, the earliest cooldown among the left-out keys over)
// makes the view stale and the next plan rebuilds it. Keys in a short
// cooldown stay in the view and are stepped over.
type KeySet struct {
	r         *Router
	entries   []entry          // enabled keys in priority order (priority, id)
	costOrder []int32          // all entries in cost order
	index     map[string]int32 // id → entries index
	disabled  []string         // ids of disabled keys, for Explain

	rr    atomic.Uint64
	dirty atomic.Uint64 // bumped when a used-up key gets quota back
	view  atomic.Pointer[view]
	none  atomic.Pointer[noneHint]

	mu         sync.Mutex // serialises view rebuilds and guards the heap
	heap       []int32    // least-used heap of entries indices; entry.heapPos is the inverse
	heapBuilt  atomic.Bool
	heapSerial uint64 // view the heap was built from
}

// parkThreshold is how many keys found out for a while a view tolerates
// before it is rebuilt: a plan steps over at most this many of them.
const parkThreshold = 32

// parkMin is the shortest wait that takes a key out of the view. Keys that
// come back sooner stay in and are stepped over, which also keeps the
// rebuilds due to keys coming back at least parkMin apart.
const parkMin = time.Second

// view is an immutable selection of entries, valid until wake (Unix ns,
// when the first left-out key comes back); parked counts the entries in it
// found out for a while since it was built.
type view struct {
	serial      uint64
	routerEpoch uint64
	dirty       uint64
	wake        int64
	cost        []int32
	prio        []int32
	parked      atomic.Int32
}

// noneHint says that no key of view serial is usable before until.
type noneHint struct {
	serial uint64
	until  int64
}

type entry struct {
	c    Candidate // Used here is the count at build time; see used
	used atomic.Int64
	st   atomic.Pointer[keyState]
	// parked is the serial of the last view this entry was left out of or
	// found out for a while in.
	parked  atomic.Uint64
	heapPos int32 // -1 when not in the heap; guarded by KeySet.mu
}

// NewKeySet indexes cands (disabled keys are left out; of duplicate ids
// the first counts): O(k log k), once per change of the keys. The health
// state of each key is shared with the router, so reports made by id show
// in every KeySet holding the key.
func (r *Router) NewKeySet(cands []Candidate) *KeySet {
	ks := &KeySet{r: r}
	index := make(map[string]int32, len(cands))
	picked := make([]int, 0, len(cands))
	for i := range cands {
		c := &cands[i]
		if _, dup := index[c.ID]; dup {
			continue
		}
		if !c.Enabled {
			index[c.ID] = -1
			ks.disabled = append(ks.disabled, c.ID)
			continue
		}
		index[c.ID] = 0
		picked = append(picked, i)
	}
	for _, id := range ks.disabled {
		delete(index, id)
	}
	slices.SortFunc(picked, func(a, b int) int { return byPriority(&cands[a], &cands[b]) })

	ks.entries = make([]entry, len(picked))
	var spare []keyState // states for keys the router has not seen, allocated in blocks
	for j, i := range picked {
		e := &ks.entries[j]
		e.c = cands[i]
		e.used.Store(e.c.Used)
		e.heapPos = -1
		index[e.c.ID] = int32(j)
		st := r.lookup(e.c.ID)
		if st == nil {
			if len(spare) == 0 {
				spare = make([]keyState, min(len(picked)-j, 1024))
			}
			st = r.state(e.c.ID, &spare[0])
			spare = spare[1:]
		}
		e.st.Store(st)
	}
	ks.index = index
	ks.costOrder = make([]int32, len(ks.entries))
	for j := range ks.costOrder {
		ks.costOrder[j] = int32(j)
	}
	slices.SortFunc(ks.costOrder, func(a, b int32) int { return byCost(&ks.entries[a].c, &ks.entries[b].c) })
	ks.mu.Lock()
	ks.rebuild(0, 0)
	ks.mu.Unlock()
	return ks
}

// Len returns the number of enabled keys.
func (ks *KeySet) Len() int { return len(ks.entries) }

// Tier returns an enabled key's tier, or "" for a key not in the set.
func (ks *KeySet) Tier(keyID string) string {
	if i, ok := ks.index[keyID]; ok {
		return ks.entries[i].c.Tier
	}
	return ""
}

// AddUsed adds delta to a key's calls this period (the local mirror of the
// metering counter). It reports false for an id not in the set.
func (ks *KeySet) AddUsed(keyID string, delta int64) bool {
	return ks.updateUsed(keyID, func(u *atomic.Int64) int64 { return u.Add(delta) - delta })
}

// SetUsed sets a key's calls this period, e.g. from the shared counter or
// at the start of a period. It reports false for an id not in the set.
func (ks *KeySet) SetUsed(keyID string, used int64) bool {
	return ks.updateUsed(keyID, func(u *atomic.Int64) int64 { return u.Swap(used) })
}

// ResetUsed sets every key's calls to 0, at the start of a period.
func (ks *KeySet) ResetUsed() {
	ks.mu.Lock()
	for i := range ks.entries {
		ks.entries[i].used.Store(0)
	}
	ks.heapBuilt.Store(false)
	ks.mu.Unlock()
	ks.dirty.Add(1)
}

// updateUsed applies set to a key's count (set returns the old value),
// keeps the least-used heap in order and marks the view stale when the key
// gets quota back.
func (ks *KeySet) updateUsed(keyID string, set func(*atomic.Int64) int64) bool {
	i, ok := ks.index[keyID]
	if !ok {
		return false
	}
	e := &ks.entries[i]
	var old int64
	if ks.heapBuilt.Load() {
		ks.mu.Lock()
		old = set(&e.used)
		ks.fix(e)
		ks.mu.Unlock()
	} else {
		old = set(&e.used)
		if ks.heapBuilt.Load() { // built meanwhile, maybe from the old count
			ks.mu.Lock()
			ks.fix(e)
			ks.mu.Unlock()
		}
	}
	if !e.c.quotaLeft(old) && e.c.quotaLeft(e.used.Load()) {
		ks.dirty.Add(1)
	}
	return true
}

// Plan appends to dst up to limit usable keys in the order strategy tries
// them (an unknown strategy is cost) and returns the extended slice. With
// a dst of capacity limit it does not allocate. It looks at the first
// usable keys in the view and at the unusable ones before them.
func (ks *KeySet) Plan(dst []Candidate, strategy Strategy, now time.Time, limit int) []Candidate {
	if len(ks.entries) == 0 || limit <= 0 {
		return dst
	}
	t := now.UnixNano()
	v := ks.current(t)
	if h := ks.none.Load(); h != nil && h.serial == v.serial && t < h.until {
		return dst
	}
	var found int
	var until int64
	switch strategy {
	case StrategyPriority:
		dst, found, until = ks.scan(dst, v, v.prio, 0, t, limit)
	case StrategyRoundRobin:
		dst, found, until = ks.scan(dst, v, v.prio, ks.rr.Add(1)-1, t, limit)
	case StrategyLeastUsed:
		dst, found, until = ks.leastUsed(dst, v, t, limit)
	default:
		dst, found, until = ks.scan(dst, v, v.cost, 0, t, limit)
	}
	if found == 0 {
		ks.none.Store(&noneHint{serial: v.serial, until: until})
	}
	if v.parked.Load() >= parkThreshold && ks.mu.TryLock() {
		if ks.view.Load() == v {
			ks.rebuild(v.serial, t)
		}
		ks.mu.Unlock()
	}
	return dst
}

// current returns the view, rebuilding it first if a key may have come
// back since it was built.
func (ks *KeySet) current(now int64) *view {
	v := ks.view.Load()
	if !ks.stale(v, now) {
		return v
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if v = ks.view.Load(); ks.stale(v, now) {
		v = ks.rebuild(v.serial, now)
	}
	return v
}

func (ks *KeySet) stale(v *view, now int64) bool {
	return now >= v.wake || v.routerEpoch != ks.r.epoch.Load() || v.dirty != ks.dirty.Load()
}

// rebuild publishes a view of the entries not out for a while at now (0:
// only quota and quarantine count). Called with ks.mu held; the epochs are
// read first, so a key coming back during the rebuild leaves the new view
// stale rather than wrong.
func (ks *KeySet) rebuild(prev uint64, now int64) *view {
	v := &view{serial: prev + 1, routerEpoch: ks.r.epoch.Load(), dirty: ks.dirty.Load(), wake: forever}
	v.prio = make([]int32, 0, len(ks.entries))
	for i := range ks.entries {
		e := &ks.entries[i]
		if u := ks.outUntil(e, now); u == forever || (now != 0 && u-now >= int64(parkMin)) {
			if u != forever {
				v.wake = min(v.wake, u)
			}
			e.parked.Store(v.serial)
			continue
		}
		v.prio = append(v.prio, int32(i))
	}
	v.cost = make([]int32, 0, len(v.prio))
	for _, i := range ks.costOrder {
		if ks.entries[i].parked.Load() != v.serial {
			v.cost = append(v.cost, i)
		}
	}
	ks.view.Store(v)
	return v
}

// outUntil returns until when e is unusable at now: forever when only a
// count or state change brings it back (quota used up, quarantined), 0 or
// a past time when it is usable. now 0 ignores cooldowns.
func (ks *KeySet) outUntil(e *entry, now int64) int64 {
	if now == 0 {
		if !e.c.quotaLeft(e.used.Load()) || ks.state(e).quarantine.Load() != nil {
			return forever
		}
		return 0
	}
	u, _ := ks.check(e, now)
	return u
}

func (ks *KeySet) state(e *entry) *keyState {
	st := e.st.Load()
	if st.dead.Load() { // forgotten: the router has a fresh state by now
		st = ks.r.state(e.c.ID, nil)
		e.st.Store(st)
	}
	return st
}

// check returns why e is unusable at now and until when (forever: until a
// count or state change), or "".
func (ks *KeySet) check(e *entry, now int64) (int64, Reason) {
	if !e.c.quotaLeft(e.used.Load()) {
		return forever, ReasonQuotaExhausted
	}
	return ks.state(e).blocked(now)
}

// park counts e, found out for a while, against v.
func (v *view) park(e *entry) {
	if e.parked.Swap(v.serial) != v.serial {
		v.parked.Add(1)
	}
}

func (e *entry) candidate() Candidate {
	c := e.c
	c.Used = e.used.Load()
	return c
}

// scan walks order as a ring from position start (mod its length) and
// stops at limit usable keys. It returns how many it found and, when none,
// the earliest time one of the keys it stepped over comes back.
func (ks *KeySet) scan(dst []Candidate, v *view, order []int32, start uint64, now int64, limit int) ([]Candidate, int, int64) {
	n := len(order)
	if n == 0 {
		return dst, 0, forever
	}
	i := int(start % uint64(n))
	found, until := 0, int64(forever)
	for range n {
		e := &ks.entries[order[i]]
		if u, why := ks.check(e, now); why == "" {
			dst = append(dst, e.candidate())
			if found++; found == limit {
				break
			}
		} else {
			if u != forever {
				until = min(until, u)
			}
			if u-now >= int64(parkMin) {
				v.park(e)
			}
		}
		if i++; i == n {
			i = 0
		}
	}
	return dst, found, until
}

// leastUsed walks the least-used heap best first: O((limit + skipped) log
// k) per plan. Keys out until a count or state change leave the heap at
// once; keys cooling down stay until the view drops them.
func (ks *KeySet) leastUsed(dst []Candidate, v *view, now int64, limit int) ([]Candidate, int, int64) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if !ks.heapBuilt.Load() || ks.heapSerial != v.serial {
		ks.buildHeap(v)
	}
	h := ks.heap
	var buf [4 * MaxAttempts]int32
	frontier := append(buf[:0], 0) // heap positions to look at, a min-heap itself
	var outBuf [MaxAttempts]*entry
	out := outBuf[:0] // keys to take out of the heap afterwards
	less := func(a, b int32) bool { return ks.less(h[a], h[b]) }
	found, until := 0, int64(forever)
	for len(h) > 0 && len(frontier) > 0 && found < limit {
		p := frontier[0]
		frontier = popMin(frontier, less)
		e := &ks.entries[h[p]]
		if u, why := ks.check(e, now); why == "" {
			dst = append(dst, e.candidate())
			found++
		} else {
			if u == forever {
				out = append(out, e)
			} else {
				until = min(until, u)
			}
			if u-now >= int64(parkMin) {
				v.park(e)
			}
		}
		for _, c := range [2]int32{2*p + 1, 2*p + 2} {
			if int(c) < len(h) {
				frontier = pushMin(frontier, c, less)
			}
		}
	}
	for _, e := range out {
		ks.heapRemove(e)
	}
	return dst, found, until
}

// less orders entries for least-used: fewer calls first, then priority
// order (the entries' own order).
func (ks *KeySet) less(a, b int32) bool {
	ua, ub := ks.entries[a].used.Load(), ks.entries[b].used.Load()
	return ua < ub || ua == ub && a < b
}

func (ks *KeySet) buildHeap(v *view) {
	for i := range ks.entries {
		ks.entries[i].heapPos = -1
	}
	ks.heap = append(ks.heap[:0], v.prio...)
	for p, i := range ks.heap {
		ks.entries[i].heapPos = int32(p)
	}
	for p := len(ks.heap)/2 - 1; p >= 0; p-- {
		ks.down(p)
	}
	ks.heapSerial = v.serial
	ks.heapBuilt.Store(true)
}

// fix restores the heap order after e's count changed.
func (ks *KeySet) fix(e *entry) {
	if p := int(e.heapPos); ks.heapBuilt.Load() && p >= 0 {
		if !ks.down(p) {
			ks.up(p)
		}
	}
}

func (ks *KeySet) heapRemove(e *entry) {
	p := int(e.heapPos)
	if p < 0 {
		return
	}
	last := len(ks.heap) - 1
	if p != last {
		ks.swap(p, last)
	}
	ks.heap = ks.heap[:last]
	e.heapPos = -1
	if p != last {
		if !ks.down(p) {
			ks.up(p)
		}
	}
}

func (ks *KeySet) swap(p, q int) {
	h := ks.heap
	h[p], h[q] = h[q], h[p]
	ks.entries[h[p]].heapPos = int32(p)
	ks.entries[h[q]].heapPos = int32(q)
}

func (ks *KeySet) up(p int) {
	h := ks.heap
	for p > 0 {
		q := (p - 1) / 2
		if !ks.less(h[p], h[q]) {
			return
		}
		ks.swap(p, q)
		p = q
	}
}

func (ks *KeySet) down(p int) bool {
	h := ks.heap
	p0 := p
	for {
		c := 2*p + 1
		if c >= len(h) {
			break
		}
		if r := c + 1; r < len(h) && ks.less(h[r], h[c]) {
			c = r
		}
		if !ks.less(h[c], h[p]) {
			break
		}
		ks.swap(p, c)
		p = c
	}
	return p > p0
}

func pushMin(h []int32, x int32, less func(a, b int32) bool) []int32 {
	h = append(h, x)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !less(h[i], h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

func popMin(h []int32, less func(a, b int32) bool) []int32 {
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	for i := 0; ; {
		c := 2*i + 1
		if c >= n {
			break
		}
		if r := c + 1; r < n && less(h[r], h[c]) {
			c = r
		}
		if !less(h[c], h[i]) {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	return h
}

// Skip is one key a plan leaves out, and why.
type Skip struct {
	ID     string    `json:"id"`
	Reason Reason    `json:"reason"`
	Until  time.Time `json:"until,omitzero"` // when a cooldown or allowance wait ends
}

// Explain lists the keys unusable at now (at most limit, 0 for all),
// disabled ones last: for the "no usable key" problem response and admin
// views. O(k): not for the hot path.
func (ks *KeySet) Explain(now time.Time, limit int) []Skip {
	t := now.UnixNano()
	var out []Skip
	full := func() bool { return limit > 0 && len(out) >= limit }
	for i := range ks.entries {
		if full() {
			return out
		}
		e := &ks.entries[i]
		u, why := ks.check(e, t)
		if why == "" {
			continue
		}
		s := Skip{ID: e.c.ID, Reason: why}
		if u != forever {
			s.Until = time.Unix(0, u)
		}
		if why == ReasonQuarantined {
			_, s.Reason = ks.r.Quarantined(e.c.ID)
		}
		out = append(out, s)
	}
	for _, id := range ks.disabled {
		if full() {
			break
		}
		out = append(out, Skip{ID: id, Reason: ReasonDisabled})
	}
	return out
}

// Health counts a set's unusable keys by why.
type Health struct {
	Cooldown       int // in a cooldown or waiting for an upstream allowance
	Quarantined    int
	QuotaExhausted int
}

// Health counts the keys unusable at now: O(k), for metrics, not the hot
// path.
func (ks *KeySet) Health(now time.Time) Health {
	t := now.UnixNano()
	var h Health
	for i := range ks.entries {
		switch _, why := ks.check(&ks.entries[i], t); why {
		case ReasonQuarantined:
			h.Quarantined++
		case ReasonQuotaExhausted:
			h.QuotaExhausted++
		case ReasonCooldown, ReasonNoAllowance:
			h.Cooldown++
		}
	}
	return h
}
