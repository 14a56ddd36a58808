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
// order: O(k log k), for small sets and tests. The proxy instead builds a
// KeySet once per workspace+service whenever its keys change
// (Router.NewKeySet) and calls KeySet.Plan per call, which returns only the
// first few usable keys (MaxAttempts) without allocating: the per-call cost
// does not grow with the number of keys. Ordered strategies scan a
// precomputed order and stop at the first usable keys; a prefix of keys
// that are unusable for a while (quota used up, quarantined, cooling down)
// is remembered with the time it stays unusable, so a long run of such keys
// is skipped in O(1) until that time or until something makes a key usable
// again. least-used keeps a heap that AddUsed updates in O(log k).
//
// # Health
//
// Health state lives in the Router, by key id, shared by all KeySets and
// all workspaces (key ids are unique). ReportFailure returns a Verdict the
// caller turns into an alert and an audit event when a key is newly
// quarantined. State is per instance: to share quarantine across instances
// the caller relays it (Quarantine, ClearQuarantine, Forget).
package routing
