package routing

import (
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Cooldown tuning.
const (
	// BaseBackoff is the cooldown after a failure without Retry-After; it
	// doubles with each consecutive failure of the key up to MaxBackoff.
	BaseBackoff = time.Second
	MaxBackoff  = time.Minute
	// MaxCooldown caps any wait an upstream asks for (Retry-After, a
	// rate-limit reset), against absurd or hostile values.
	MaxCooldown = 24 * time.Hour
	// DefaultAllowanceWait is how long a key is skipped after an upstream
	// said its remaining allowance is 0 without saying when it resets.
	DefaultAllowanceWait = time.Second
)

// Reason says why a key was put aside or is skipped.
type Reason string

// Reasons. The first three are cooldowns, the next three quarantines, the
// rest only explain skips (Explain, Status).
const (
	ReasonRateLimited Reason = "rate_limited"  // upstream 429
	ReasonServerError Reason = "server_error"  // upstream 5xx
	ReasonNetwork     Reason = "network_error" // no response: dial, reset, timeout

	ReasonRevoked Reason = "revoked" // upstream 401: the key is not accepted
	ReasonDrained Reason = "drained" // upstream 402: out of credit
	ReasonExpired Reason = "expired" // upstream 403: no longer allowed (expired, suspended)

	ReasonDisabled       Reason = "disabled"
	ReasonQuotaExhausted Reason = "quota_exhausted" // Used >= Quota this period
	ReasonCooldown       Reason = "cooldown"
	ReasonNoAllowance    Reason = "no_allowance" // the upstream said remaining 0
	ReasonQuarantined    Reason = "quarantined"
)

// QuarantineReason maps an upstream status to the reason a key is
// quarantined for, and "" for a status that does not quarantine.
func QuarantineReason(status int) Reason {
	switch status {
	case http.StatusUnauthorized:
		return ReasonRevoked
	case http.StatusPaymentRequired:
		return ReasonDrained
	case http.StatusForbidden:
		return ReasonExpired
	}
	return ""
}

// KeyFailure reports whether an upstream status counts against the key
// that got it (report it with ReportFailure) rather than being the
// upstream's answer (ReportSuccess): 0 (no response), 401, 402, 403, 429
// and 5xx except 501 and 505, which no other key would change.
func KeyFailure(status int) bool {
	switch {
	case status == 0, status == http.StatusTooManyRequests, QuarantineReason(status) != "":
		return true
	case status == http.StatusNotImplemented, status == http.StatusHTTPVersionNotSupported:
		return false
	}
	return status >= 500 && status <= 599
}

// Action is what a failure report did to the key.
type Action uint8

// Actions.
const (
	ActionNone       Action = iota // not the key's fault (e.g. 400, 404): nothing changed
	ActionCooldown                 // skipped until Verdict.Until
	ActionQuarantine               // skipped until ClearQuarantine or Forget
)

// Verdict is the outcome of ReportFailure.
type Verdict struct {
	Action Action
	Reason Reason
	// Until is when the key is usable again (cooldown or exhausted
	// allowance, whichever is later); zero for quarantine and none.
	Until time.Time
	// NewlyQuarantined is true for the one report that quarantined the
	// key: raise the alert and write the audit event then, once.
	NewlyQuarantined bool
}

// Router holds the health of every key it has seen and the round-robin
// counters of Plan. It is safe for concurrent use; the zero value is not
// usable, call NewRouter.
type Router struct {
	states sync.Map // key id → *keyState
	rr     sync.Map // lowest key id of a set → *atomic.Uint64 (Plan only)
	// epoch changes whenever a key may become usable earlier than its
	// state said (quarantine cleared, state forgotten): KeySets rebuild
	// their views then.
	epoch atomic.Uint64
}

// NewRouter returns an empty router.
func NewRouter() *Router { return &Router{} }

// keyState is the health of one key. Times are Unix nanoseconds; a zero
// time has passed.
type keyState struct {
	cooldownUntil  atomic.Int64
	allowanceUntil atomic.Int64
	failures       atomic.Int32 // consecutive, for the exponential backoff
	quarantine     atomic.Pointer[quarantine]
	dead           atomic.Bool // forgotten: look the id up again
}

type quarantine struct {
	reason Reason
	status int
	since  time.Time
}

const forever = math.MaxInt64

// blocked returns why st makes the key unusable at now and until when
// (forever for quarantine), or "" if it does not.
func (st *keyState) blocked(now int64) (until int64, why Reason) {
	if st.quarantine.Load() != nil {
		return forever, ReasonQuarantined
	}
	if u := st.cooldownUntil.Load(); u > now {
		until, why = u, ReasonCooldown
	}
	if u := st.allowanceUntil.Load(); u > now && u > until {
		until, why = u, ReasonNoAllowance
	}
	return until, why
}

func (st *keyState) reset() {
	st.cooldownUntil.Store(0)
	st.allowanceUntil.Store(0)
	st.failures.Store(0)
	st.quarantine.Store(nil)
}

// storeMax raises a to v unless it is already later.
func storeMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if old >= v || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// lookup returns the state of id, or nil if none was recorded.
func (r *Router) lookup(id string) *keyState {
	if v, ok := r.states.Load(id); ok {
		return v.(*keyState)
	}
	return nil
}

// state returns the state of id, creating it (from spare if not nil).
func (r *Router) state(id string, spare *keyState) *keyState {
	if st := r.lookup(id); st != nil {
		return st
	}
	if spare == nil {
		spare = new(keyState)
	}
	v, _ := r.states.LoadOrStore(id, spare)
	return v.(*keyState)
}

// ReportSuccess records a call the upstream answered (any status that is
// not a failure): it ends the key's run of failures and learns the
// remaining allowance from the upstream's rate-limit headers (nil h is
// fine), skipping the key until the reset when none is left.
func (r *Router) ReportSuccess(keyID string, h http.Header, now time.Time) {
	st := r.lookup(keyID)
	if st != nil && st.failures.Load() != 0 {
		st.failures.Store(0)
	}
	if len(h) == 0 {
		return
	}
	if until, ok := exhaustedUntil(h, now); ok && until.After(now) {
		if st == nil {
			st = r.state(keyID, nil)
		}
		storeMax(&st.allowanceUntil, until.UnixNano())
	}
}

// ReportFailure records a failed attempt with the upstream status (0 for
// a network error or timeout) and response headers (nil if none):
//
//   - 429, 5xx (but 501 and 505) and 0 put the key in cooldown until the
//     Retry-After the upstream sent (seconds or HTTP date, capped at
//     MaxCooldown), or else for BaseBackoff doubling with each consecutive
//     failure up to MaxBackoff;
//   - 401, 402 and 403 quarantine the key (revoked, drained, expired);
//   - any other status is not the key's fault and changes nothing.
//
// Rate-limit headers are learned as in ReportSuccess in every case.
func (r *Router) ReportFailure(keyID string, status int, h http.Header, now time.Time) Verdict {
	var learned int64
	if len(h) > 0 {
		if until, ok := exhaustedUntil(h, now); ok && until.After(now) {
			learned = until.UnixNano()
		}
	}
	if reason := QuarantineReason(status); reason != "" {
		isNew := r.quarantine(keyID, reason, status, now)
		if learned != 0 {
			storeMax(&r.state(keyID, nil).allowanceUntil, learned)
		}
		return Verdict{Action: ActionQuarantine, Reason: reason, NewlyQuarantined: isNew}
	}
	var reason Reason
	switch {
	case status == 0:
		reason = ReasonNetwork
	case status == http.StatusTooManyRequests:
		reason = ReasonRateLimited
	case KeyFailure(status):
		reason = ReasonServerError
	default:
		if learned != 0 {
			st := r.state(keyID, nil)
			storeMax(&st.allowanceUntil, learned)
			return Verdict{Action: ActionCooldown, Reason: ReasonNoAllowance, Until: time.Unix(0, learned)}
		}
		return Verdict{}
	}
	st := r.state(keyID, nil)
	n := st.failures.Add(1)
	until, ok := parseRetryAfter(first(h, "Retry-After"), now)
	if !ok {
		until = now.Add(backoff(n))
	}
	storeMax(&st.cooldownUntil, until.UnixNano())
	if learned != 0 {
		storeMax(&st.allowanceUntil, learned)
	}
	u := max(st.cooldownUntil.Load(), st.allowanceUntil.Load())
	return Verdict{Action: ActionCooldown, Reason: reason, Until: time.Unix(0, u)}
}

// backoff is the cooldown after the n-th consecutive failure.
func backoff(n int32) time.Duration {
	if n < 1 {
		n = 1
	}
	if n > 20 {
		return MaxBackoff
	}
	return min(BaseBackoff<<(n-1), MaxBackoff)
}

// Quarantine puts a key aside for reason until ClearQuarantine or Forget,
// e.g. to relay another instance's verdict. It reports whether the key was
// not quarantined before.
func (r *Router) Quarantine(keyID string, reason Reason, now time.Time) bool {
	return r.quarantine(keyID, reason, 0, now)
}

func (r *Router) quarantine(keyID string, reason Reason, status int, now time.Time) bool {
	st := r.state(keyID, nil)
	return st.quarantine.CompareAndSwap(nil, &quarantine{reason: reason, status: status, since: now})
}

// Quarantined reports whether a key is quarantined and why.
func (r *Router) Quarantined(keyID string) (bool, Reason) {
	if st := r.lookup(keyID); st != nil {
		if q := st.quarantine.Load(); q != nil {
			return true, q.reason
		}
	}
	return false, ""
}

// ClearQuarantine makes a quarantined key usable again (after the key was
// rotated or an admin re-enabled it). Cooldowns stay.
func (r *Router) ClearQuarantine(keyID string) {
	if st := r.lookup(keyID); st != nil && st.quarantine.Swap(nil) != nil {
		r.epoch.Add(1)
	}
}

// Forget drops everything known about a key: call it when the key is
// deleted or its secret rotated.
func (r *Router) Forget(keyID string) {
	if v, ok := r.states.LoadAndDelete(keyID); ok {
		st := v.(*keyState)
		st.dead.Store(true)
		st.reset()
		r.epoch.Add(1)
	}
	r.rr.Delete(keyID)
}

// Status is the health of one key, for diagnostics and admin views.
type Status struct {
	Quarantined      Reason    `json:"quarantined,omitempty"`
	QuarantinedSince time.Time `json:"quarantinedSince,omitzero"`
	// UpstreamStatus is the status that quarantined the key (0: Quarantine).
	UpstreamStatus int       `json:"upstreamStatus,omitempty"`
	CooldownUntil  time.Time `json:"cooldownUntil,omitzero"`
	AllowanceUntil time.Time `json:"allowanceUntil,omitzero"`
	Failures       int       `json:"failures,omitempty"`
}

// Status returns the health of a key at now; past times are left zero.
func (r *Router) Status(keyID string, now time.Time) Status {
	var s Status
	st := r.lookup(keyID)
	if st == nil {
		return s
	}
	if q := st.quarantine.Load(); q != nil {
		s.Quarantined, s.QuarantinedSince, s.UpstreamStatus = q.reason, q.since, q.status
	}
	n := now.UnixNano()
	if u := st.cooldownUntil.Load(); u > n {
		s.CooldownUntil = time.Unix(0, u)
	}
	if u := st.allowanceUntil.Load(); u > n {
		s.AllowanceUntil = time.Unix(0, u)
	}
	s.Failures = int(st.failures.Load())
	return s
}

// Why returns why c would be skipped at now, or "" if it is usable.
func (r *Router) Why(c Candidate, now time.Time) Reason {
	switch {
	case !c.Enabled:
		return ReasonDisabled
	case !c.quotaLeft(c.Used):
		return ReasonQuotaExhausted
	}
	if st := r.lookup(c.ID); st != nil {
		_, why := st.blocked(now.UnixNano())
		return why
	}
	return ""
}

// Plan returns the usable keys among keys in the order strategy tries
// them (an unknown strategy is cost). It sorts on every call, O(k log k):
// for small sets and as the reference the KeySet is tested against; the
// proxy's hot path uses a KeySet. Round-robin rotates per key set,
// identified by its lowest key id.
func (r *Router) Plan(strategy Strategy, keys []Candidate, now time.Time) []Candidate {
	idx := make([]int32, 0, len(keys))
	for i := range keys {
		if r.Why(keys[i], now) == "" {
			idx = append(idx, int32(i))
		}
	}
	cmpFn := byCost
	switch strategy {
	case StrategyPriority, StrategyRoundRobin:
		cmpFn = byPriority
	case StrategyLeastUsed:
		cmpFn = byUsed
	}
	slices.SortFunc(idx, func(a, b int32) int { return cmpFn(&keys[a], &keys[b]) })
	start := 0
	if strategy == StrategyRoundRobin && len(idx) > 1 {
		lowest := keys[0].ID
		for i := range keys[1:] {
			lowest = min(lowest, keys[i+1].ID)
		}
		v, ok := r.rr.Load(lowest)
		if !ok {
			v, _ = r.rr.LoadOrStore(lowest, new(atomic.Uint64))
		}
		start = int((v.(*atomic.Uint64).Add(1) - 1) % uint64(len(idx)))
	}
	out := make([]Candidate, len(idx))
	for k := range idx {
		out[k] = keys[idx[(start+k)%len(idx)]]
	}
	return out
}
