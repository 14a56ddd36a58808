// Package quota enforces each workspace's monthly plan quota: the calls its
// plan includes per calendar month (UTC), with a hard stop on the free plan
// and billed overage on paid ones.
//
// # Reserve, then settle
//
// The proxy reserves a call before forwarding it and settles the
// reservation once the outcome is known. Reserve counts the call
// atomically, and under a hard stop only while the month's count is below
// the plan's included calls; otherwise it refuses with *Exceeded (Included,
// Used, ResetAt = the first of next month, UTC), which the proxy turns into
// a 429 quota-exceeded. Settle(happened=false) refunds a call whose
// upstream request never happened: no usable key, a refusal before sending
// (bad strategy header, body too large), every attempt failing to connect.
// A call that reached the upstream counts, whatever its status. Because
// the count is taken before the call leaves, concurrent calls can never
// overrun it: with 1,000 calls remaining, 200 concurrent clients on any
// number of instances get exactly 1,000 through.
//
// # Counters
//
// Memory counts in process: one map entry per workspace and month, whose
// starting value is read once from the usage store (the hourly rollups,
// WorkspaceUsage), so a restart does not reset anyone's quota. Redis
// counts in one key per workspace and month (apiwallet:quota:<workspace
// id>:<YYYY-MM>, expiring 40 days after creation); every decision is one
// Lua script, one round trip, and the key's first use in a month
// initialises it from the usage store inside the script (so concurrent
// instances agree on one starting value). Fallback uses Redis and counts
// locally while Redis is unreachable. The hot path never queries the
// database: Memory decides in memory, Redis in one round trip, and
// CachedPlans keeps each workspace's plan for a TTL or until the proxy's
// cache epoch changes (a committed change, on any instance via Redis).
//
// # Worst-case overshoot
//
// With Redis healthy: zero. Every reservation is one atomic script on the
// server, refused when the count has reached the quota, and a refund only
// lowers the count, so the number of calls forwarded in a month never
// exceeds the quota, whatever the concurrency and the number of
// instances.
//
// One instance without Redis (Memory): zero, for the same reason, in
// process. Across a restart the new process starts from the usage store,
// which holds every call of the old one: on SIGTERM the recorder flushes
// before exit. Only a crash (SIGKILL, power loss) loses the records still
// queued, at most one flush interval (1 s) of calls, and those calls are
// then neither counted nor billed. Several instances sharing PostgreSQL
// without Redis each count alone: run them with Redis.
//
// While Redis is down (Fallback): each instance starts each workspace's
// month from the usage store and uses floor(remaining/instances) of what
// it says remains. The store lags the live count by the calls whose usage
// records were not flushed yet when an instance started counting locally
// (at most one flush interval of calls, on every instance, plus the calls
// in flight), so that is the bound of the overshoot during an outage; the
// rounding down and uneven load across instances only err on the strict
// side (one instance may refuse while another still has room). When Redis
// returns, each instance adds its local counts to the Redis counters that
// survived; a counter Redis lost is initialised again from the store,
// which by then holds the outage's calls except the ones not flushed yet
// (again at most one flush interval). Calls in flight at either transition
// can be missed once each.
//
// Strict-side errors, never overshoot: a refund Redis cannot take (Redis
// failing between reserve and settle) is dropped; a reservation Redis
// counted whose answer was lost (a timeout) is counted again locally.
// A counter initialised from the usage store counts the recorded calls
// that reached an upstream, as the counter itself does: the refunded ones
// are recorded as unreached.
package quota
