package routing

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ids(cs []Candidate) string {
	var s []string
	for _, c := range cs {
		s = append(s, c.ID)
	}
	return strings.Join(s, ",")
}

// planBoth plans with Router.Plan and with a KeySet and fails if the two
// forms disagree; it returns the order.
func planBoth(t *testing.T, r *Router, strategy Strategy, keys []Candidate, now time.Time) string {
	t.Helper()
	got := ids(r.Plan(strategy, keys, now))
	if strategy != StrategyRoundRobin {
		ks := r.NewKeySet(keys)
		if viaSet := ids(ks.Plan(nil, strategy, now, len(keys))); viaSet != got {
			t.Errorf("%s: KeySet.Plan = %s, Router.Plan = %s", strategy, viaSet, got)
		}
	}
	return got
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// TestStrategyOrder protects the documented order of every strategy.
func TestStrategyOrder(t *testing.T) {
	keys := []Candidate{
		{ID: "paid-cheap-p2", Tier: TierPaid, Priority: 2, PriceMicros: 100, Used: 5, Enabled: true},
		{ID: "paid-dear", Tier: TierPaid, Priority: 0, PriceMicros: 900, Used: 1, Enabled: true},
		{ID: "free-p5", Tier: TierFree, Priority: 5, Quota: 10, Used: 9, Enabled: true},
		{ID: "paid-cheap-p1", Tier: TierPaid, Priority: 1, PriceMicros: 100, Used: 5, Enabled: true},
		{ID: "free-p1", Tier: TierFree, Priority: 1, Quota: 10, Used: 3, Enabled: true},
		{ID: "free-unlimited", Tier: TierFree, Priority: 1, Used: 7, Enabled: true},
		{ID: "free-empty", Tier: TierFree, Priority: 0, Quota: 10, Used: 10, Enabled: true},
		{ID: "off", Tier: TierFree, Priority: 0, Enabled: false},
		{ID: "paid-b", Tier: TierPaid, Priority: 1, PriceMicros: 100, Used: 0, Enabled: true},
	}
	tests := []struct {
		strategy Strategy
		want     string
	}{
		{StrategyCost, "free-p1,free-unlimited,free-p5,paid-b,paid-cheap-p1,paid-cheap-p2,paid-dear"},
		{"", "free-p1,free-unlimited,free-p5,paid-b,paid-cheap-p1,paid-cheap-p2,paid-dear"},
		{"bogus", "free-p1,free-unlimited,free-p5,paid-b,paid-cheap-p1,paid-cheap-p2,paid-dear"},
		{StrategyPriority, "paid-dear,free-p1,free-unlimited,paid-b,paid-cheap-p1,paid-cheap-p2,free-p5"},
		{StrategyLeastUsed, "paid-b,paid-dear,free-p1,paid-cheap-p1,paid-cheap-p2,free-unlimited,free-p5"},
	}
	for _, tt := range tests {
		t.Run(string(tt.strategy), func(t *testing.T) {
			if got := planBoth(t, NewRouter(), tt.strategy, keys, t0); got != tt.want {
				t.Errorf("order = %s\nwant    %s", got, tt.want)
			}
		})
	}
	t.Run("round-robin", func(t *testing.T) {
		r := NewRouter()
		ring := "paid-dear,free-p1,free-unlimited,paid-b,paid-cheap-p1,paid-cheap-p2,free-p5"
		ringIDs := strings.Split(ring, ",")
		// Both forms rotate over the same ring when every key is usable.
		keys := slices.DeleteFunc(slices.Clone(keys), func(c Candidate) bool { return c.ID == "free-empty" })
		ks := r.NewKeySet(keys)
		for i := range 2 * len(ringIDs) {
			want := strings.Join(slices.Concat(ringIDs[i%7:], ringIDs[:i%7]), ",")
			if got := ids(r.Plan(StrategyRoundRobin, keys, t0)); got != want {
				t.Errorf("Router.Plan #%d = %s, want %s", i, got, want)
			}
			if got := ids(ks.Plan(nil, StrategyRoundRobin, t0, 7)); got != want {
				t.Errorf("KeySet.Plan #%d = %s, want %s", i, got, want)
			}
		}
	})
}

func TestParseStrategy(t *testing.T) {
	for in, want := range map[string]Strategy{
		"": StrategyCost, "COST": StrategyCost, "priority": StrategyPriority,
		"round_robin": StrategyRoundRobin, "round-robin": StrategyRoundRobin, "least-used": StrategyLeastUsed,
	} {
		if got, ok := ParseStrategy(in); !ok || got != want {
			t.Errorf("ParseStrategy(%q) = %q %v", in, got, ok)
		}
	}
	if _, ok := ParseStrategy("cheapest"); ok {
		t.Error("ParseStrategy(cheapest) ok")
	}
}

// TestQuotaSkip protects the acceptance case: a free key with
// quota 3 serves 3 calls, then the 4th goes to the paid key.
func TestQuotaSkip(t *testing.T) {
	keys := []Candidate{
		{ID: "paid", Tier: TierPaid, PriceMicros: 2000, Enabled: true},
		{ID: "free", Tier: TierFree, Quota: 3, Used: 3, Enabled: true},
	}
	r := NewRouter()
	if got := planBoth(t, r, StrategyCost, keys, t0); got != "paid" {
		t.Fatalf("free key with Used 3 of 3: plan = %s, want paid", got)
	}
	if got := r.Why(keys[1], t0); got != ReasonQuotaExhausted {
		t.Errorf("Why = %q", got)
	}

	keys[1].Used = 0
	ks := r.NewKeySet(keys)
	var served []string
	for range 5 {
		plan := ks.Plan(nil, StrategyCost, t0, MaxAttempts)
		served = append(served, plan[0].ID)
		ks.AddUsed(plan[0].ID, 1)
	}
	if got := strings.Join(served, ","); got != "free,free,free,paid,paid" {
		t.Errorf("served = %s", got)
	}
	// A new period gives the free key its quota back.
	ks.ResetUsed()
	if got := ks.Plan(nil, StrategyCost, t0, 1); got[0].ID != "free" {
		t.Errorf("after ResetUsed: %s", ids(got))
	}
}

// TestRetryAfterSeconds protects cooldown timing: a 429 with Retry-After:
// 30 skips the key until exactly now+30s, and the next key is chosen.
func TestRetryAfterSeconds(t *testing.T) {
	r := NewRouter()
	keys := []Candidate{
		{ID: "A", Tier: TierFree, Enabled: true},
		{ID: "B", Tier: TierPaid, PriceMicros: 10, Enabled: true},
	}
	ks := r.NewKeySet(keys)
	v := r.ReportFailure("A", 429, hdr("Retry-After", "30"), t0)
	want := t0.Add(30 * time.Second)
	if v.Action != ActionCooldown || v.Reason != ReasonRateLimited || !v.Until.Equal(want) {
		t.Fatalf("verdict = %+v, want cooldown until %v", v, want)
	}
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{t0, "B"},
		{want.Add(-time.Nanosecond), "B"},
		{want, "A,B"},
	} {
		if got := planBoth(t, r, StrategyCost, keys, tc.at); got != tc.want {
			t.Errorf("at %v: plan = %s, want %s", tc.at.Sub(t0), got, tc.want)
		}
		if got := ids(ks.Plan(nil, StrategyCost, tc.at, 3)); got != tc.want {
			t.Errorf("at %v: cached KeySet plan = %s, want %s", tc.at.Sub(t0), got, tc.want)
		}
	}
	if s := r.Status("A", t0); !s.CooldownUntil.Equal(want) || s.Failures != 1 {
		t.Errorf("Status = %+v", s)
	}
	if got := ks.Explain(t0, 0); len(got) != 1 || got[0].ID != "A" || got[0].Reason != ReasonCooldown || !got[0].Until.Equal(want) {
		t.Errorf("Explain = %+v", got)
	}
}

