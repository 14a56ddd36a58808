package apiwallet

import (
	"context"
	"time"
)

// FallbackKeyID is the KeyID of a call served by an operator fallback key
// (<SERVICE>_FALLBACK_KEY), which is no stored key of the workspace.
const FallbackKeyID = "fallback"

// Usage is the record of one proxied call, written for every call whatever
// its outcome. It holds ids and numbers only: never a secret, a body or a
// header.
type Usage struct {
	// ID makes the record idempotent: a batch written twice counts once.
	// The recorder sets it (NewID("use")) when it is empty.
	ID          string
	WorkspaceID string
	Service     string
	// KeyID is the key that served the call, or the last one tried;
	// FallbackKeyID for an operator fallback key; "" when no key was used.
	KeyID string
	// TokenID and UserID name the credential the call came with: a wallet
	// access token's id, or the user of a login JWT.
	TokenID string
	UserID  string
	Method  string
	// Endpoint is the call's normalised method and path
	// (UsageEndpoint); "" when the proxy did not set it.
	Endpoint string
	// Status is the final status sent to the client; 0 when the client got
	// an aborted stream before any headers.
	Status int
	// Failed is true when the call did not succeed: no usable key, an
	// upstream error, a 5xx, or a stream broken mid-way.
	Failed bool
	// Attempts counts upstream attempts; Attempted lists each with its
	// outcome, such as "key_a:429,key_b:200".
	Attempts  int
	Attempted string
	Strategy  string
	// Premium is true when the call was routed with a cost strategy and/or
	// cross-key fallback, which billing charges for.
	Premium bool
	// Unreached is true when no attempt reached an upstream (every key
	// failed to decrypt, or every connection failed): the call's quota
	// reservation was refunded and it is not billed.
	Unreached bool
	// LatencyMicros is the whole call as the client saw it; OverheadMicros
	// the part spent inside the wallet, upstream time excluded.
	LatencyMicros  int64
	OverheadMicros int64
	BytesIn        int64
	BytesOut       int64
	// CostMicros is the price of the call with the key used (0 on a free
	// tier); SavedMicros what a paid key would have cost when a free key
	// served it.
	CostMicros  int64
	SavedMicros int64
	CreatedAt   time.Time // UTC
}

// UsageTotals sums usage records.
type UsageTotals struct {
	Calls         int64
	Failed        int64
	Premium       int64
	CostMicros    int64
	SavedMicros   int64
	BytesIn       int64
	BytesOut      int64
	LatencyMicros int64 // sum over the calls; divide by Calls for the mean
	// Unreached counts the calls that reached no upstream, among Calls.
	Unreached int64
}

// Billable is the number of calls that count against quotas and are
// billed: those that reached an upstream.
func (t UsageTotals) Billable() int64 { return t.Calls - t.Unreached }

// Add adds o to t.
func (t *UsageTotals) Add(o UsageTotals) {
	t.Calls += o.Calls
	t.Failed += o.Failed
	t.Premium += o.Premium
	t.CostMicros += o.CostMicros
	t.SavedMicros += o.SavedMicros
	t.BytesIn += o.BytesIn
	t.BytesOut += o.BytesOut
	t.LatencyMicros += o.LatencyMicros
	t.Unreached += o.Unreached
}

// ServiceUsage is one service's share of a UsageSummary.
type ServiceUsage struct {
	Service string
	UsageTotals
}

// UsageSummary is a workspace's usage over a period: the totals, and the
// same by service in service order.
type UsageSummary struct {
	UsageTotals
	Services []ServiceUsage
}

// UsageStore persists usage records and keeps them rolled up per
// workspace, service, key and hour, so that reads over a month never scan
// raw records.
type unhurriedKey struct{}

// Unhurried marks ctx as carrying a background write that nothing is
// waiting for. A store that runs in this process (SQLite) may then spread
// the write out, stepping aside between pieces, so that it does not take
// a core from the proxy path in one piece. Writers set it only while they
// are keeping up: a write with a backlog behind it goes at full speed.
func Unhurried(ctx context.Context) context.Context {
	return context.WithValue(ctx, unhurriedKey{}, true)
}

// IsUnhurried reports whether ctx was marked by Unhurried.
func IsUnhurried(ctx context.Context) bool {
	v, _ := ctx.Value(unhurriedKey{}).(bool)
	return v
}

type UsageStore interface {
	// InsertUsage writes a batch of records. It is idempotent by ID: a
	// record whose ID is already stored is skipped, and only the records
	// actually inserted are added to the hourly rollups, in the same
	// transaction, so a retried batch is never counted twice. Every record
	// needs an ID and a workspace ID (EINVALID otherwise, writing nothing);
	// a zero CreatedAt means now.
	InsertUsage(ctx context.Context, batch []Usage) error
	// KeyUsageSince counts the calls each key of workspaceID served for
	// service from since on, exactly (whole hours from the rollups, the
	// part-hour after since from the records). Calls that used no key are
	// not counted; the map holds only keys with calls.
	KeyUsageSince(ctx context.Context, workspaceID, service string, since time.Time) (map[string]int64, error)
	// WorkspaceUsage sums workspaceID's usage from the hourly rollups: every
	// hour that starts at or after from truncated to the hour, and before
	// to. A month is thus exactly [first of the month, first of the next).
	WorkspaceUsage(ctx context.Context, workspaceID string, from, to time.Time) (UsageSummary, error)
}
