package apiwallet

import (
	"context"
	"strings"
	"time"
)

// Plan is a subscription plan, stored as data so that administrators can
// change prices and quotas without a release. Money is integer
// micro-dollars: 1_000_000 is $1.
type Plan struct {
	// ID is a slug such as "free" or "professional"; workspaces.plan holds
	// it.
	ID   string
	Name string
	// PriceMicros is the monthly fee.
	PriceMicros int64
	// IncludedCalls is how many proxied calls a calendar month includes.
	IncludedCalls int64
	// HardStop refuses calls beyond IncludedCalls (429) instead of billing
	// them as overage.
	HardStop bool
	// RatePerMinute limits the workspace's requests per minute; 0 means
	// the operator's MAX_REQUESTS_PER_MINUTE.
	RatePerMinute int
	// OverageMicrosPerCall is charged for each call beyond IncludedCalls.
	OverageMicrosPerCall int64
	// PremiumMicrosPerCall is charged for each call routed with a cost
	// strategy or cross-key fallback (Usage.Premium).
	PremiumMicrosPerCall int64
	// AnalyticsAddonMicros is the monthly fee of the analytics add-on.
	AnalyticsAddonMicros int64
	// Active plans can be given to workspaces; a retired (inactive) plan
	// keeps the workspaces already on it.
	Active    bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Paid reports whether the plan has a monthly fee.
func (p *Plan) Paid() bool { return p.PriceMicros > 0 }

// PlanUpdate changes a plan; nil fields stay as they are.
type PlanUpdate struct {
	Name                 *string
	PriceMicros          *int64
	IncludedCalls        *int64
	HardStop             *bool
	RatePerMinute        *int
	OverageMicrosPerCall *int64
	PremiumMicrosPerCall *int64
	AnalyticsAddonMicros *int64
	Active               *bool
}

// Empty reports whether u changes nothing.
func (u PlanUpdate) Empty() bool {
	return u.Name == nil && u.PriceMicros == nil && u.IncludedCalls == nil && u.HardStop == nil &&
		u.RatePerMinute == nil && u.OverageMicrosPerCall == nil && u.PremiumMicrosPerCall == nil &&
		u.AnalyticsAddonMicros == nil && u.Active == nil
}

// Apply sets p's fields from u.
func (u PlanUpdate) Apply(p *Plan) {
	if u.Name != nil {
		p.Name = *u.Name
	}
	if u.PriceMicros != nil {
		p.PriceMicros = *u.PriceMicros
	}
	if u.IncludedCalls != nil {
		p.IncludedCalls = *u.IncludedCalls
	}
	if u.HardStop != nil {
		p.HardStop = *u.HardStop
	}
	if u.RatePerMinute != nil {
		p.RatePerMinute = *u.RatePerMinute
	}
	if u.OverageMicrosPerCall != nil {
		p.OverageMicrosPerCall = *u.OverageMicrosPerCall
	}
	if u.PremiumMicrosPerCall != nil {
		p.PremiumMicrosPerCall = *u.PremiumMicrosPerCall
	}
	if u.AnalyticsAddonMicros != nil {
		p.AnalyticsAddonMicros = *u.AnalyticsAddonMicros
	}
	if u.Active != nil {
		p.Active = *u.Active
	}
}

// BillingSettings are a workspace's billing options.
type BillingSettings struct {
	// AnalyticsAddon adds the plan's analytics add-on fee to every month.
	AnalyticsAddon bool
	// PremiumRouting lets the proxy route with cost strategies and
	// cross-key fallback, billed per call; without it calls go to the
	// first usable key in priority order, one attempt. On by default.
	PremiumRouting bool
	// Timezone is the workspace's reporting time zone (an IANA name; ""
	// means UTC): analytics' day buckets follow it. Billing periods stay
	// UTC calendar months.
	Timezone string
}

// BillingSettingsUpdate changes BillingSettings; nil fields stay.
type BillingSettingsUpdate struct {
	AnalyticsAddon *bool
	PremiumRouting *bool
	Timezone       *string
}

// LoadTimezone loads a reporting time zone by its IANA name. Names that
// time.LoadLocation would read as a file path are refused.
func LoadTimezone(name string) (*time.Location, error) {
	if name == "" || len(name) > 64 || strings.Contains(name, "..") || strings.HasPrefix(name, "/") || name == "Local" {
		return nil, Errorf(EINVALID, "unknown time zone %q", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, Errorf(EINVALID, "unknown time zone %q", name)
	}
	return loc, nil
}

// WorkspaceBilling is what billing needs to know about a workspace.
type WorkspaceBilling struct {
	Workspace *Workspace // Workspace.Plan is the plan's ID
	Settings  BillingSettings
}

// Sources of a plan change.
const (
	PlanSourceAdmin  = "admin"  // a wallet ADMIN
	PlanSourceStripe = "stripe" // a Stripe webhook event
	PlanSourceSystem = "system" // the wallet itself
)

// PlanChange records one change of a workspace's plan, for churn and
// for finding the plan a workspace was on in a past month.
type PlanChange struct {
	ID          int64 // increasing in the order the changes were made
	WorkspaceID string
	FromPlan    string
	ToPlan      string
	Source      string // PlanSourceAdmin, PlanSourceStripe, ...
	ActorID     string // the user, or the Stripe event id; may be empty
	CreatedAt   time.Time
}

// PlanCount is how many workspaces are on one plan, and how many of them
// have the analytics add-on.
type PlanCount struct {
	Plan           string
	Workspaces     int64
	AnalyticsAddon int64
}

// PlanMove is a workspace whose plan at the start of a period differs
// from its plan now.
type PlanMove struct {
	WorkspaceID string
	From, To    string
}

// BillingSnapshot is the raw material of the business report, read by
// BillingStore.BillingSnapshot for a period [From, To).
type BillingSnapshot struct {
	From, To time.Time
	// Plans counts every workspace by its current plan.
	Plans []PlanCount
	// StartPlans counts the workspaces created before From by the plan
	// they were on at From (the AnalyticsAddon counts are not filled).
	StartPlans []PlanCount
	// Moves lists the workspaces created before From whose plan at From
	// differs from their plan now.
	Moves []PlanMove
	// ActiveWorkspaces counts workspaces with at least one call in
	// [From, To).
	ActiveWorkspaces int64
}

// BillingStore persists plans, workspace billing settings and plan
// changes.
type BillingStore interface {
	// FindPlans lists every plan, retired ones included, cheapest first.
	FindPlans(ctx context.Context) ([]*Plan, error)
	// FindPlanByID returns a plan. ENOTFOUND.
	FindPlanByID(ctx context.Context, id string) (*Plan, error)
	// CreatePlan stores p, filling its times, and appends ev (which may
	// be nil) in the same transaction. ECONFLICT if the ID is taken.
	CreatePlan(ctx context.Context, p *Plan, ev *AuditEvent) error
	// UpdatePlan applies upd to plan id and appends ev. ENOTFOUND.
	UpdatePlan(ctx context.Context, id string, upd PlanUpdate, ev *AuditEvent) (*Plan, error)

	// FindWorkspaceBilling returns a workspace with its billing settings.
	// ENOTFOUND.
	FindWorkspaceBilling(ctx context.Context, workspaceID string) (*WorkspaceBilling, error)
	// UpdateBillingSettings applies upd to a workspace's settings and
	// appends ev. ENOTFOUND.
	UpdateBillingSettings(ctx context.Context, workspaceID string, upd BillingSettingsUpdate, ev *AuditEvent) (*WorkspaceBilling, error)
	// ChangeWorkspacePlan moves a workspace to plan and records the change
	// (source is one of the PlanSource constants; ev's actor, if any, is
	// recorded with it) and ev in the same transaction. Moving a workspace
	// to the plan it is on changes and records nothing and returns it as
	// it is, so that a redelivered webhook is harmless. EINVALID if plan
	// is unknown or retired; ENOTFOUND if the workspace is.
	ChangeWorkspacePlan(ctx context.Context, workspaceID, plan, source string, ev *AuditEvent) (*Workspace, error)
	// FindPlanChanges lists workspaceID's plan changes made at or after
	// since, oldest first.
	FindPlanChanges(ctx context.Context, workspaceID string, since time.Time) ([]*PlanChange, error)
	// BillingSnapshot reads the counts of the business report for the
	// period [from, to).
	BillingSnapshot(ctx context.Context, from, to time.Time) (*BillingSnapshot, error)
}
