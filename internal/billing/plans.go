package billing

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/apikeywallet/apiwallet"
)

// Bounds on what an administrator may set, far above any real price, so
// that every product of a price and a quantity stays well inside int64.
const (
	maxPriceMicros   = 1_000_000 * MicrosPerDollar // $1,000,000 a month
	maxPerCallMicros = 1_000 * MicrosPerDollar     // $1,000 a call
	maxCalls         = 1_000_000_000_000_000       // 10^15 calls a month
	maxRate          = 1 << 30
)

// requireAdmin fails unless actor has the global ADMIN role.
func requireAdmin(actor *apiwallet.User) error {
	if actor == nil || actor.Role != apiwallet.RoleAdmin {
		return apiwallet.Errorf(apiwallet.EFORBIDDEN, "this needs the global ADMIN role")
	}
	return nil
}

// Plans lists every plan as it applies (DEFAULT_FREE_QUOTA included),
// retired ones too, for an administrator.
func (s *Service) Plans(ctx context.Context, actor *apiwallet.User) ([]*apiwallet.Plan, error) {
	if err := requireAdmin(actor); err != nil {
		return nil, err
	}
	plans, err := s.store.FindPlans(ctx)
	if err != nil {
		return nil, err
	}
	for i, p := range plans {
		plans[i] = s.effective(p)
	}
	return plans, nil
}

// PublicPlans lists the active plans as they apply now, cheapest first,
// for anyone (the landing page's prices).
func (s *Service) PublicPlans(ctx context.Context) ([]*apiwallet.Plan, error) {
	plans, err := s.store.FindPlans(ctx)
	if err != nil {
		return nil, err
	}
	out := plans[:0]
	for _, p := range plans {
		if p.Active {
			out = append(out, s.effective(p))
		}
	}
	return out, nil
}

// CreatePlan adds plan p for an administrator. EINVALID naming each bad
// field; ECONFLICT if the id is taken.
func (s *Service) CreatePlan(ctx context.Context, actor *apiwallet.User, p *apiwallet.Plan) error {
	if err := requireAdmin(actor); err != nil {
		return err
	}
	var v apiwallet.ValidationError
	if !validPlanID(p.ID) {
		v.Add("id", "must be 1 to 40 lower-case letters, digits and dashes, starting with a letter, such as \"startup\"")
	}
	validatePlan(&v, p)
	if err := v.Err(); err != nil {
		return err
	}
	return s.store.CreatePlan(ctx, p, planEvent(ctx, actor, "plan.create", p.ID))
}

// UpdatePlan changes plan id for an administrator. The free plan cannot
// be retired (every new workspace is on it), nor can its included calls
// change while DEFAULT_FREE_QUOTA overrides them. EINVALID; ENOTFOUND.
func (s *Service) UpdatePlan(ctx context.Context, actor *apiwallet.User, id string, upd apiwallet.PlanUpdate) (*apiwallet.Plan, error) {
	if err := requireAdmin(actor); err != nil {
		return nil, err
	}
	if upd.Empty() {
		return nil, apiwallet.Errorf(apiwallet.EINVALID, "nothing to change: send at least one field of the plan")
	}
	cur, err := s.store.FindPlanByID(ctx, id)
	if err != nil {
		return nil, err
	}
	next := *cur
	upd.Apply(&next)
	var v apiwallet.ValidationError
	validatePlan(&v, &next)
	if id == apiwallet.PlanFree {
		if upd.Active != nil && !*upd.Active {
			v.Add("active", "the free plan is every new workspace's plan and cannot be retired")
		}
		if q, ok := s.FreeQuotaOverride(); ok && upd.IncludedCalls != nil {
			v.Add("includedCalls", fmt.Sprintf("the free plan's included calls are set by DEFAULT_FREE_QUOTA (now %d); change that setting instead", q))
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	p, err := s.store.UpdatePlan(ctx, id, upd, planEvent(ctx, actor, "plan.update", id))
	if err != nil {
		return nil, err
	}
	return s.effective(p), nil
}

func planEvent(ctx context.Context, actor *apiwallet.User, action, id string) *apiwallet.AuditEvent {
	return apiwallet.NewAuditEvent(ctx, actor.PersonalWorkspaceID, apiwallet.ActorUser, actor.ID, action, "plan", id)
}

// validPlanID reports whether id is a plan slug.
func validPlanID(id string) bool {
	if id == "" || len(id) > 40 || id[0] < 'a' || id[0] > 'z' {
		return false
	}
	return strings.Trim(id, "abcdefghijklmnopqrstuvwxyz0123456789-") == ""
}

// validatePlan checks every field but the id.
func validatePlan(v *apiwallet.ValidationError, p *apiwallet.Plan) {
	if n := utf8.RuneCountInString(strings.TrimSpace(p.Name)); n == 0 || n > 100 || !utf8.ValidString(p.Name) {
		v.Add("name", "must be 1 to 100 characters")
	}
	money := func(field string, x, limit int64) {
		if x < 0 || x > limit {
			v.Add(field, fmt.Sprintf("must be a whole number of micro-dollars from 0 to %d ($%s)", limit, Dollars(limit)))
		}
	}
	money("priceMicros", p.PriceMicros, maxPriceMicros)
	money("overageMicrosPerCall", p.OverageMicrosPerCall, maxPerCallMicros)
	money("premiumMicrosPerCall", p.PremiumMicrosPerCall, maxPerCallMicros)
	money("analyticsAddonMicros", p.AnalyticsAddonMicros, maxPriceMicros)
	if p.IncludedCalls < 0 || p.IncludedCalls > maxCalls {
		v.Add("includedCalls", fmt.Sprintf("must be a whole number from 0 to %d", int64(maxCalls)))
	}
	if p.RatePerMinute < 0 || p.RatePerMinute > maxRate {
		v.Add("ratePerMinute", fmt.Sprintf("must be a whole number from 0 (the operator's default) to %d", maxRate))
	}
}
