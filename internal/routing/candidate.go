package routing

import (
	"cmp"
	"strings"
)

// Key tiers.
const (
	TierFree = "free"
	TierPaid = "paid"
)

// Candidate is one stored key as routing sees it: no secret, only what the
// order and the skip rules need.
type Candidate struct {
	ID       string
	Tier     string // TierFree or TierPaid; anything but "free" counts as paid
	Priority int    // lower first
	// PriceMicros is the cost of one call with this key, in micro-dollars.
	PriceMicros int64
	// Quota is the number of calls allowed per period (0: unlimited), and
	// Used the number made this period.
	Quota   int64
	Used    int64
	Enabled bool
}

func (c *Candidate) free() bool { return c.Tier == TierFree }

// quotaLeft reports whether c may make one more call this period.
func (c *Candidate) quotaLeft(used int64) bool { return c.Quota <= 0 || used < c.Quota }

// Strategy names a key-selection strategy.
type Strategy string

// Strategies.
const (
	StrategyCost       Strategy = "cost"
	StrategyPriority   Strategy = "priority"
	StrategyRoundRobin Strategy = "round-robin"
	StrategyLeastUsed  Strategy = "least-used"
)

// Strategies lists the valid strategies, default first.
var Strategies = []Strategy{StrategyCost, StrategyPriority, StrategyRoundRobin, StrategyLeastUsed}

// ParseStrategy returns the strategy named s (case-insensitive, "_" for
// "-" accepted; "" is the default, cost) and false for an unknown name.
func ParseStrategy(s string) (Strategy, bool) {
	switch strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "_", "-") {
	case "", "cost":
		return StrategyCost, true
	case "priority":
		return StrategyPriority, true
	case "round-robin", "roundrobin":
		return StrategyRoundRobin, true
	case "least-used", "leastused":
		return StrategyLeastUsed, true
	}
	return "", false
}

// byPriority orders by priority, then id.
func byPriority(a, b *Candidate) int {
	if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// byCost orders free keys first (by priority, id), then the others by
// price, priority, id. Keys without quota left are skipped, not ordered.
func byCost(a, b *Candidate) int {
	af, bf := a.free(), b.free()
	switch {
	case af && !bf:
		return -1
	case bf && !af:
		return 1
	case !af:
		if c := cmp.Compare(a.PriceMicros, b.PriceMicros); c != 0 {
			return c
		}
	}
	return byPriority(a, b)
}

// byUsed orders by calls made this period, then priority, id.
func byUsed(a, b *Candidate) int {
	if c := cmp.Compare(a.Used, b.Used); c != 0 {
		return c
	}
	return byPriority(a, b)
}