// TestRetryAfterDate protects the HTTP-date form of Retry-After.
func TestRetryAfterDate(t *testing.T) {
	r := NewRouter()
	until := t0.Add(90 * time.Second)
	v := r.ReportFailure("A", 503, hdr("Retry-After", until.Format(http.TimeFormat)), t0)
	if v.Reason != ReasonServerError || !v.Until.Equal(until) {
		t.Fatalf("verdict = %+v, want until %v", v, until)
	}
	c := Candidate{ID: "A", Enabled: true}
	if r.Why(c, until.Add(-time.Second)) != ReasonCooldown || r.Why(c, until) != "" {
		t.Error("cooldown does not end at the HTTP date")
	}
	// A date in the past means now; an absurd delay is capped.
	if v := r.ReportFailure("B", 429, hdr("Retry-After", t0.Add(-time.Hour).Format(http.TimeFormat)), t0); !v.Until.Equal(t0) {
		t.Errorf("past date: until %v", v.Until)
	}
	if v := r.ReportFailure("C", 429, hdr("Retry-After", "99999999999"), t0); !v.Until.Equal(t0.Add(MaxCooldown)) {
		t.Errorf("huge Retry-After: until %v", v.Until)
	}
}

// TestBackoff protects the default cooldown: short, doubling with each
// consecutive failure, capped, and back to short after a success.
func TestBackoff(t *testing.T) {
	r := NewRouter()
	var got []time.Duration
	for range 9 {
		v := r.ReportFailure("A", 0, nil, t0)
		if v.Reason != ReasonNetwork {
			t.Fatalf("reason %q", v.Reason)
		}
		got = append(got, v.Until.Sub(t0))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(got, want) {
		t.Errorf("backoff = %v, want %v", got, want)
	}
	later := t0.Add(2 * time.Minute)
	r.ReportSuccess("A", nil, later)
	if v := r.ReportFailure("A", 502, nil, later); v.Until.Sub(later) != time.Second {
		t.Errorf("after success: %v", v.Until.Sub(later))
	}
	// Not the key's fault: nothing changes.
	if v := r.ReportFailure("A", 404, nil, later); v.Action != ActionNone {
		t.Errorf("404 verdict = %+v", v)
	}
	if v := r.ReportFailure("A", 501, nil, later); v.Action != ActionNone {
		t.Errorf("501 verdict = %+v", v)
	}
}

// TestQuarantine protects 401/402/403 handling: the key is put aside with
// the right reason, the first report alone says so (one alert), and it
// comes back only when cleared or forgotten.
func TestQuarantine(t *testing.T) {
	for status, reason := range map[int]Reason{401: ReasonRevoked, 402: ReasonDrained, 403: ReasonExpired} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			r := NewRouter()
			keys := []Candidate{{ID: "A", Priority: 0, Enabled: true}, {ID: "B", Priority: 1, Enabled: true}}
			ks := r.NewKeySet(keys)
			v := r.ReportFailure("A", status, nil, t0)
			if v.Action != ActionQuarantine || v.Reason != reason || !v.NewlyQuarantined {
				t.Fatalf("verdict = %+v", v)
			}
			if v := r.ReportFailure("A", status, nil, t0); !(v.Action == ActionQuarantine && !v.NewlyQuarantined) {
				t.Errorf("second verdict = %+v, want not new", v)
			}
			if q, why := r.Quarantined("A"); !q || why != reason {
				t.Errorf("Quarantined = %v %q", q, why)
			}
			far := t0.Add(365 * 24 * time.Hour)
			if got := planBoth(t, r, StrategyPriority, keys, far); got != "B" {
				t.Errorf("plan a year later = %s, want B", got)
			}
			if ex := ks.Explain(t0, 0); len(ex) != 1 || ex[0].Reason != reason {
				t.Errorf("Explain = %+v", ex)
			}
			r.ClearQuarantine("A")
			if got := ids(ks.Plan(nil, StrategyPriority, t0, 3)); got != "A,B" {
				t.Errorf("after ClearQuarantine = %s", got)
			}
			if r.Quarantine("A", ReasonRevoked, t0) != true || r.Quarantine("A", ReasonRevoked, t0) != false {
				t.Error("Quarantine did not report the first time only")
			}
			r.Forget("A")
			if q, _ := r.Quarantined("A"); q {
				t.Error("Forget kept the quarantine")
			}
			if got := ids(ks.Plan(nil, StrategyPriority, t0, 3)); got != "A,B" {
				t.Errorf("after Forget = %s", got)
			}
			// Reports after Forget reach KeySets built before it.
			r.ReportFailure("A", status, nil, t0)
			if got := ids(ks.Plan(nil, StrategyPriority, t0, 3)); got != "B" {
				t.Errorf("quarantined again after Forget: plan = %s", got)
			}
		})
	}
}

