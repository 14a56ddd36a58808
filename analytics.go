package apiwallet

import (
	"context"
	"math"
	"strings"
	"time"
)

// Outcome classes of a call, as analytics counts them. Every call has
// exactly one.
const (
	CallOutcomeSuccess = "success"
	// CallOutcomeClient is an upstream 4xx (429 included).
	CallOutcomeClient = "client"
	// CallOutcomeServer is an upstream 5xx.
	CallOutcomeServer = "server"
	// CallOutcomeNetwork is an upstream that could not be reached or broke
	// the answer off.
	CallOutcomeNetwork = "network"
	// CallOutcomeRefused is a call the wallet itself refused: no usable key.
	CallOutcomeRefused = "refused"
)

// UsageOutcome classifies a record.
func UsageOutcome(u *Usage) string {
	switch {
	case (u.Status == 502 || u.Status == 503) && (u.Unreached || u.KeyID == ""):
		return CallOutcomeRefused
	case u.Status >= 400 && u.Status < 500:
		return CallOutcomeClient
	case u.Status >= 500 && strings.HasSuffix(u.Attempted, ":network_error"):
		return CallOutcomeNetwork
	case u.Status >= 500:
		return CallOutcomeServer
	case u.Failed || u.Status == 0:
		return CallOutcomeNetwork
	}
	return CallOutcomeSuccess
}

// UsageEndpoint normalises a call's method and escaped path for
// analytics: ids, numbers, hex and long tokens become {id}, at most four
// segments are kept and the result is at most 100 bytes, so that the
// number of distinct endpoints stays small whatever clients send.
func UsageEndpoint(method, escapedPath string) string {
	if i := strings.IndexAny(escapedPath, "?#"); i >= 0 {
		escapedPath = escapedPath[:i]
	}
	var segs []string
	for _, s := range strings.Split(escapedPath, "/") {
		if s == "" {
			continue
		}
		if len(segs) == 4 {
			segs = append(segs, "…")
			break
		}
		if idLike(s) {
			s = "{id}"
		}
		segs = append(segs, s)
	}
	out := strings.ToUpper(method) + " /" + strings.Join(segs, "/")
	if len(out) > 100 {
		out = out[:100]
		for !isUTF8Start(out) {
			out = out[:len(out)-1]
		}
	}
	return out
}

func isUTF8Start(s string) bool {
	if s == "" {
		return true
	}
	last := s[len(s)-1]
	// A string cut inside a multi-byte character ends in a lead or
	// continuation byte; drop back to an ASCII byte to be safe.
	return last < 0x80
}

// idLike reports whether a path segment names one object rather than a
// kind of object: numbers, hex, UUIDs, prefixed ids such as ch_3Nab12…,
// anything long or escaped.
func idLike(s string) bool {
	if len(s) > 24 || strings.ContainsRune(s, '%') {
		return true
	}
	digits, hex := 0, true
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c >= 'a' && c <= 'f', c >= 'A' && c <= 'F', c == '-':
		default:
			hex = false
		}
	}
	if digits == len(s) {
		return true
	}
	if hex && len(s) >= 8 && digits > 0 {
		return true
	}
	return digits > 0 && len(s) >= 8
}

// LatencyBuckets is the number of buckets of a latency histogram.
const LatencyBuckets = 24

// Histogram bucket i (1 ≤ i ≤ 22) holds values in [base·r^(i-1), base·r^i)
// with r = 1.6; bucket 0 holds values below base and bucket 23 from
// base·r^22 up. Latency starts at 1 ms (top bucket from 31 s), overhead
// at 20 µs (top bucket from 0.6 s). A percentile reported as its bucket's
// geometric midpoint is within a factor √1.6 ≈ 1.26 of the true value
// (±26%) for buckets 1 to 22.
const (
	bucketRatio          = 1.6
	LatencyBaseMicros    = 1000
	OverheadBaseMicros   = 20
	histogramInnerBounds = LatencyBuckets - 2
)

// Bucket returns the histogram bucket of v for a histogram starting at
// base.
func Bucket(v, base int64) int {
	if v < base {
		return 0
	}
	i := 1 + int(math.Floor(math.Log(float64(v)/float64(base))/math.Log(bucketRatio)))
	return min(max(i, 1), LatencyBuckets-1)
}

// BucketValue is the value reported for bucket i: the geometric middle
// of its bounds, half the base for bucket 0, and the lower bound of the
// open top bucket.
func BucketValue(i int, base int64) float64 {
	b := float64(base)
	switch {
	case i <= 0:
		return b / 2
	case i >= LatencyBuckets-1:
		return b * math.Pow(bucketRatio, histogramInnerBounds)
	}
	return b * math.Pow(bucketRatio, float64(i)-0.5)
}

