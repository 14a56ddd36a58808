package alerts

import (
	"context"
	"log/slog"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// Quota periods, as the service catalog names a free tier's period.
const (
	PeriodHour  = "hour"
	PeriodDay   = "day"
	PeriodMonth = "month"
)

// PeriodStart is the start (UTC) of the quota period holding now.
func PeriodStart(period string, now time.Time) time.Time {
	now = now.UTC()
	switch period {
	case PeriodHour:
		return now.Truncate(time.Hour)
	case PeriodDay:
		return time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	default:
		return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
}

// PeriodLabel names the quota period holding now, as alerts record it:
// "2026-05" (month), "2026-05-14" (day), "2026-05-14T10" (hour).
func PeriodLabel(period string, now time.Time) string {
	now = now.UTC()
	switch period {
	case PeriodHour:
		return now.Format("2006-01-02T15")
	case PeriodDay:
		return now.Format(time.DateOnly)
	default:
		return now.Format("2006-01")
	}
}

// UsageReader is the usage the evaluator reads.
type UsageReader interface {
	WorkspaceUsage(ctx context.Context, workspaceID string, from, to time.Time) (apiwallet.UsageSummary, error)
	KeyUsageSince(ctx context.Context, workspaceID, service string, since time.Time) (map[string]int64, error)
	FindKeys(ctx context.Context, f apiwallet.KeyFilter) ([]*apiwallet.Key, error)
}

// Evaluator finds quota crossings from the usage records on its own, so
// alerts fire without any hook in the request path. Every Interval it
// lists the workspaces with usage in the last hour and checks each one's
// plan quota this month and the quota of each of its keys that sets
// metadata.quota, then resumes deliveries that a stopped instance left.
// Every instance may run one: the alerts table lets each crossing in once.
type Evaluator struct {
	Alerts *Service
	Store  Store
	Usage  UsageReader
	// IncludedCalls returns a workspace's plan quota per calendar month
	// (0 or less: none).
	IncludedCalls func(ctx context.Context, workspaceID string) (int64, error)
	// KeyPeriod returns the quota period of a service's keys (PeriodHour,
	// PeriodDay or PeriodMonth; the catalog's free-tier period); nil means
	// monthly.
	KeyPeriod func(service string) string
	Interval  time.Duration // default 30 s
	Log       *slog.Logger
	Now       func() time.Time
}

// Run evaluates every Interval until ctx ends.
func (e *Evaluator) Run(ctx context.Context) {
	interval := e.Interval
	if interval <= 0 {
		interval = 30 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := e.RunOnce(ctx); err != nil && ctx.Err() == nil {
				e.log().Warn("alerts: evaluation", "err", err)
			}
		}
	}
}

func (e *Evaluator) log() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Log
}

func (e *Evaluator) now() time.Time {
	if e.Now == nil {
		return time.Now().UTC()
	}
	return e.Now().UTC()
}

// RunOnce runs one evaluation round. A workspace that fails is logged and
// skipped; the first error is returned after every workspace was tried.
func (e *Evaluator) RunOnce(ctx context.Context) error {
	now := e.now()
	ids, err := e.Store.WorkspacesWithUsageSince(ctx, now.Add(-time.Hour))
	if err != nil {
		return err
	}
	var first error
	for _, ws := range ids {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := e.Workspace(ctx, ws, now); err != nil {
			e.log().Warn("alerts: evaluate workspace", "workspace_id", ws, "err", err)
			if first == nil {
				first = err
			}
		}
	}
	if err := e.Alerts.ResumeDeliveries(ctx); err != nil && first == nil {
		first = err
	}
	return first
}

// Workspace checks one workspace's plan quota and key quotas at now.
func (e *Evaluator) Workspace(ctx context.Context, workspaceID string, now time.Time) error {
	if e.IncludedCalls != nil {
		included, err := e.IncludedCalls(ctx, workspaceID)
		if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND {
			return nil // erased since its usage was read
		} else if err != nil {
			return err
		}
		if included > 0 {
			from := PeriodStart(PeriodMonth, now)
			sum, err := e.Usage.WorkspaceUsage(ctx, workspaceID, from, from.AddDate(0, 1, 0))
			if err != nil {
				return err
			}
			if _, err := e.Alerts.Check(ctx, workspaceID, sum.Billable(), included, PeriodLabel(PeriodMonth, now)); err != nil {
				return err
			}
		}
	}
	// Keys with a quota of their own, by service.
	byService := map[string][]*apiwallet.Key{}
	f := apiwallet.KeyFilter{WorkspaceID: workspaceID, Limit: 500}
	for {
		keys, err := e.Usage.FindKeys(ctx, f)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if k.Metadata.Quota != nil && *k.Metadata.Quota > 0 {
				byService[k.Service] = append(byService[k.Service], k)
			}
		}
		if len(keys) < f.Limit {
			break
		}
		f.After = keys[len(keys)-1].ID
	}
	for service, keys := range byService {
		period := PeriodMonth
		if e.KeyPeriod != nil {
			period = e.KeyPeriod(service)
		}
		used, err := e.Usage.KeyUsageSince(ctx, workspaceID, service, PeriodStart(period, now))
		if err != nil {
			return err
		}
		for _, k := range keys {
			if _, err := e.Alerts.CheckKey(ctx, workspaceID, k.ID, used[k.ID], *k.Metadata.Quota,
				PeriodLabel(period, now)); err != nil {
				return err
			}
		}
	}
	return nil
}
