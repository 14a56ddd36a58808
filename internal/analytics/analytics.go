package analytics

import (
	"context"
	"math"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// Groupings of a report, as the HTTP API names them.
const (
	GroupService  = "service"
	GroupKey      = "key"
	GroupTier     = "tier"
	GroupToken    = "token"
	GroupMember   = "member"
	GroupEndpoint = "endpoint"
	GroupDay      = "day"
	GroupHour     = "hour"
)

// Groupings lists every grouping.
var Groupings = []string{GroupService, GroupKey, GroupTier, GroupToken, GroupMember, GroupEndpoint, GroupDay, GroupHour}

// Bounds on a report's period, so one request cannot ask for years of
// hourly rows.
const (
	MaxRange     = 366 * 24 * time.Hour
	MaxHourRange = 31 * 24 * time.Hour
)

// Keys lists a workspace's keys.
type Keys interface {
	FindKeys(ctx context.Context, f apiwallet.KeyFilter) ([]*apiwallet.Key, error)
}

// Tokens lists a workspace's access tokens.
type Tokens interface {
	FindAccessTokens(ctx context.Context, f apiwallet.AccessTokenFilter) ([]*apiwallet.AccessToken, error)
}

// Members lists a workspace's members.
type Members interface {
	FindMembers(ctx context.Context, workspaceID string) ([]*apiwallet.Member, error)
}

// ServiceInfo is what analytics needs to know of a catalog service.
type ServiceInfo struct {
	DisplayName string
	PriceMicros int64
	// FreeQuota is the free calls per FreePeriod ("day" or "month") of a
	// free key that records no quota of its own.
	FreeQuota  int64
	FreePeriod string
}

// Services looks services up in the catalog.
type Services interface {
	Service(name string) (ServiceInfo, bool)
}

// KeyState is a key's live routing state: cooling down or quarantined.
type KeyState struct {
	Status string // "cooldown" or "quarantined"; "" when usable
	Until  time.Time
	Reason string
}

// KeyStates reports live routing state; nil reports none.
type KeyStates interface {
	KeyState(keyID string, now time.Time) KeyState
}

// Plans reads the plans and a workspace's current one.
type Plans interface {
	PublicPlans(ctx context.Context) ([]*apiwallet.Plan, error)
	EffectivePlan(ctx context.Context, workspaceID string) (*apiwallet.Plan, apiwallet.BillingSettings, error)
}

// Service computes reports.
type Service struct {
	Store    apiwallet.AnalyticsStore
	Keys     Keys
	Tokens   Tokens
	Members  Members
	Services Services
	States   KeyStates // optional
	Plans    Plans     // optional: no plan advice without it
	// Fleet reads usage across workspaces for the business report;
	// optional.
	Fleet apiwallet.FleetStore
	Now   func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now().UTC()
	}
	return s.Now().UTC()
}

// Percentiles are latency percentiles in milliseconds.
type Percentiles struct {
	P50, P95, P99 float64
}

// Figures are a group's numbers as reported.
type Figures struct {
	Calls, Successes                 int64
	Client, Server, Network, Refused int64
	RateLimited                      int64
	Latency, Overhead                Percentiles
	AvgLatencyMs                     float64
	BytesIn, BytesOut                int64
	CostMicros, SavingsMicros        int64
	SavingsPercent                   float64
}

func percentiles(h *apiwallet.Histogram, base int64) Percentiles {
	ms := func(q float64) float64 { return round(h.Percentile(q, base)/1000, 3) }
	return Percentiles{P50: ms(0.50), P95: ms(0.95), P99: ms(0.99)}
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// FiguresOf turns rollup sums into figures.
func FiguresOf(f *apiwallet.UsageFigures) Figures {
	out := Figures{
		Calls: f.Calls, Successes: f.Successes, Client: f.ClientErrors, Server: f.ServerErrors,
		Network: f.NetworkErrors, Refused: f.Refused, RateLimited: f.RateLimited,
		Latency:  percentiles(&f.Latency, apiwallet.LatencyBaseMicros),
		Overhead: percentiles(&f.Overhead, apiwallet.OverheadBaseMicros),
		BytesIn:  f.BytesIn, BytesOut: f.BytesOut, CostMicros: f.CostMicros, SavingsMicros: f.SavedMicros,
	}
	if f.Calls > 0 {
		out.AvgLatencyMs = round(float64(f.LatencyMicrosSum)/float64(f.Calls)/1000, 3)
	}
	if paid := f.CostMicros + f.SavedMicros; paid > 0 {
		out.SavingsPercent = round(100*float64(f.SavedMicros)/float64(paid), 2)
	}
	return out
}

// FleetFigures are the business report's usage figures across every
// workspace.
type FleetFigures struct {
	KeyUtilisation, SuccessRate, AvgResponseMs float64
}

// FleetMonth reports the current UTC month across every workspace. The
// caller checks that the actor is an operator.
func (s *Service) FleetMonth(ctx context.Context) (FleetFigures, error) {
	var out FleetFigures
	if s.Fleet == nil {
		return out, nil
	}
	now := s.now()
	f, err := s.Fleet.FleetUsage(ctx, monthStart(now), now)
	if err != nil {
		return out, err
	}
	if f.RegisteredKeys > 0 {
		out.KeyUtilisation = round(float64(f.ActiveKeys)/float64(f.RegisteredKeys), 4)
	}
	if f.Calls > 0 {
		out.SuccessRate = round(float64(f.Successes)/float64(f.Calls), 4)
		out.AvgResponseMs = round(float64(f.LatencyMicrosSum)/float64(f.Calls)/1000, 3)
	}
	return out, nil
}