// TestHeaderLearning protects "stop choosing a key before it would answer
// 429": each header family that says no allowance is left skips the key
// until its reset, in every reset format.
func TestHeaderLearning(t *testing.T) {
	epoch := t0.Add(45 * time.Second).Unix()
	tests := []struct {
		name string
		h    http.Header
		wait time.Duration // 0: not blocked
	}{
		{"none", nil, 0},
		{"ietf", hdr("RateLimit-Remaining", "0", "RateLimit-Reset", "30"), 30 * time.Second},
		{"ietf remaining left", hdr("RateLimit-Remaining", "1", "RateLimit-Reset", "30"), 0},
		{"ietf structured -06", hdr("RateLimit", "limit=100, remaining=0, reset=12"), 12 * time.Second},
		{"ietf structured -07", hdr("RateLimit", `"default";r=0;t=20`), 20 * time.Second},
		{"ietf structured two policies", hdr("RateLimit", `"burst";r=5;t=1, "daily";r=0;t=3600`), time.Hour},
		{"ietf structured left", hdr("RateLimit", `"default";r=3;t=20`), 0},
		{"x reset seconds", hdr("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "60"), time.Minute},
		{"x reset epoch", hdr("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", fmt.Sprint(epoch)), 45 * time.Second},
		{"x reset epoch ms", hdr("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", fmt.Sprint(epoch*1000)), 45 * time.Second},
		{"x reset fractional", hdr("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "1.5"), 1500 * time.Millisecond},
		{"x reset missing", hdr("X-RateLimit-Remaining", "0"), DefaultAllowanceWait},
		{"x reset epoch past", hdr("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", fmt.Sprint(t0.Unix()-10)), 0},
		{"x remaining left", hdr("X-RateLimit-Remaining", "17", "X-RateLimit-Reset", "60"), 0},
		{"x-rate-limit", hdr("X-Rate-Limit-Remaining", "0", "X-Rate-Limit-Reset", "5"), 5 * time.Second},
		{"openai 1s", hdr("x-ratelimit-remaining-requests", "0", "x-ratelimit-reset-requests", "1s"), time.Second},
		{"openai 6m0s", hdr("x-ratelimit-remaining-requests", "0", "x-ratelimit-reset-requests", "6m0s"), 6 * time.Minute},
		{"openai 20ms", hdr("x-ratelimit-remaining-requests", "0", "x-ratelimit-reset-requests", "20ms"), 20 * time.Millisecond},
		{"openai 7.66s", hdr("x-ratelimit-remaining-requests", "0", "x-ratelimit-reset-requests", "7.66s"), 7660 * time.Millisecond},
		{"openai days", hdr("x-ratelimit-remaining-requests", "0", "x-ratelimit-reset-requests", "0d1h30m"), 90 * time.Minute},
		{"openai tokens", hdr("x-ratelimit-remaining-requests", "99", "x-ratelimit-remaining-tokens", "0", "x-ratelimit-reset-tokens", "12ms"), 12 * time.Millisecond},
		{"openai left", hdr("x-ratelimit-remaining-requests", "59", "x-ratelimit-reset-requests", "1s"), 0},
		{"anthropic rfc3339", hdr("anthropic-ratelimit-requests-remaining", "0", "anthropic-ratelimit-requests-reset", t0.Add(10*time.Second).Format(time.RFC3339)), 10 * time.Second},
		{"latest reset wins", hdr("RateLimit-Remaining", "0", "RateLimit-Reset", "5", "x-ratelimit-remaining-requests", "0", "x-ratelimit-reset-requests", "9s"), 9 * time.Second},
		{"garbage", hdr("X-RateLimit-Remaining", "lots", "X-RateLimit-Reset", "soon"), 0},
		{"capped", hdr("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "999999"), MaxCooldown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRouter()
			r.ReportSuccess("k", tt.h, t0)
			c := Candidate{ID: "k", Enabled: true}
			st := r.Status("k", t0)
			if tt.wait == 0 {
				if why := r.Why(c, t0); why != "" || !st.AllowanceUntil.IsZero() {
					t.Fatalf("blocked: %q %+v", why, st)
				}
				return
			}
			if got := st.AllowanceUntil.Sub(t0); got != tt.wait {
				t.Fatalf("allowance wait = %v, want %v", got, tt.wait)
			}
			if why := r.Why(c, t0.Add(tt.wait-time.Nanosecond)); why != ReasonNoAllowance {
				t.Errorf("just before reset: Why = %q", why)
			}
			if why := r.Why(c, t0.Add(tt.wait)); why != "" {
				t.Errorf("at reset: Why = %q", why)
			}
		})
	}
}

// TestFailureLearnsHeaders protects learning on failures too: a 429
// without Retry-After but with a reset waits for the reset.
func TestFailureLearnsHeaders(t *testing.T) {
	r := NewRouter()
	v := r.ReportFailure("k", 429, hdr("x-ratelimit-remaining-requests", "0", "x-ratelimit-reset-requests", "6m0s"), t0)
	if v.Action != ActionCooldown || v.Until.Sub(t0) != 6*time.Minute {
		t.Errorf("verdict = %+v", v)
	}
	v = r.ReportFailure("j", 400, hdr("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "9"), t0)
	if v.Reason != ReasonNoAllowance || v.Until.Sub(t0) != 9*time.Second {
		t.Errorf("400 with exhausted allowance: %+v", v)
	}
}

// TestRetryable is the truth table of the retry policy.
func TestRetryable(t *testing.T) {
	dial := errors.New("dial tcp: connection refused")
	tests := []struct {
		method   string
		status   int
		sentBody bool
		idemKey  bool
		netErr   error
		reached  bool
		want     bool
	}{
		// Network errors.
		{"GET", 0, false, false, dial, false, true},
		{"GET", 0, false, false, dial, true, true},
		{"POST", 0, false, false, dial, false, true},  // never reached: safe
		{"POST", 0, false, false, dial, true, false},  // reached: may have acted
		{"POST", 0, true, false, dial, false, false},  // body bytes went out
		{"POST", 0, true, true, dial, true, true},     // Idempotency-Key
		{"PATCH", 0, false, false, dial, true, false}, // PATCH is not idempotent
		{"PUT", 0, true, false, dial, true, true},     // PUT is
		{"DELETE", 0, false, false, dial, true, true}, // DELETE is
		{"", 0, false, false, nil, true, true},        // "" is GET; status 0 is a network error
		{"GET", 0, false, false, context.Canceled, false, false},
		{"GET", 0, false, false, fmt.Errorf("wrapped: %w", context.Canceled), false, false},
		{"GET", 0, false, false, context.DeadlineExceeded, true, true},
		{"POST", 0, false, false, context.DeadlineExceeded, true, false},
		// 429 and key refusals: any method.
		{"POST", 429, true, false, nil, true, true},
		{"GET", 429, false, false, nil, true, true},
		{"POST", 401, true, false, nil, true, true},
		{"POST", 402, true, false, nil, true, true},
		{"POST", 403, true, false, nil, true, true},
		// 5xx: idempotent or Idempotency-Key only.
		{"GET", 500, false, false, nil, true, true},
		{"GET", 502, false, false, nil, true, true},
		{"HEAD", 503, false, false, nil, true, true},
		{"OPTIONS", 504, false, false, nil, true, true},
		{"POST", 500, true, false, nil, true, false},
		{"POST", 503, true, false, nil, true, false},
		{"POST", 503, true, true, nil, true, true},
		{"PATCH", 502, true, true, nil, true, true},
		{"GET", 501, false, false, nil, true, false},
		{"GET", 505, false, false, nil, true, false},
		// Everything else.
		{"GET", 200, false, false, nil, true, false},
		{"GET", 200, false, false, dial, true, false}, // body broke off after headers
		{"GET", 302, false, false, nil, true, false},
		{"GET", 400, false, false, nil, true, false},
		{"GET", 404, false, false, nil, true, false},
		{"POST", 409, true, true, nil, true, false},
		{"GET", 422, false, false, nil, true, false},
	}
	for _, tt := range tests {
		got := Retryable(tt.method, tt.status, tt.sentBody, tt.idemKey, tt.netErr, tt.reached)
		if got != tt.want {
			t.Errorf("Retryable(%q, %d, sentBody=%v, idemKey=%v, %v, reached=%v) = %v, want %v",
				tt.method, tt.status, tt.sentBody, tt.idemKey, tt.netErr, tt.reached, got, tt.want)
		}
	}
}

// TestRoundRobinFairness protects even rotation under concurrency: the
// counter is atomic, so N plans over k keys give each key N/k first turns.
func TestRoundRobinFairness(t *testing.T) {
	const keysN, workers, perWorker = 4, 8, 1000
	var keys []Candidate
	for i := range keysN {
		keys = append(keys, Candidate{ID: fmt.Sprintf("k%d", i), Enabled: true})
	}
	r := NewRouter()
	ks := r.NewKeySet(keys)
	var mu sync.Mutex
	firstSet, firstPlan := map[string]int{}, map[string]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			a, b := map[string]int{}, map[string]int{}
			var buf [MaxAttempts]Candidate
			for range perWorker {
				p := ks.Plan(buf[:0], StrategyRoundRobin, t0, MaxAttempts)
				a[p[0].ID]++
				b[r.Plan(StrategyRoundRobin, keys, t0)[0].ID]++
			}
			mu.Lock()
			for k, v := range a {
				firstSet[k] += v
			}
			for k, v := range b {
				firstPlan[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, k := range keys {
		if firstSet[k.ID] != workers*perWorker/keysN || firstPlan[k.ID] != workers*perWorker/keysN {
			t.Errorf("%s first: KeySet %d, Plan %d, want %d each", k.ID, firstSet[k.ID], firstPlan[k.ID], workers*perWorker/keysN)
		}
	}
	// Two key sets rotate independently.
	other := []Candidate{{ID: "x1", Enabled: true}, {ID: "x2", Enabled: true}}
	if a, b := r.Plan(StrategyRoundRobin, other, t0)[0].ID, r.Plan(StrategyRoundRobin, other, t0)[0].ID; a != "x1" || b != "x2" {
		t.Errorf("independent rotation: %s %s", a, b)
	}
}

// TestUnusablePrefixHint protects the skip of long unusable runs: it must
// never hide a key that became usable again.
func TestUnusablePrefixHint(t *testing.T) {
	const n = 1000
	var keys []Candidate
	for i := range n {
		keys = append(keys, Candidate{ID: fmt.Sprintf("f%04d", i), Tier: TierFree, Priority: i, Quota: 3, Used: 3, Enabled: true})
	}
	keys = append(keys, Candidate{ID: "paid", Tier: TierPaid, Priority: n, PriceMicros: 1, Enabled: true})
	r := NewRouter()
	ks := r.NewKeySet(keys)
	for _, s := range []Strategy{StrategyCost, StrategyPriority, StrategyRoundRobin, StrategyLeastUsed} {
		for range 3 {
			if got := ids(ks.Plan(nil, s, t0, 3)); got != "paid" {
				t.Fatalf("%s: plan = %s, want paid", s, got)
			}
		}
	}
	// A quota coming back (a new period from the shared counter) shows at once.
	ks.SetUsed("f0500", 0)
	if got := ids(ks.Plan(nil, StrategyCost, t0, 3)); got != "f0500,paid" {
		t.Errorf("after SetUsed: %s", got)
	}
	ks.AddUsed("f0500", 3)

	// Cooling-down keys come back when their cooldown ends.
	r.ReportFailure("paid", 429, hdr("Retry-After", "10"), t0)
	for _, s := range []Strategy{StrategyCost, StrategyRoundRobin, StrategyLeastUsed} {
		if got := ids(ks.Plan(nil, s, t0, 3)); got != "" {
			t.Errorf("%s: all unusable: %s", s, got)
		}
	}
	if got := ids(ks.Plan(nil, StrategyCost, t0.Add(10*time.Second), 3)); got != "paid" {
		t.Errorf("after cooldown: %s", got)
	}

	// A cleared quarantine shows at once.
	r.ReportFailure("paid", 401, nil, t0)
	later := t0.Add(time.Hour)
	if got := ids(ks.Plan(nil, StrategyCost, later, 3)); got != "" {
		t.Errorf("quarantined: %s", got)
	}
	r.ClearQuarantine("paid")
	if got := ids(ks.Plan(nil, StrategyCost, later, 3)); got != "paid" {
		t.Errorf("after ClearQuarantine: %s", got)
	}
	if got := ks.Explain(later, 2); len(got) != 2 || got[0].Reason != ReasonQuotaExhausted {
		t.Errorf("Explain(limit 2) = %+v", got)
	}
}

// TestKeySetMatchesPlan is a randomized check that the indexed form
// returns exactly the prefix of what the reference form returns, under
// random usage, cooldowns, quarantines, forgets and period resets.
func TestKeySetMatchesPlan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 60 {
		r := NewRouter()
		n, idSpace, quota := 1+rng.IntN(60), 80, 4
		if round%2 == 1 { // long runs of used-up keys: exercises the prefix hints
			n, idSpace, quota = 100+rng.IntN(200), 400, 2
		}
		keys := make([]Candidate, n)
		for i := range keys {
			keys[i] = Candidate{
				ID:          fmt.Sprintf("k%03d", rng.IntN(idSpace)),
				Tier:        []string{TierFree, TierPaid}[rng.IntN(2)],
				Priority:    rng.IntN(4),
				PriceMicros: int64(rng.IntN(3) * 100),
				Quota:       int64(1 + rng.IntN(quota)),
				Used:        int64(rng.IntN(4)),
				Enabled:     rng.IntN(8) != 0,
			}
			if round%2 == 0 && rng.IntN(4) == 0 {
				keys[i].Quota = 0
			}
			if round%2 == 1 && rng.IntN(12) != 0 {
				keys[i].Used = keys[i].Quota
			}
		}
		ks := r.NewKeySet(keys)
		// The reference sees what the set sees: first of each id, live Used.
		ref := func() []Candidate {
			var out []Candidate
			seen := map[string]bool{}
			for _, c := range keys {
				if seen[c.ID] {
					continue
				}
				seen[c.ID] = true
				out = append(out, c)
			}
			return out
		}
		now := t0
		for step := range 200 {
			now = now.Add(time.Duration(rng.IntN(1500)) * time.Millisecond)
			k := &keys[rng.IntN(n)]
			switch op := rng.IntN(10); op {
			case 0:
				var h http.Header
				if rng.IntN(2) == 0 {
					h = hdr("Retry-After", fmt.Sprint(rng.IntN(6)))
				}
				r.ReportFailure(k.ID, []int{0, 429, 500, 503}[rng.IntN(4)], h, now)
			case 1:
				if rng.IntN(4) == 0 {
					r.ReportFailure(k.ID, 401, nil, now)
				}
			case 2:
				r.ClearQuarantine(k.ID)
			case 3:
				if rng.IntN(3) == 0 {
					r.Forget(k.ID)
				}
			case 5:
				if u := int64(rng.IntN(3)); ks.SetUsed(k.ID, u) {
					for i := range keys {
						if keys[i].ID == k.ID {
							keys[i].Used = u
						}
					}
				}
			case 4:
				if rng.IntN(5) == 0 {
					ks.ResetUsed()
					for i := range keys {
						keys[i].Used = 0
					}
				}
			default:
				if ks.AddUsed(k.ID, 1) {
					for i := range keys {
						if keys[i].ID == k.ID {
							keys[i].Used++
						}
					}
				}
			}
			for _, s := range []Strategy{StrategyCost, StrategyPriority, StrategyLeastUsed} {
				want := r.Plan(s, ref(), now)
				limit := 1 + rng.IntN(MaxAttempts)
				got := ks.Plan(nil, s, now, limit)
				if w := want[:min(limit, len(want))]; ids(got) != ids(w) {
					t.Fatalf("round %d step %d %s limit %d: KeySet %s, Plan %s", round, step, s, limit, ids(got), ids(w))
				}
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("candidate %+v != %+v", got[i], want[i])
					}
				}
			}
			if got, want := len(ks.Plan(nil, StrategyRoundRobin, now, n)), len(r.Plan(StrategyRoundRobin, ref(), now)); got != want {
				t.Fatalf("round-robin: %d usable, want %d", got, want)
			}
		}
	}
}

// TestConcurrentUse exercises every entry point at once under -race.
func TestConcurrentUse(t *testing.T) {
	var keys []Candidate
	for i := range 50 {
		keys = append(keys, Candidate{ID: fmt.Sprint(i), Tier: []string{TierFree, TierPaid}[i%2], Quota: 100, Priority: i % 5, Enabled: true})
	}
	r := NewRouter()
	ks := r.NewKeySet(keys)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			var buf [MaxAttempts]Candidate
			for i := range 2000 {
				now := t0.Add(time.Duration(i) * time.Millisecond)
				s := Strategies[(w+i)%len(Strategies)]
				for _, c := range ks.Plan(buf[:0], s, now, MaxAttempts) {
					ks.AddUsed(c.ID, 1)
					switch i % 50 {
					case 0:
						r.ReportFailure(c.ID, 429, hdr("Retry-After", "1"), now)
					case 1:
						r.ReportSuccess(c.ID, hdr("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "1"), now)
					case 2:
						r.ReportFailure(c.ID, 401, nil, now)
					case 3:
						r.ClearQuarantine(c.ID)
					case 4:
						r.Forget(c.ID)
					case 5:
						ks.SetUsed(c.ID, 0)
					default:
						r.ReportSuccess(c.ID, nil, now)
					}
				}
				if i%500 == 0 {
					ks.ResetUsed()
					_ = ks.Explain(now, 5)
				}
			}
		})
	}
	wg.Wait()
}

func benchKeys(n int) []Candidate {
	keys := make([]Candidate, n)
	for i := range keys {
		keys[i] = Candidate{
			ID:          fmt.Sprintf("key_%08d", i),
			Tier:        []string{TierFree, TierPaid}[i%2],
			Priority:    i % 10,
			PriceMicros: int64(1000 + i%7),
			Quota:       0,
			Used:        int64(i % 1000),
			Enabled:     true,
		}
	}
	return keys
}

var sizes = []int{1, 1_000, 100_000}

// BenchmarkRouterPlan is the reference form: it sorts every call.
func BenchmarkRouterPlan(b *testing.B) {
	for _, n := range sizes {
		keys := benchKeys(n)
		r := NewRouter()
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = r.Plan(StrategyCost, keys, t0)
			}
		})
	}
}

// BenchmarkKeySetPlan is the proxy's per-call cost.
func BenchmarkKeySetPlan(b *testing.B) {
	for _, s := range Strategies {
		for _, n := range sizes {
			r := NewRouter()
			ks := r.NewKeySet(benchKeys(n))
			b.Run(fmt.Sprintf("%s/keys=%d", s, n), func(b *testing.B) {
				var buf [MaxAttempts]Candidate
				b.ReportAllocs()
				for b.Loop() {
					p := ks.Plan(buf[:0], s, t0, MaxAttempts)
					ks.AddUsed(p[0].ID, 1)
				}
			})
		}
	}
}

// BenchmarkKeySetPlanExhausted: after the set was built, all but 10 of the
// keys use up their quota (with fewer calls than the others, the worst
// case for least-used): plans must not keep stepping over them.
func BenchmarkKeySetPlanExhausted(b *testing.B) {
	for _, n := range sizes[1:] {
		for _, s := range Strategies {
			keys := benchKeys(n)
			for i := range keys[:n-10] {
				keys[i].Tier, keys[i].Quota = TierFree, 5
			}
			r := NewRouter()
			ks := r.NewKeySet(keys)
			for i := range keys[:n-10] {
				ks.SetUsed(keys[i].ID, 5)
			}
			b.Run(fmt.Sprintf("%s/keys=%d", s, n), func(b *testing.B) {
				var buf [MaxAttempts]Candidate
				b.ReportAllocs()
				for b.Loop() {
					if p := ks.Plan(buf[:0], s, t0, MaxAttempts); len(p) != MaxAttempts {
						b.Fatalf("plan %d keys", len(p))
					}
				}
			})
		}
	}
}

// BenchmarkKeySetPlanCooldown: half of the keys, every other one, are
// cooling down for a minute after failures.
func BenchmarkKeySetPlanCooldown(b *testing.B) {
	for _, n := range sizes[1:] {
		for _, s := range Strategies {
			keys := benchKeys(n)
			r := NewRouter()
			ks := r.NewKeySet(keys)
			for i := 0; i < n; i += 2 {
				r.ReportFailure(keys[i].ID, 429, hdr("Retry-After", "60"), t0)
			}
			b.Run(fmt.Sprintf("%s/keys=%d", s, n), func(b *testing.B) {
				var buf [MaxAttempts]Candidate
				b.ReportAllocs()
				for b.Loop() {
					if p := ks.Plan(buf[:0], s, t0, MaxAttempts); len(p) != MaxAttempts {
						b.Fatalf("plan %d keys", len(p))
					}
				}
			})
		}
	}
}

func BenchmarkNewKeySet(b *testing.B) {
	for _, n := range sizes {
		keys := benchKeys(n)
		r := NewRouter()
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = r.NewKeySet(keys)
			}
		})
	}
}