// Histogram counts calls per bucket.
type Histogram [LatencyBuckets]int64

// Percentile returns the q-th quantile (0 < q ≤ 1) of h in microseconds,
// 0 for an empty histogram.
func (h *Histogram) Percentile(q float64, base int64) float64 {
	var n int64
	for _, c := range h {
		n += c
	}
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(n)))
	var seen int64
	for i, c := range h {
		seen += c
		if seen >= rank {
			return BucketValue(i, base)
		}
	}
	return BucketValue(LatencyBuckets-1, base)
}

// Add adds o to h.
func (h *Histogram) Add(o *Histogram) {
	for i := range h {
		h[i] += o[i]
	}
}

// UsageFigures sums the rollup rows of one group.
type UsageFigures struct {
	Calls, Successes                                   int64
	ClientErrors, ServerErrors, NetworkErrors, Refused int64
	RateLimited, Unreached                             int64
	CostMicros, SavedMicros, BytesIn, BytesOut         int64
	LatencyMicrosSum, OverheadMicrosSum                int64
	Latency, Overhead                                  Histogram
}

// Add adds o to f.
func (f *UsageFigures) Add(o *UsageFigures) {
	f.Calls += o.Calls
	f.Successes += o.Successes
	f.ClientErrors += o.ClientErrors
	f.ServerErrors += o.ServerErrors
	f.NetworkErrors += o.NetworkErrors
	f.Refused += o.Refused
	f.RateLimited += o.RateLimited
	f.Unreached += o.Unreached
	f.CostMicros += o.CostMicros
	f.SavedMicros += o.SavedMicros
	f.BytesIn += o.BytesIn
	f.BytesOut += o.BytesOut
	f.LatencyMicrosSum += o.LatencyMicrosSum
	f.OverheadMicrosSum += o.OverheadMicrosSum
	f.Latency.Add(&o.Latency)
	f.Overhead.Add(&o.Overhead)
}

// AddRecord adds one call to f.
func (f *UsageFigures) AddRecord(u *Usage) {
	f.Calls++
	switch UsageOutcome(u) {
	case CallOutcomeSuccess:
		f.Successes++
	case CallOutcomeClient:
		f.ClientErrors++
	case CallOutcomeServer:
		f.ServerErrors++
	case CallOutcomeNetwork:
		f.NetworkErrors++
	case CallOutcomeRefused:
		f.Refused++
	}
	if u.Status == 429 {
		f.RateLimited++
	}
	if u.Unreached {
		f.Unreached++
	}
	f.CostMicros += u.CostMicros
	f.SavedMicros += u.SavedMicros
	f.BytesIn += u.BytesIn
	f.BytesOut += u.BytesOut
	f.LatencyMicrosSum += u.LatencyMicros
	f.OverheadMicrosSum += u.OverheadMicros
	f.Latency[Bucket(u.LatencyMicros, LatencyBaseMicros)]++
	f.Overhead[Bucket(u.OverheadMicros, OverheadBaseMicros)]++
}

// Rollup dimensions a usage read may group by. Time groupings come back
// as one row per UTC hour (GroupHour) and are bucketed by the caller.
const (
	DimService  = "service"
	DimKey      = "key"
	DimToken    = "token"
	DimUser     = "user"
	DimEndpoint = "endpoint"
	DimHour     = "hour"
	DimNone     = ""
)

// UsageQuery selects rollup rows: hours that start at or after From
// truncated to the hour, and before To; filters are exact, empty means
// any.
type UsageQuery struct {
	WorkspaceID string // required
	From, To    time.Time
	Service     string
	KeyID       string
	TokenID     string
	// GroupBy is one of the Dim constants.
	GroupBy string
}

// UsageGroup is one group of a usage read. Group is the dimension's
// value; for DimHour, Hour is set instead.
type UsageGroup struct {
	Group string
	Hour  time.Time
	UsageFigures
}

// AnalyticsStore reads the analytics rollup.
type AnalyticsStore interface {
	// UsageGroups sums the rollup rows q selects by q.GroupBy. EINVALID
	// for an unknown dimension.
	UsageGroups(ctx context.Context, q UsageQuery) ([]UsageGroup, error)
}

// FleetUsage sums every workspace's usage over a period, for the
// operator's business report.
type FleetUsage struct {
	Calls, Successes, LatencyMicrosSum int64
	// ActiveKeys counts stored keys that served a call in the period, of
	// RegisteredKeys stored keys.
	ActiveKeys, RegisteredKeys int64
}

// FleetStore reads usage across workspaces. Only the operator's
// business report may call it.
type FleetStore interface {
	FleetUsage(ctx context.Context, from, to time.Time) (FleetUsage, error)
}
