package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// BusinessReport holds the seed's business metrics for the current month.
//
// Definitions:
//   - a workspace's monthly recurring fee is its plan's price plus the
//     analytics add-on when enabled; it is paying when that is above 0;
//   - MRR is the sum of every workspace's recurring fee (usage — overage
//     and premium routing — is not recurring and not in it);
//   - ARPU is MRR divided by the paying workspaces (floor, in micros);
//   - active workspaces made at least one call this month;
//   - churn is the share of the workspaces on a paid plan (price above 0)
//     at the start of the month that are on an unpaid plan now. Plans at
//     the start of the month come from the recorded plan changes; prices
//     are today's. An erased workspace leaves every count, churn included.
type BusinessReport struct {
	GeneratedAt            time.Time
	PeriodStart, PeriodEnd time.Time
	MRRMicros              int64
	PlanFeesMicros         int64 // the plans' part of MRR
	AddonFeesMicros        int64 // the analytics add-ons' part of MRR
	ARPUMicros             int64
	Workspaces             int64
	PayingWorkspaces       int64
	ActiveWorkspaces       int64
	Churn                  Churn
	PlanMix                []PlanMix
}

// Churn is the month's churn so far.
type Churn struct {
	PaidAtStart int64
	Churned     int64
	// RateBasisPoints is Churned/PaidAtStart in hundredths of a percent,
	// rounded down; 0 when nobody was paying.
	RateBasisPoints int64
}

// Rate formats the churn rate as a fraction with four decimals: "0.0333".
func (c Churn) Rate() string {
	return fmt.Sprintf("%d.%04d", c.RateBasisPoints/10000, c.RateBasisPoints%10000)
}

// PlanMix is one plan's share of the workspaces.
type PlanMix struct {
	Plan           string
	Name           string // empty for a plan id no longer in the table
	Workspaces     int64
	AnalyticsAddon int64
	MRRMicros      int64
}

// BusinessReport computes the report for the current month, for an
// administrator.
func (s *Service) BusinessReport(ctx context.Context, actor *apiwallet.User) (r *BusinessReport, err error) {
	defer apiwallet.Wrap(&err, "billing.BusinessReport")
	if err := requireAdmin(actor); err != nil {
		return nil, err
	}
	now := s.now()
	start := MonthStart(now)
	end := start.AddDate(0, 1, 0)
	plans, err := s.store.FindPlans(ctx)
	if err != nil {
		return nil, err
	}
	snap, err := s.store.BillingSnapshot(ctx, start, end)
	if err != nil {
		return nil, err
	}
	byID := map[string]*apiwallet.Plan{}
	r = &BusinessReport{GeneratedAt: now, PeriodStart: start, PeriodEnd: end, ActiveWorkspaces: snap.ActiveWorkspaces}
	// The mix lists every plan, cheapest first, then any plan id that
	// workspaces hold but the table lacks.
	mix := map[string]*PlanMix{}
	var order []string
	for _, p := range plans {
		byID[p.ID] = p
		mix[p.ID] = &PlanMix{Plan: p.ID, Name: p.Name}
		order = append(order, p.ID)
	}
	for _, c := range snap.Plans {
		m := mix[c.Plan]
		if m == nil {
			m = &PlanMix{Plan: c.Plan}
			mix[c.Plan] = m
			order = append(order, c.Plan)
		}
		m.Workspaces, m.AnalyticsAddon = c.Workspaces, c.AnalyticsAddon
		r.Workspaces += c.Workspaces
		p := byID[c.Plan]
		if p == nil {
			continue // priced as nothing: it is not in the table
		}
		fees, err := mul(c.Workspaces, p.PriceMicros)
		if err != nil {
			return nil, err
		}
		addons, err := mul(c.AnalyticsAddon, p.AnalyticsAddonMicros)
		if err != nil {
			return nil, err
		}
		if m.MRRMicros, err = add(fees, addons); err != nil {
			return nil, err
		}
		if r.PlanFeesMicros, err = add(r.PlanFeesMicros, fees); err != nil {
			return nil, err
		}
		if r.AddonFeesMicros, err = add(r.AddonFeesMicros, addons); err != nil {
			return nil, err
		}
		switch {
		case p.PriceMicros > 0:
			r.PayingWorkspaces += c.Workspaces
		case p.AnalyticsAddonMicros > 0:
			r.PayingWorkspaces += c.AnalyticsAddon
		}
	}
	for _, id := range order {
		r.PlanMix = append(r.PlanMix, *mix[id])
	}
	if r.MRRMicros, err = add(r.PlanFeesMicros, r.AddonFeesMicros); err != nil {
		return nil, err
	}
	if r.PayingWorkspaces > 0 {
		r.ARPUMicros = r.MRRMicros / r.PayingWorkspaces
	}

	paid := func(id string) bool { p := byID[id]; return p != nil && p.Paid() }
	for _, c := range snap.StartPlans {
		if paid(c.Plan) {
			r.Churn.PaidAtStart += c.Workspaces
		}
	}
	for _, m := range snap.Moves {
		if paid(m.From) && !paid(m.To) {
			r.Churn.Churned++
		}
	}
	if r.Churn.PaidAtStart > 0 {
		if r.Churn.RateBasisPoints, err = mulDiv(r.Churn.Churned, 10000, r.Churn.PaidAtStart); err != nil {
			return nil, err
		}
	}
	return r, nil
}
