package routing

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// KeySet is a workspace's keys for one service, indexed once (when the
// keys change) so that planning a call costs the same with 1 key or
// 100,000. It carries live per-key call counts (AddUsed, SetUsed) for the
// quota skip and least-used, and its own round-robin counter. Safe for
// concurrent use.
type KeySet struct {
	r        *Router
	entries  []entry          // enabled keys in priority order (priority, id)
	cost     []int32          // entries in cost order
	index    map[string]int32 // id → entries index
	disabled []string         // ids of disabled keys, for Explain

	rr        atomic.Uint64
	usedEpoch atomic.Uint64 // bumped when a count goes down (period reset)
	// hints remember a prefix of an order whose keys are all unusable
	// until some time: [orderCost] for cost, [orderPriority] for priority,
	// round-robin and least-used.
	hints [2]atomic.Pointer[hint]

	lu struct { // least-used heap, built on first use
		mu    sync.Mutex
		built atomic.Bool
		heap  []int32 // entries indices; entry.heapPos is the inverse
	}
}

const (
	orderCost = iota
	orderPriority
)

// hintStride is how much further a prefix must reach before it is worth
// remembering (storing a hint allocates).
const hintStride = 16

// hint says entries [0, start) of an order are unusable until until (Unix
// ns), as long as neither epoch changed.
type hint struct {
	start       int
	until       int64
	routerEpoch uint64
	usedEpoch   uint64
}

type entry struct {
	c       Candidate // Used here is the count at build time; see used
	used    atomic.Int64
	st      atomic.Pointer[keyState]
	heapPos int32 // guarded by KeySet.lu.mu
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
	ks.cost = make([]int32, len(ks.entries))
	for j := range ks.cost {
		ks.cost[j] = int32(j)
	}
	slices.SortFunc(ks.cost, func(a, b int32) int { return byCost(&ks.entries[a].c, &ks.entries[b].c) })
	return ks
}

// Len returns the number of enabled keys.
func (ks *KeySet) Len() int { return len(ks.entries) }

// AddUsed adds delta to a key's calls this period (the metering counter's
// local mirror). It reports false for an id not in the set.
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
	ks.lu.mu.Lock()
	for i := range ks.entries {
		ks.entries[i].used.Store(0)
	}
	ks.lu.built.Store(false) // rebuilt on next least-used plan
	ks.lu.mu.Unlock()
	ks.usedEpoch.Add(1)
}

// updateUsed applies set to a key's count (returning the old value) and
// keeps the least-used heap in order if it is built.
func (ks *KeySet) updateUsed(keyID string, set func(*atomic.Int64) int64) bool {
	i, ok := ks.index[keyID]
	if !ok {
		return false
	}
	e := &ks.entries[i]
	var old int64
	if ks.lu.built.Load() {
		ks.lu.mu.Lock()
		old = set(&e.used)
		if ks.lu.built.Load() {
			ks.fix(int(e.heapPos))
		}
		ks.lu.mu.Unlock()
	} else {
		old = set(&e.used)
		if ks.lu.built.Load() { // built meanwhile, maybe from the old count
			ks.lu.mu.Lock()
			if ks.lu.built.Load() {
				ks.fix(int(e.heapPos))
			}
			ks.lu.mu.Unlock()
		}
	}
	if e.used.Load() < old { // a key may have quota again: drop the hints

		ks.usedEpoch.Add(1)
	}
	return true
}

// Plan appends to dst up to limit usable keys in the order strategy tries
// them (an unknown strategy is cost) and returns the extended slice. With
// a dst of capacity limit it does not allocate. Its cost is that of the
// keys it looks at: the first usable ones and the unusable ones before
// them, with long unusable runs skipped (see the package documentation).
func (ks *KeySet) Plan(dst []Candidate, strategy Strategy, now time.Time, limit int) []Candidate {
	if len(ks.entries) == 0 || limit <= 0 {
		return dst
	}
	t := now.UnixNano()
	switch strategy {
	case StrategyPriority:
		return ks.scan(dst, nil, orderPriority, t, limit)
	case StrategyRoundRobin:
		return ks.ring(dst, t, limit)
	case StrategyLeastUsed:
		return ks.leastUsed(dst, t, limit)
	default:
		return ks.scan(dst, ks.cost, orderCost, t, limit)
	}
}

// validHint returns the length of the unusable prefix of order o known at
// now (0 if none) and until when it holds.
func (ks *KeySet) validHint(o int, re, ue uint64, now int64) (int, int64) {
	if h := ks.hints[o].Load(); h != nil && h.routerEpoch == re && h.usedEpoch == ue && now < h.until {
		return h.start, h.until
	}
	return 0, forever
}

// noneUsable reports whether a hint says every key is unusable at now.
func (ks *KeySet) noneUsable(re, ue uint64, now int64) bool {
	for o := range ks.hints {
		if start, _ := ks.validHint(o, re, ue, now); start == len(ks.entries) {
			return true
		}
	}
	return false
}

func (ks *KeySet) remember(o, start int, until int64, re, ue uint64) {
	ks.hints[o].Store(&hint{start: start, until: until, routerEpoch: re, usedEpoch: ue})
}

