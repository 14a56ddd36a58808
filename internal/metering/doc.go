// Package metering writes the usage record of every proxied call to the
// database asynchronously, in batches, so that the proxy's hot path never
// waits for a database round trip.
//
// # Hot path
//
// Recorder.Record appends the record to the batch being filled, a slice of
// fixed capacity BatchSize, under a mutex, and returns: no channel send, no
// slice growth, and no allocation in the steady state (written batches are
// emptied and reused). A full batch is handed to the flusher at once. The
// record's ID is assigned by the flusher, off the hot path, before the
// first write attempt.
//
// # Never losing records silently
//
// The queue (records recorded but not yet written, in-flight batches
// included) is bounded by Options.QueueSize so that a database outage
// cannot exhaust memory. When it is full, Record waits up to
// Options.FullWait (50 ms by default) for the flusher to make room — a
// brief stall of the calls being served is preferable to losing the
// record that bills them — and only then drops the record. Every dropped
// record is counted in apiwallet_usage_dropped_total and logged (at most
// one line a minute, with the running total), so a loss is always visible.
// At the defaults a full queue means 65,536 calls are waiting on a database
// that has not accepted a batch for a while.
//
// # Exactly once
//
// A batch that fails is retried with exponential backoff, as the same
// records with the same IDs, until it is written. apiwallet.UsageStore's
// InsertUsage is idempotent by ID and adds only the records it actually
// inserted to the hourly rollups, in the same transaction, so a retry
// after a lost acknowledgement (the commit happened, the reply did not
// arrive) counts nothing twice.
//
// # Shutdown
//
// Close, called on SIGTERM after the HTTP server has drained, writes
// everything queued, keeps accepting records from calls still finishing
// until the queue is empty, and returns. If its context ends first (the
// database is down), it reports how many records were lost and counts them
// as dropped.
package metering
