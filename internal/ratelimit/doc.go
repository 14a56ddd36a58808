// Package ratelimit limits request rates smoothly with GCRA, the generic
// cell rate algorithm, behind one interface, Limiter, with an in-process
// implementation (Memory), a Redis one shared by any number of wallet
// instances (Redis), and a Redis one that falls back to local limiting
// while Redis is down (Fallback).
//
// # GCRA
//
// A Limit of Rate requests per Period with a burst of Burst is a token
// bucket of capacity Burst refilled with one token every emission interval
// T = Period/Rate. GCRA stores the bucket as a single number, its
// theoretical arrival time (TAT): the time at which the bucket would be
// full again. A request for n tokens at time now is allowed when
//
//	max(TAT, now) + n*T - Burst*T <= now
//
// and then TAT becomes max(TAT, now) + n*T; a denied request changes
// nothing. From the same numbers:
//
//	Remaining  = (Burst*T - (TAT - now)) / T, rounded down
//	ResetAfter = TAT - now (after the decision)
//	RetryAfter = max(TAT, now) + n*T - Burst*T - now (denied requests only)
//
// So a full bucket lets Burst requests through at once, and after that one
// request every T: the long-run rate is exactly Rate per Period. A bucket
// whose TAT is in the past is full and needs no storage, which is why
// Memory drops such entries and Redis keys expire (PX) at the TAT. T is
// rounded up to the limiter's clock unit (1 ns in Memory, 1 µs in Redis),
// so rounding only ever makes a limit slightly stricter, never looser. n
// larger than Burst can never be allowed and is reported as
// ErrExceedsBurst; n = 0 only reports the state.
//
// # Why GCRA and not fixed windows
//
// A fixed-window counter ("at most Rate per calendar minute") lets Rate
// requests through at the end of one window and Rate more at the start of
// the next: 2x the limit within a few milliseconds of the boundary. GCRA
// has no boundaries: no more than Burst requests ever pass at once, and
// after that they are spaced T apart. Over any interval of length d at
// most Burst + d/T requests pass; with the default Burst = Rate that is
// up to Burst+Rate-1 in a sliding window of one Period, but only after the
// key was idle long enough to fill its bucket, never as a 2x spike. A
// limit that must hold for every sliding window of one Period sets Burst
// to 1. It also costs one number per key, no per-request log, and every
// decision is a single read-modify-write.
//
// # Worst-case overshoot
//
// A single limiter, Memory or Redis, enforces its limit exactly: zero
// overshoot beyond the GCRA bound above. Redis does so across any number
// of wallet instances, because each decision is one atomic Lua script on
// the server, timed by the server's clock (TIME), so instances whose
// clocks disagree still agree.
//
// Fallback limits locally while Redis is unreachable, each instance with
// Limit/instances (Rate and Burst each divided, at least 1). During an
// outage the instances together let through at most instances *
// (Rate/instances) ≈ Rate per Period, plus the bursts (≈ Burst in total),
// on top of what Redis had already counted before the outage: the local
// buckets start full and know nothing of Redis's, and when Redis returns
// its buckets know nothing of the local ones. So at each transition a key
// can get up to about one extra Burst. The division is only exact when
// instances matches the number of running instances; when a load balancer
// spreads a key's traffic unevenly, one instance may deny while another
// still has room, which errs on the strict side.
package ratelimit
