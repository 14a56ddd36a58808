package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// Options configure a Service.
type Options struct {
	// FreeQuota, if not nil, replaces the free plan's included calls
	// (DEFAULT_FREE_QUOTA); the plans table keeps its own value.
	FreeQuota *int64
	// RatePerMinute is the request rate of plans whose RatePerMinute is 0
	// (MAX_REQUESTS_PER_MINUTE).
	RatePerMinute int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Service computes plans, invoices and the business report. It holds no
// state of its own: every instance of the wallet computes the same
// figures from the shared database.
type Service struct {
	store apiwallet.BillingStore
	usage apiwallet.UsageStore
	opts  Options
}

// New returns a Service over store and usage.
func New(store apiwallet.BillingStore, usage apiwallet.UsageStore, opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{store: store, usage: usage, opts: opts}
}

func (s *Service) now() time.Time { return s.opts.Now().UTC() }

// FreeQuotaOverride reports the DEFAULT_FREE_QUOTA override, if any.
func (s *Service) FreeQuotaOverride() (int64, bool) {
	if s.opts.FreeQuota == nil {
		return 0, false
	}
	return *s.opts.FreeQuota, true
}

// effective returns a copy of p as it applies: with DEFAULT_FREE_QUOTA as
// the free plan's included calls.
func (s *Service) effective(p *apiwallet.Plan) *apiwallet.Plan {
	c := *p
	if q, ok := s.FreeQuotaOverride(); ok && c.ID == apiwallet.PlanFree {
		c.IncludedCalls = q
	}
	return &c
}

// RatePerMinute is the request rate p allows: its own, or the operator's
// default when it has none.
func (s *Service) RatePerMinute(p *apiwallet.Plan) int {
	if p.RatePerMinute > 0 {
		return p.RatePerMinute
	}
	return s.opts.RatePerMinute
}

// EffectivePlan returns the plan a workspace is on, as it applies now
// (DEFAULT_FREE_QUOTA included), with the workspace's billing settings:
// what the proxy's quotas and routing need. ENOTFOUND for a missing
// workspace.
func (s *Service) EffectivePlan(ctx context.Context, workspaceID string) (*apiwallet.Plan, apiwallet.BillingSettings, error) {
	wb, err := s.store.FindWorkspaceBilling(ctx, workspaceID)
	if err != nil {
		return nil, apiwallet.BillingSettings{}, err
	}
	p, err := s.findPlan(ctx, wb.Workspace.Plan)
	if err != nil {
		return nil, apiwallet.BillingSettings{}, err
	}
	return p, wb.Settings, nil
}

// WorkspacePolicy reports whether the workspace has premium routing on,
// its plan's calls per minute and the plan's id (proxy.Policies).
func (s *Service) WorkspacePolicy(ctx context.Context, workspaceID string) (bool, int, string, error) {
	p, settings, err := s.EffectivePlan(ctx, workspaceID)
	if err != nil {
		return false, 0, "", err
	}
	return settings.PremiumRouting, s.RatePerMinute(p), p.ID, nil
}

// findPlan returns the effective plan id. A workspace on a plan that is not
// in the table is an internal error: plans are never deleted.
func (s *Service) findPlan(ctx context.Context, id string) (*apiwallet.Plan, error) {
	p, err := s.store.FindPlanByID(ctx, id)
	if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND {
		return nil, fmt.Errorf("workspace plan %q is not in the plans table", id)
	} else if err != nil {
		return nil, err
	}
	return s.effective(p), nil
}

// PlanStatus is a workspace's plan and its use in the current month.
type PlanStatus struct {
	WorkspaceID string
	Plan        *apiwallet.Plan // as it applies (DEFAULT_FREE_QUOTA included)
	// RatePerMinute is the plan's request rate, the operator's default
	// filled in.
	RatePerMinute int
	Settings      apiwallet.BillingSettings
	// The period is the calendar month in UTC: [PeriodStart, PeriodEnd).
	PeriodStart, PeriodEnd time.Time
	UsedCalls              int64
	PremiumCalls           int64
	IncludedCalls          int64
	// RemainingCalls is what is left of IncludedCalls; never negative.
	RemainingCalls int64
	// OverageCalls and OverageMicros are the billable overage so far
	// (always 0 on a hard-stop plan).
	OverageCalls  int64
	OverageMicros int64
	Projected     Projection
}

// Projection extends the month so far linearly to the month's end: calls
// at the average rate since the month began (over at least one hour, so
// that the first minutes of a month do not project wildly).
type Projection struct {
	Calls         int64
	PremiumCalls  int64
	OverageCalls  int64
	OverageMicros int64
	PremiumMicros int64
	// TotalMicros is the invoice the month would end with: plan fee,
	// projected overage and premium routing, and the add-on if enabled.
	TotalMicros int64
}

// Plan returns workspaceID's plan, period and usage this month.
func (s *Service) Plan(ctx context.Context, workspaceID string) (st *PlanStatus, err error) {
	defer apiwallet.Wrap(&err, "billing.Plan")
	wb, err := s.store.FindWorkspaceBilling(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	p, err := s.findPlan(ctx, wb.Workspace.Plan)
	if err != nil {
		return nil, err
	}
	now := s.now()
	start := MonthStart(now)
	end := start.AddDate(0, 1, 0)
	u, err := s.usage.WorkspaceUsage(ctx, workspaceID, start, end)
	if err != nil {
		return nil, err
	}
	calls := u.Billable()
	st = &PlanStatus{
		WorkspaceID: workspaceID, Plan: p, RatePerMinute: s.RatePerMinute(p), Settings: wb.Settings,
		PeriodStart: start, PeriodEnd: end, UsedCalls: calls, PremiumCalls: u.Premium,
		IncludedCalls: p.IncludedCalls, RemainingCalls: max(0, p.IncludedCalls-calls),
		OverageCalls: overageCalls(p, calls),
	}
	if st.OverageMicros, err = mul(st.OverageCalls, p.OverageMicrosPerCall); err != nil {
		return nil, err
	}
	if st.Projected, err = project(p, wb.Settings, calls, u.Premium, start, end, now); err != nil {
		return nil, err
	}
	return st, nil
}

// overageCalls is how many of calls p bills as overage.
func overageCalls(p *apiwallet.Plan, calls int64) int64 {
	if p.HardStop {
		return 0
	}
	return max(0, calls-p.IncludedCalls)
}

// project extends calls and premium so far in [start, now) to [start, end).
func project(p *apiwallet.Plan, set apiwallet.BillingSettings, calls, premium int64, start, end, now time.Time) (pr Projection, err error) {
	period := int64(end.Sub(start) / time.Second)
	elapsed := int64(now.Sub(start) / time.Second)
	elapsed = min(max(elapsed, int64(time.Hour/time.Second)), period)
	if pr.Calls, err = mulDiv(calls, period, elapsed); err != nil {
		return pr, err
	}
	if pr.PremiumCalls, err = mulDiv(premium, period, elapsed); err != nil {
		return pr, err
	}
	if p.HardStop {
		// The proxy refuses calls beyond the quota.
		pr.Calls = min(pr.Calls, max(calls, p.IncludedCalls))
		pr.PremiumCalls = min(pr.PremiumCalls, pr.Calls)
	}
	pr.OverageCalls = overageCalls(p, pr.Calls)
	if pr.OverageMicros, err = mul(pr.OverageCalls, p.OverageMicrosPerCall); err != nil {
		return pr, err
	}
	if pr.PremiumMicros, err = mul(pr.PremiumCalls, p.PremiumMicrosPerCall); err != nil {
		return pr, err
	}
	addon := int64(0)
	if set.AnalyticsAddon {
		addon = p.AnalyticsAddonMicros
	}
	pr.TotalMicros, err = add(p.PriceMicros, pr.OverageMicros, pr.PremiumMicros, addon)
	return pr, err
}

// UpdateSettings changes the billing settings of the member's workspace:
// workspace admins and owners only. EINVALID if upd changes nothing.
func (s *Service) UpdateSettings(ctx context.Context, actor *apiwallet.User, m *apiwallet.Membership,
	upd apiwallet.BillingSettingsUpdate) (*apiwallet.WorkspaceBilling, error) {
	if !m.Role.AtLeast(apiwallet.WorkspaceAdmin) {
		return nil, apiwallet.Errorf(apiwallet.EFORBIDDEN,
			"your role in this workspace (%s) cannot change billing settings; it needs admin or above", m.Role)
	}
	if upd.AnalyticsAddon == nil && upd.PremiumRouting == nil && upd.Timezone == nil {
		return nil, apiwallet.Errorf(apiwallet.EINVALID, "nothing to change: send analyticsAddon, premiumRouting or timezone")
	}
	if upd.Timezone != nil && *upd.Timezone != "" {
		if _, err := apiwallet.LoadTimezone(*upd.Timezone); err != nil {
			var v apiwallet.ValidationError
			v.Add("timezone", "must be an IANA time zone name such as Europe/Paris, or \"\" for UTC")
			return nil, v.Err()
		}
	}
	ws := m.Workspace.ID
	return s.store.UpdateBillingSettings(ctx, ws, upd,
		apiwallet.NewAuditEvent(ctx, ws, apiwallet.ActorUser, actor.ID, "billing.settings_update", "workspace", ws))
}

// PlanFor returns the calls workspaceID's plan includes a month and
// whether it stops there, as they apply now (DEFAULT_FREE_QUOTA
// included): what the proxy's monthly quota enforces. It satisfies
// quota.Plans.
func (s *Service) PlanFor(ctx context.Context, workspaceID string) (included int64, hardStop bool, err error) {
	p, _, err := s.EffectivePlan(ctx, workspaceID)
	if err != nil {
		return 0, false, err
	}
	return p.IncludedCalls, p.HardStop, nil
}