// check returns why e is unusable at now and until when, or "".
func (ks *KeySet) check(e *entry, now int64) (int64, Reason) {
	if !e.c.quotaLeft(e.used.Load()) {
		return forever, ReasonQuotaExhausted
	}
	st := e.st.Load()
	if st.dead.Load() { // forgotten: the router has a fresh state by now
		st = ks.r.state(e.c.ID, nil)
		e.st.Store(st)
	}
	return st.blocked(now)
}

func (e *entry) candidate() Candidate {
	c := e.c
	c.Used = e.used.Load()
	return c
}

// scan walks order (nil: priority order) from the remembered unusable
// prefix and stops at limit usable keys.
func (ks *KeySet) scan(dst []Candidate, order []int32, o int, now int64, limit int) []Candidate {
	re, ue := ks.r.epoch.Load(), ks.usedEpoch.Load()
	n := len(ks.entries)
	if ks.noneUsable(re, ue, now) {
		return dst
	}
	start, until := ks.validHint(o, re, ue, now)
	prefix, found := start, 0
	for i := start; i < n && found < limit; i++ {
		j := i
		if order != nil {
			j = int(order[i])
		}
		e := &ks.entries[j]
		u, why := ks.check(e, now)
		if why == "" {
			dst = append(dst, e.candidate())
			found++
		} else if found == 0 {
			prefix, until = i+1, min(until, u)
		}
	}
	if prefix >= start+hintStride || (prefix == n && prefix > start) {
		ks.remember(o, prefix, until, re, ue)
	}
	return dst
}

// ring walks the priority order as a ring from the set's round-robin
// position, leaving out the remembered unusable prefix so that the keys
// after it share the turns evenly.
func (ks *KeySet) ring(dst []Candidate, now int64, limit int) []Candidate {
	re, ue := ks.r.epoch.Load(), ks.usedEpoch.Load()
	n := len(ks.entries)
	if ks.noneUsable(re, ue, now) {
		return dst
	}
	lo, _ := ks.validHint(orderPriority, re, ue, now)
	m := n - lo
	if m <= 0 {
		return dst
	}
	start := lo + int((ks.rr.Add(1)-1)%uint64(m))
	found, until := 0, int64(forever)
	for k := 0; k < m && found < limit; k++ {
		i := start + k
		if i >= n {
			i -= m
		}
		e := &ks.entries[i]
		u, why := ks.check(e, now)
		if why == "" {
			dst = append(dst, e.candidate())
			found++
		} else {
			until = min(until, u)
		}
	}
	if found == 0 {
		ks.remember(orderPriority, n, until, re, ue)
	}
	return dst
}

// leastUsed walks the least-used heap best first: O((limit + skipped) log)
// per plan.
func (ks *KeySet) leastUsed(dst []Candidate, now int64, limit int) []Candidate {
	re, ue := ks.r.epoch.Load(), ks.usedEpoch.Load()
	if ks.noneUsable(re, ue, now) {
		return dst
	}
	ks.lu.mu.Lock()
	defer ks.lu.mu.Unlock()
	if !ks.lu.built.Load() {
		ks.buildHeap()
	}
	h := ks.lu.heap
	var buf [2 * MaxAttempts]int32
	frontier := append(buf[:0], 0) // heap positions still to look at, a min-heap itself
	less := func(a, b int32) bool { return ks.less(h[a], h[b]) }
	found, until := 0, int64(forever)
	for len(frontier) > 0 && found < limit {
		p := frontier[0]
		frontier = popMin(frontier, less)
		e := &ks.entries[h[p]]
		u, why := ks.check(e, now)
		if why == "" {
			dst = append(dst, e.candidate())
			found++
		} else {
			until = min(until, u)
		}
		for _, c := range [2]int32{2*p + 1, 2*p + 2} {
			if int(c) < len(h) {
				frontier = pushMin(frontier, c, less)
			}
		}
	}
	if found == 0 {
		ks.remember(orderPriority, len(ks.entries), until, re, ue)
	}
	return dst
}

// less orders entries for least-used: fewer calls first, then priority
// order (the entries' own order).
func (ks *KeySet) less(a, b int32) bool {
	ua, ub := ks.entries[a].used.Load(), ks.entries[b].used.Load()
	return ua < ub || ua == ub && a < b
}

func (ks *KeySet) buildHeap() {
	h := ks.lu.heap[:0]
	for i := range ks.entries {
		h = append(h, int32(i))
	}
	ks.lu.heap = h
	for i := len(h)/2 - 1; i >= 0; i-- {
		ks.down(i)
	}
	for p, i := range h {
		ks.entries[i].heapPos = int32(p)
	}
	ks.lu.built.Store(true)
}

func (ks *KeySet) swap(p, q int) {
	h := ks.lu.heap
	h[p], h[q] = h[q], h[p]
	ks.entries[h[p]].heapPos = int32(p)
	ks.entries[h[q]].heapPos = int32(q)
}

func (ks *KeySet) fix(p int) {
	if !ks.down(p) {
		ks.up(p)
	}
}

func (ks *KeySet) up(p int) {
	h := ks.lu.heap
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
	h := ks.lu.heap
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
