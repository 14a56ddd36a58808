package analytics

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// KeyHealth is one key's state and use in the current period.
type KeyHealth struct {
	Key       *apiwallet.Key
	Status    string // active, disabled, cooldown or quarantined
	Until     time.Time
	Reason    string
	FreeQuota int64 // 0: no free quota (a paid key, or none known)
	FreeUsed  int64
	FreeLeft  int64
	// FreePeriodEnd is when the free quota renews.
	FreePeriodEnd time.Time
	Calls         int64 // this month
	ErrorRate     float64
	RateLimited   float64
	LastUsedAt    time.Time
	figures       apiwallet.UsageFigures
	freeStart     time.Time
}

// HealthSummary sums a workspace's keys.
type HealthSummary struct {
	Registered, Active int64
	Utilisation        float64
	SuccessRate        float64
	AvgResponseMs      float64
}

// Health is the answer of KeyHealth.
type Health struct {
	MonthStart time.Time
	Keys       []KeyHealth
	Summary    HealthSummary
	// total sums every call of the month, with or without a stored key.
	total apiwallet.UsageFigures
}

func monthStart(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// KeyHealth reports every key of a workspace with its use this calendar
// month (UTC, the billing period) and its free quota in its own period.
func (s *Service) KeyHealth(ctx context.Context, workspaceID string) (*Health, error) {
	now := s.now()
	ms := monthStart(now)
	keys, err := s.keyMap(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	month, err := s.Store.UsageGroups(ctx, apiwallet.UsageQuery{WorkspaceID: workspaceID, From: ms, To: now.Add(time.Hour), GroupBy: apiwallet.DimKey})
	if err != nil {
		return nil, err
	}
	dayStart := now.Truncate(24 * time.Hour)
	today, err := s.Store.UsageGroups(ctx, apiwallet.UsageQuery{WorkspaceID: workspaceID, From: dayStart, To: now.Add(time.Hour), GroupBy: apiwallet.DimKey})
	if err != nil {
		return nil, err
	}
	byMonth := map[string]*apiwallet.UsageFigures{}
	var all apiwallet.UsageFigures
	for i := range month {
		byMonth[month[i].Group] = &month[i].UsageFigures
		all.Add(&month[i].UsageFigures)
	}
	byDay := map[string]int64{}
	for _, g := range today {
		byDay[g.Group] = g.Calls
	}
	h := &Health{MonthStart: ms, total: all}
	ids := make([]string, 0, len(keys))
	for id := range keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		k := keys[id]
		kh := KeyHealth{Key: k, Status: k.DisplayStatus(), LastUsedAt: k.LastUsedAt}
		if k.Enabled && s.States != nil {
			if st := s.States.KeyState(id, now); st.Status != "" {
				kh.Status, kh.Until, kh.Reason = st.Status, st.Until, st.Reason
			}
		}
		if f := byMonth[id]; f != nil {
			kh.figures = *f
			kh.Calls = f.Calls
			kh.ErrorRate = round(float64(f.Calls-f.Successes)/float64(f.Calls), 4)
			kh.RateLimited = round(float64(f.RateLimited)/float64(f.Calls), 4)
			h.Summary.Active++
		}
		if k.Tier == apiwallet.TierFree {
			quota, period := s.freeQuota(k)
			if quota > 0 {
				kh.FreeQuota = quota
				used := kh.Calls
				kh.freeStart, kh.FreePeriodEnd = ms, ms.AddDate(0, 1, 0)
				if period == "day" {
					used = byDay[id]
					kh.freeStart, kh.FreePeriodEnd = dayStart, dayStart.Add(24*time.Hour)
				}
				kh.FreeUsed = used
				kh.FreeLeft = max(0, quota-used)
			}
		}
		h.Keys = append(h.Keys, kh)
	}
	h.Summary.Registered = int64(len(keys))
	if h.Summary.Registered > 0 {
		h.Summary.Utilisation = round(float64(h.Summary.Active)/float64(h.Summary.Registered), 4)
	}
	if all.Calls > 0 {
		h.Summary.SuccessRate = round(float64(all.Successes)/float64(all.Calls), 4)
		h.Summary.AvgResponseMs = round(float64(all.LatencyMicrosSum)/float64(all.Calls)/1000, 3)
	}
	return h, nil
}

// freeQuota is a free key's quota and its period: the key's own recorded
// quota (per month), else the catalog's free allowance for its service.
func (s *Service) freeQuota(k *apiwallet.Key) (int64, string) {
	if k.Metadata.Quota != nil && *k.Metadata.Quota > 0 {
		return *k.Metadata.Quota, "month"
	}
	if info, ok := s.Services.Service(k.Service); ok && info.FreeQuota > 0 {
		return info.FreeQuota, info.FreePeriod
	}
	return 0, ""
}

// Recommendation is one piece of advice with the money at stake.
type Recommendation struct {
	Kind, Severity, Title, Detail string
	SavingsMicros                 int64
	KeyID, Service                string
	Figures                       map[string]any
}

// Kinds of recommendation.
const (
	RaiseFreePriority = "raise_free_priority"
	UnusedKey         = "unused_key"
	FailingKey        = "failing_key"
	CheaperPlan       = "cheaper_plan"
	QuotaRunsOut      = "quota_runs_out"
)

func dollars(micros int64) string {
	return fmt.Sprintf("$%.2f", float64(micros)/1e6)
}

// Recommendations computes advice for a workspace from this month's use.
func (s *Service) Recommendations(ctx context.Context, workspaceID string) ([]Recommendation, error) {
	h, err := s.KeyHealth(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := []Recommendation{}

	// Free quota left unused while a paid key of the same service served
	// calls: each of those calls (up to the unused quota) would have been
	// free.
	for _, free := range h.Keys {
		if free.Key.Tier != apiwallet.TierFree || !free.Key.Enabled || free.FreeLeft == 0 {
			continue
		}
		for _, paid := range h.Keys {
			if paid.Key.Tier != apiwallet.TierPaid || paid.Key.Service != free.Key.Service || paid.Calls == 0 {
				continue
			}
			paidCalls := paid.figures.Calls - paid.figures.Refused
			if paidCalls <= 0 || paid.figures.CostMicros == 0 {
				continue
			}
			moved := min(free.FreeLeft, paidCalls)
			perCall := paid.figures.CostMicros / max(paid.figures.Successes, 1)
			saved := moved * perCall
			out = append(out, Recommendation{Kind: RaiseFreePriority, Severity: "warning", KeyID: free.Key.ID,
				Service: free.Key.Service, SavingsMicros: saved,
				Title: fmt.Sprintf("Use the free %s key before the paid one", free.Key.Service),
				Detail: fmt.Sprintf("free key %s had %d unused calls while paid key %s served %d: raising %s's priority would have saved %s",
					free.Key.Masked, free.FreeLeft, paid.Key.Masked, paidCalls, free.Key.Masked, dollars(saved)),
				Figures: map[string]any{"freeKeyId": free.Key.ID, "paidKeyId": paid.Key.ID, "unusedFreeCalls": free.FreeLeft,
					"paidCalls": paidCalls, "pricePerCallMicros": perCall, "callsMovable": moved}})
		}
	}
	for _, k := range h.Keys {
		switch {
		case k.Status == "quarantined":
			out = append(out, Recommendation{Kind: FailingKey, Severity: "critical", KeyID: k.Key.ID, Service: k.Key.Service,
				Title:   fmt.Sprintf("Key %s is quarantined", k.Key.Masked),
				Detail:  fmt.Sprintf("the upstream refused key %s (%s); rotate or replace it", k.Key.Masked, k.Reason),
				Figures: map[string]any{"calls": k.Calls, "errorRate": k.ErrorRate}})
		case k.Calls >= 20 && (k.ErrorRate >= 0.2 || k.RateLimited >= 0.1):
			out = append(out, Recommendation{Kind: FailingKey, Severity: "warning", KeyID: k.Key.ID, Service: k.Key.Service,
				Title: fmt.Sprintf("Key %s fails often", k.Key.Masked),
				Detail: fmt.Sprintf("%.0f%% of key %s's %d calls this month failed and %.0f%% were rate limited",
					100*k.ErrorRate, k.Key.Masked, k.Calls, 100*k.RateLimited),
				Figures: map[string]any{"calls": k.Calls, "errorRate": k.ErrorRate, "rateLimitedRate": k.RateLimited}})
		}
		idle := k.LastUsedAt
		if idle.IsZero() {
			idle = k.Key.CreatedAt
		}
		if k.Key.Enabled && now.Sub(idle) >= 30*24*time.Hour {
			out = append(out, Recommendation{Kind: UnusedKey, Severity: "info", KeyID: k.Key.ID, Service: k.Key.Service,
				Title:   fmt.Sprintf("Key %s is unused", k.Key.Masked),
				Detail:  fmt.Sprintf("key %s has served no call for %d days; disable or delete it", k.Key.Masked, int(now.Sub(idle).Hours()/24)),
				Figures: map[string]any{"lastUsedAt": k.LastUsedAt}})
		}
		// At the pace of this period so far, when does the free quota
		// run out?
		if k.FreeQuota > 0 && k.FreeUsed > 0 {
			start := k.freeStart
			elapsed := now.Sub(start)
			if elapsed <= 0 {
				continue
			}
			pace := float64(k.FreeUsed) / elapsed.Seconds()
			at := start.Add(time.Duration(float64(k.FreeQuota) / pace * float64(time.Second)))
			if at.Before(k.FreePeriodEnd) {
				info, _ := s.Services.Service(k.Key.Service)
				over := int64(k.FreePeriodEnd.Sub(at).Seconds() * pace)
				out = append(out, Recommendation{Kind: QuotaRunsOut, Severity: "warning", KeyID: k.Key.ID, Service: k.Key.Service,
					SavingsMicros: over * info.PriceMicros,
					Title:         fmt.Sprintf("Free key %s runs out on %s", k.Key.Masked, at.Format("2006-01-02")),
					Detail: fmt.Sprintf("at the current pace free key %s uses its %d calls by %s; about %d more calls would then cost %s on a paid key",
						k.Key.Masked, k.FreeQuota, at.Format("2006-01-02 15:04 MST"), over, dollars(over*info.PriceMicros)),
					Figures: map[string]any{"freeQuota": k.FreeQuota, "freeUsed": k.FreeUsed, "runsOutAt": at, "periodEnd": k.FreePeriodEnd}})
			}
		}
	}
	if rec, ok, err := s.planAdvice(ctx, workspaceID, h, now); err != nil {
		return nil, err
	} else if ok {
		out = append(out, rec)
	}
	slices.SortStableFunc(out, func(a, b Recommendation) int {
		if a.SavingsMicros != b.SavingsMicros {
			if a.SavingsMicros > b.SavingsMicros {
				return -1
			}
			return 1
		}
		return 0
	})
	return out, nil
}

// planCost is what a month of calls costs on p; ok is false when p would
// refuse some of them.
func planCost(p *apiwallet.Plan, calls int64) (int64, bool) {
	over := max(0, calls-p.IncludedCalls)
	if over > 0 && p.HardStop {
		return 0, false
	}
	return p.PriceMicros + over*p.OverageMicrosPerCall, true
}

// planAdvice names the cheapest plan for the month's volume projected
// from its pace so far, when it is cheaper than the current plan.
func (s *Service) planAdvice(ctx context.Context, workspaceID string, h *Health, now time.Time) (Recommendation, bool, error) {
	if s.Plans == nil {
		return Recommendation{}, false, nil
	}
	// Billed calls, as billing counts them: those that reached an
	// upstream.
	calls := h.total.Calls - h.total.Unreached
	elapsed := now.Sub(h.MonthStart)
	month := h.MonthStart.AddDate(0, 1, 0).Sub(h.MonthStart)
	if calls == 0 || elapsed < time.Hour {
		return Recommendation{}, false, nil
	}
	projected := int64(float64(calls) * float64(month) / float64(elapsed))
	cur, _, err := s.Plans.EffectivePlan(ctx, workspaceID)
	if err != nil {
		return Recommendation{}, false, err
	}
	plans, err := s.Plans.PublicPlans(ctx)
	if err != nil {
		return Recommendation{}, false, err
	}
	curCost, curOK := planCost(cur, projected)
	var best *apiwallet.Plan
	var bestCost int64
	for _, p := range plans {
		if p.ID == cur.ID {
			continue
		}
		if c, ok := planCost(p, projected); ok && (best == nil || c < bestCost) {
			best, bestCost = p, c
		}
	}
	if best == nil || (curOK && bestCost >= curCost) {
		return Recommendation{}, false, nil
	}
	r := Recommendation{Kind: CheaperPlan, Severity: "info", Title: fmt.Sprintf("The %s plan fits your volume better", best.Name),
		Figures: map[string]any{"projectedCalls": projected, "currentPlan": cur.ID, "currentCostMicros": curCost,
			"suggestedPlan": best.ID, "suggestedCostMicros": bestCost}}
	if curOK {
		r.SavingsMicros = curCost - bestCost
		r.Detail = fmt.Sprintf("at about %d calls this month, %s would cost %s instead of %s on %s",
			projected, best.Name, dollars(bestCost), dollars(curCost), cur.Name)
	} else {
		r.Severity = "warning"
		r.Detail = fmt.Sprintf("at about %d calls this month, %s stops calls at %d; %s would serve them all for %s",
			projected, cur.Name, cur.IncludedCalls, best.Name, dollars(bestCost))
	}
	return r, true, nil
}