func BenchmarkReportSuccess(b *testing.B) {
	r := NewRouter()
	r.NewKeySet(benchKeys(1000))
	for _, tc := range []struct {
		name string
		h    http.Header
	}{
		{"no-headers", http.Header{"Content-Type": {"application/json"}}},
		{"openai-headers", hdr("Content-Type", "application/json", "x-ratelimit-remaining-requests", "59", "x-ratelimit-reset-requests", "1s", "x-ratelimit-remaining-tokens", "149000", "x-ratelimit-reset-tokens", "6m0s")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.ReportSuccess("key_00000042", tc.h, t0)
			}
		})
	}
}

// TestParking protects the compacted view: keys leaving one by one (quota
// used up, quarantined) and coming back (new period, cleared quarantine)
// are planned exactly as the reference form plans them.
func TestParking(t *testing.T) {
	const n = 150
	var keys []Candidate
	for i := range n {
		keys = append(keys, Candidate{ID: fmt.Sprintf("k%03d", i), Tier: TierFree, Priority: i % 7, Quota: 2, Used: int64(i % 2), Enabled: true})
	}
	keys = append(keys, Candidate{ID: "paid", Tier: TierPaid, Priority: 3, PriceMicros: 5, Enabled: true})
	r := NewRouter()
	ks := r.NewKeySet(keys)
	compare := func(step string) {
		t.Helper()
		for _, s := range []Strategy{StrategyCost, StrategyPriority, StrategyLeastUsed} {
			want := r.Plan(s, keys, t0)
			got := ks.Plan(nil, s, t0, MaxAttempts)
			if ids(got) != ids(want[:min(MaxAttempts, len(want))]) {
				t.Fatalf("%s %s: KeySet %s, Plan %s", step, s, ids(got), ids(want[:min(MaxAttempts, len(want))]))
			}
		}
		if got, want := len(ks.Plan(nil, StrategyRoundRobin, t0, len(keys))), len(r.Plan(StrategyRoundRobin, keys, t0)); got != want {
			t.Fatalf("%s round-robin: %d usable, want %d", step, got, want)
		}
	}
	use := func(id string) {
		for i := range keys {
			if keys[i].ID == id {
				keys[i].Used++
			}
		}
		ks.AddUsed(id, 1)
	}
	for i := 0; ; i++ {
		compare(fmt.Sprintf("drain %d", i))
		p := ks.Plan(nil, StrategyCost, t0, 1)
		if p[0].ID == "paid" {
			break
		}
		use(p[0].ID)
	}
	if v := ks.view.Load(); len(v.prio) > parkThreshold+1 {
		t.Errorf("view still holds %d keys after draining", len(v.prio))
	}
	ks.ResetUsed()
	for i := range keys {
		keys[i].Used = 0
	}
	compare("after reset")
	for i := range 100 {
		r.ReportFailure(keys[i].ID, 401, nil, t0)
		compare(fmt.Sprintf("quarantine %d", i))
	}
	for i := range 100 {
		if i%3 == 0 {
			r.ClearQuarantine(keys[i].ID)
		} else if i%3 == 1 {
			r.Forget(keys[i].ID)
		}
		compare(fmt.Sprintf("clear %d", i))
	}
}

func TestKeyFailure(t *testing.T) {
	for status, want := range map[int]bool{
		0: true, 200: false, 204: false, 301: false, 400: false, 401: true, 402: true, 403: true,
		404: false, 409: false, 422: false, 429: true, 500: true, 501: false, 502: true, 503: true,
		504: true, 505: false, 529: true,
	} {
		if got := KeyFailure(status); got != want {
			t.Errorf("KeyFailure(%d) = %v, want %v", status, got, want)
		}
	}
}

// The proxy prices a call by the tier of the key that served it, read
// from the key set rather than from a copy of it.
func TestKeySetTier(t *testing.T) {
	ks := NewRouter().NewKeySet([]Candidate{
		{ID: "free", Tier: TierFree, Enabled: true},
		{ID: "paid", Tier: TierPaid, Enabled: true, PriceMicros: 10},
		{ID: "off", Tier: TierFree},
	})
	for id, want := range map[string]string{"free": TierFree, "paid": TierPaid, "off": "", "missing": ""} {
		if got := ks.Tier(id); got != want {
			t.Errorf("Tier(%q) = %q, want %q", id, got, want)
		}
	}
}
