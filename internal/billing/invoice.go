package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// Invoice line kinds.
const (
	LinePlan           = "plan"
	LineOverage        = "overage"
	LinePremiumRouting = "premium_routing"
	LineAnalyticsAddon = "analytics_addon"
)

// Invoice statuses.
const (
	// InvoiceOpen is the current month's invoice: its usage still grows.
	InvoiceOpen = "open"
	// InvoiceClosed is a past month's.
	InvoiceClosed = "closed"
)

// Line is one line of an invoice: Quantity x UnitPriceMicros =
// AmountMicros, exactly.
type Line struct {
	Kind            string
	Description     string
	Quantity        int64
	UnitPriceMicros int64
	AmountMicros    int64
}

// Invoice is what a workspace owes for one calendar month.
type Invoice struct {
	WorkspaceID string
	Month       string // "2026-03"
	// The period is [PeriodStart, PeriodEnd), UTC.
	PeriodStart, PeriodEnd time.Time
	Status                 string
	Plan                   *apiwallet.Plan
	Calls                  int64
	PremiumCalls           int64
	IncludedCalls          int64
	OverageCalls           int64
	AnalyticsAddon         bool
	// Lines: the plan fee first, then overage, premium routing and the
	// analytics add-on when they apply. Overage and premium routing
	// appear only with calls to bill.
	Lines       []Line
	TotalMicros int64
}

// Invoice returns workspaceID's invoice for month ("YYYY-MM"). EINVALID
// naming the field month if it is malformed; ENOTFOUND for a month that
// has not started or that ended before the workspace existed.
func (s *Service) Invoice(ctx context.Context, workspaceID, month string) (inv *Invoice, err error) {
	defer apiwallet.Wrap(&err, "billing.Invoice(%s)", month)
	start, err := ParseMonth(month)
	if err != nil {
		return nil, err
	}
	end := start.AddDate(0, 1, 0)
	now := s.now()
	if start.After(now) {
		return nil, apiwallet.Errorf(apiwallet.ENOTFOUND,
			"no invoice for %s: the month has not started (the current month is %s)", month, now.Format(MonthLayout))
	}
	wb, err := s.store.FindWorkspaceBilling(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	if !wb.Workspace.CreatedAt.Before(end) {
		return nil, apiwallet.Errorf(apiwallet.ENOTFOUND,
			"no invoice for %s: the workspace was created in %s", month, wb.Workspace.CreatedAt.UTC().Format(MonthLayout))
	}

	// The plan at the end of the period (or now): the plan the first
	// change since then left, or the current plan if none.
	at, status := end, InvoiceClosed
	if now.Before(end) {
		at, status = now, InvoiceOpen
	}
	planID := wb.Workspace.Plan
	changes, err := s.store.FindPlanChanges(ctx, workspaceID, at)
	if err != nil {
		return nil, err
	}
	if len(changes) > 0 {
		planID = changes[0].FromPlan
	}
	p, err := s.findPlan(ctx, planID)
	if err != nil {
		return nil, err
	}

	u, err := s.usage.WorkspaceUsage(ctx, workspaceID, start, end)
	if err != nil {
		return nil, err
	}
	inv, err = buildInvoice(p, wb.Settings.AnalyticsAddon, u.Billable(), u.Premium, month)
	if err != nil {
		return nil, err
	}
	inv.WorkspaceID, inv.PeriodStart, inv.PeriodEnd, inv.Status = workspaceID, start, end, status
	return inv, nil
}

// buildInvoice prices calls and premium calls on plan p.
func buildInvoice(p *apiwallet.Plan, addon bool, calls, premium int64, month string) (*Invoice, error) {
	inv := &Invoice{
		Month: month, Plan: p, Calls: calls, PremiumCalls: premium, IncludedCalls: p.IncludedCalls,
		OverageCalls: overageCalls(p, calls), AnalyticsAddon: addon,
	}
	line := func(kind, desc string, qty, unit int64) error {
		amount, err := mul(qty, unit)
		if err != nil {
			return err
		}
		inv.Lines = append(inv.Lines, Line{Kind: kind, Description: desc, Quantity: qty, UnitPriceMicros: unit, AmountMicros: amount})
		if inv.TotalMicros, err = add(inv.TotalMicros, amount); err != nil {
			return err
		}
		return nil
	}
	if err := line(LinePlan, fmt.Sprintf("%s plan, %s (%d calls included)", p.Name, month, p.IncludedCalls),
		1, p.PriceMicros); err != nil {
		return nil, err
	}
	if inv.OverageCalls > 0 {
		if err := line(LineOverage, fmt.Sprintf("Calls beyond the %d included", p.IncludedCalls),
			inv.OverageCalls, p.OverageMicrosPerCall); err != nil {
			return nil, err
		}
	}
	if premium > 0 {
		if err := line(LinePremiumRouting, "Calls with premium routing (cost strategies, cross-key fallback)",
			premium, p.PremiumMicrosPerCall); err != nil {
			return nil, err
		}
	}
	if addon {
		if err := line(LineAnalyticsAddon, "Analytics add-on", 1, p.AnalyticsAddonMicros); err != nil {
			return nil, err
		}
	}
	return inv, nil
}
