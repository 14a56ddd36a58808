package quota

import (
	"context"
	"sync"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// Plans tells a workspace's monthly quota: the calls its plan includes and
// whether the plan stops there (free) or bills overage (paid).
type Plans interface {
	PlanFor(ctx context.Context, workspaceID string) (included int64, hardStop bool, err error)
}

// PlansFunc adapts a function to Plans.
type PlansFunc func(ctx context.Context, workspaceID string) (int64, bool, error)

// PlanFor implements Plans.
func (f PlansFunc) PlanFor(ctx context.Context, workspaceID string) (int64, bool, error) {
	return f(ctx, workspaceID)
}

// Built-in plan quotas (DESIGN.md, "Plans"), used until plans are data.
const (
	DefaultFreeQuota         = 1000
	DefaultProfessionalQuota = 100_000
	DefaultEnterpriseQuota   = 1_000_000
)

// BuiltinPlan returns the built-in quota of the named plan, with
// freeQuota (DEFAULT_FREE_QUOTA) as the free plan's included calls. Free
// stops hard at its quota; Professional and Enterprise bill overage;
// Custom includes nothing and never stops (an admin sets its terms). An
// unknown name is treated as free.
func BuiltinPlan(plan string, freeQuota int64) (included int64, hardStop bool) {
	switch plan {
	case apiwallet.PlanProfessional:
		return DefaultProfessionalQuota, false
	case apiwallet.PlanEnterprise:
		return DefaultEnterpriseQuota, false
	case apiwallet.PlanCustom:
		return 0, false
	default:
		return freeQuota, true
	}
}

// WorkspaceFinder reads a workspace (*sqldb.DB implements it).
type WorkspaceFinder interface {
	FindWorkspaceByID(ctx context.Context, id string) (*apiwallet.Workspace, error)
}

// WorkspacePlans reads workspaces.plan and applies BuiltinPlan: the plan
// lookup until billing keeps plans as data.
type WorkspacePlans struct {
	Workspaces WorkspaceFinder
	FreeQuota  int64 // DEFAULT_FREE_QUOTA
}

// PlanFor implements Plans.
func (p *WorkspacePlans) PlanFor(ctx context.Context, workspaceID string) (int64, bool, error) {
	ws, err := p.Workspaces.FindWorkspaceByID(ctx, workspaceID)
	if err != nil {
		return 0, false, err
	}
	included, hardStop := BuiltinPlan(ws.Plan, p.FreeQuota)
	return included, hardStop, nil
}

// Epoch is a generation counter that any change to plans bumps
// (*proxy.Epoch is one).
type Epoch interface{ Load() uint64 }

// CachedPlans remembers each workspace's plan for a TTL, or until the
// epoch changes, so that the proxy looks plans up without a database round
// trip per call.
type CachedPlans struct {
	plans Plans
	ttl   time.Duration
	epoch Epoch
	now   func() time.Time

	mu sync.RWMutex
	m  map[string]cachedPlan
}

type cachedPlan struct {
	included int64
	hardStop bool
	epoch    uint64
	expires  int64 // unix nanoseconds
}

// maxCachedPlans bounds the cache: past it, the cache starts over.
const maxCachedPlans = 100_000

// NewCachedPlans caches plans for ttl (default 1 min), dropping entries
// older than epoch's current generation (epoch may be nil).
func NewCachedPlans(plans Plans, ttl time.Duration, epoch Epoch) *CachedPlans {
	if ttl <= 0 {
		ttl = time.Minute
	}
	return &CachedPlans{plans: plans, ttl: ttl, epoch: epoch, now: time.Now, m: map[string]cachedPlan{}}
}

func (c *CachedPlans) generation() uint64 {
	if c.epoch == nil {
		return 0
	}
	return c.epoch.Load()
}

// PlanFor implements Plans.
func (c *CachedPlans) PlanFor(ctx context.Context, workspaceID string) (int64, bool, error) {
	now := c.now().UnixNano()
	gen := c.generation()
	c.mu.RLock()
	e, ok := c.m[workspaceID]
	c.mu.RUnlock()
	if ok && e.epoch == gen && now < e.expires {
		return e.included, e.hardStop, nil
	}
	included, hardStop, err := c.plans.PlanFor(ctx, workspaceID)
	if err != nil {
		return 0, false, err
	}
	c.mu.Lock()
	if len(c.m) >= maxCachedPlans {
		clear(c.m)
	}
	// Stored as of the generation read before the lookup, so a change
	// committed meanwhile makes it stale at once.
	c.m[workspaceID] = cachedPlan{included: included, hardStop: hardStop, epoch: gen, expires: now + int64(c.ttl)}
	c.mu.Unlock()
	return included, hardStop, nil
}
