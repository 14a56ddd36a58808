package quota

import (
	"context"
	"fmt"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// Counter counts each workspace's calls per calendar month (UTC) and
// enforces its plan's included calls.
type Counter interface {
	// Reserve counts one call of workspaceID in the month holding period,
	// atomically: when hardStop is set it does so only while the month's
	// count is below included, and otherwise returns an *Exceeded error
	// and counts nothing; without hardStop it always counts (the calls
	// beyond included are overage, billed). Reserve before forwarding a
	// call, and Settle once its outcome is known.
	Reserve(ctx context.Context, workspaceID string, period time.Time, included int64, hardStop bool) (Reservation, error)
	// Settle completes a reservation. happened=false refunds it: the
	// upstream call never happened (no usable key, refused before being
	// sent, every attempt failed to connect). happened=true keeps the
	// count and costs nothing. Settling the zero Reservation does nothing.
	Settle(ctx context.Context, res Reservation, happened bool) error
	// Used returns the calls counted for workspaceID in the month holding
	// period.
	Used(ctx context.Context, workspaceID string, period time.Time) (int64, error)
}

// UsageStore is what the counters read a month's count from the first time
// they meet a workspace in that month: the usage records' hourly rollups
// (*sqldb.DB implements it).
type UsageStore interface {
	WorkspaceUsage(ctx context.Context, workspaceID string, from, to time.Time) (apiwallet.UsageSummary, error)
}

// Exceeded is the error of a Reserve refused by a hard stop.
type Exceeded struct {
	Included int64     // the plan's included calls a month
	Used     int64     // the calls counted this month
	ResetAt  time.Time // the first instant of the next month, UTC
}

func (e *Exceeded) Error() string {
	return fmt.Sprintf("quota: the plan's %d calls a month are used up (%d used); the quota resets at %s",
		e.Included, e.Used, e.ResetAt.Format(time.RFC3339))
}

// backend says which counter took a reservation, so that Fallback refunds
// it where it was counted.
type backend uint8

const (
	none backend = iota
	inMemory
	inRedis
)

// Reservation is one counted call, to be settled.
type Reservation struct {
	WorkspaceID string
	Period      time.Time // the first instant of the month, UTC
	Included    int64
	HardStop    bool
	Used        int64 // the month's count including this call

	backend backend
	entry   *memEntry // inMemory: the counter it was taken from
}

// Valid reports whether res holds a counted call (the zero Reservation
// does not).
func (res Reservation) Valid() bool { return res.backend != none }

// MonthStart returns the first instant (UTC) of the calendar month holding t.
func MonthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// NextMonth returns the first instant (UTC) of the month after the one
// holding t: when that month's quota resets.
func NextMonth(t time.Time) time.Time {
	return MonthStart(t).AddDate(0, 1, 0)
}

// monthLabel is the YYYY-MM of the month starting at period.
func monthLabel(period time.Time) string { return period.Format("2006-01") }

// storeCount is the month's count according to the usage rollups.
func storeCount(ctx context.Context, store UsageStore, workspaceID string, period time.Time) (int64, error) {
	if store == nil {
		return 0, nil
	}
	s, err := store.WorkspaceUsage(ctx, workspaceID, period, period.AddDate(0, 1, 0))
	if err != nil {
		return 0, fmt.Errorf("quota: read this month's usage: %w", err)
	}
	return s.Billable(), nil
}

var (
	_ Counter = (*Memory)(nil)
	_ Counter = (*Redis)(nil)
	_ Counter = (*Fallback)(nil)
)
