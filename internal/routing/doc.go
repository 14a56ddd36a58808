// Package routing chooses which of a workspace's keys for a service serves
// a proxied call, and remembers each key's health: cooldowns after 429, 5xx
// and network errors, quarantine after 401/402/403, and the remaining
// allowance the upstream announces in its rate-limit headers.
//
// # Strategies
//
//   - cost (default): free-tier keys with quota left, by priority then id;
//     then the other keys by price, priority, id.
//   - priority: priority ascending (1 before 2), then id.
//   - round-robin: the priority order as a ring, each plan starting one key
//     further than the previous one for the same key set.
//   - least-used: fewest calls this period first, then priority, id.
//
// Every strategy skips disabled keys, keys whose quota for the period is
// used up (Quota > 0 and Used >= Quota), quarantined keys, keys in cooldown
// and keys the upstream said have no allowance left until a reset time.
//
// # Two forms
//
// Router.Plan takes a slice of candidates and returns all usable ones in
// order: O(k log k), for small sets and as the reference in tests. The
// proxy instead builds a KeySet once per workspace+service whenever its
// keys change (Router.NewKeySet) and calls KeySet.Plan per call, which
// returns only the first few usable keys (MaxAttempts) without allocating,
// so the per-call cost does not grow with the number of keys: the orders
// are precomputed, a plan stops at the first usable keys, and keys that
// are out for a while (quota used up, quarantined, cooling down for a
// second or more) are dropped from the walked view in batches and put back
// when they can be used again. least-used keeps a heap that AddUsed
// updates in O(log k). A plan still steps over keys in a short cooldown.
//
// # Use
//
//	ks := router.NewKeySet(cands) // when the keys change; cache it
//	var buf [routing.MaxAttempts]routing.Candidate
//	for i, c := range ks.Plan(buf[:0], strategy, now, routing.MaxAttempts) {
//		status, h, err := attempt(c) // 0 and err for a network error
//		if !routing.KeyFailure(status) {
//			router.ReportSuccess(c.ID, h, now)
//			ks.AddUsed(c.ID, 1) // or SetUsed from the shared counter
//			break
//		}
//		v := router.ReportFailure(c.ID, status, h, now)
//		if v.NewlyQuarantined { /* alert and audit, once */ }
//		if i+1 == routing.MaxAttempts || !routing.Retryable(method, status, sent, idemKey, err, reached) {
//			break
//		}
//	}
//	// nothing usable: ks.Explain(now, n) says which keys were left out and why
//
// # Health
//
// Health state lives in the Router, by key id, shared by all KeySets and
// all workspaces (key ids are unique). ReportFailure returns a Verdict the
// caller turns into an alert and an audit event when a key is newly
// quarantined. State is per instance: to share quarantine across instances
// the caller relays it (Quarantine, ClearQuarantine, Forget).
package routing
