package billing

import (
	"time"

	"github.com/apikeywallet/apiwallet"
)

// MonthLayout is the form of a billing month: "2026-03".
const MonthLayout = "2006-01"

// MonthStart returns the start of t's calendar month in UTC.
func MonthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// ParseMonth parses a billing month such as "2026-03" into the start of
// that month in UTC. Anything else — "2026-3", "2026-13", "03-2026",
// " 2026-03" — is EINVALID naming the field month.
func ParseMonth(s string) (time.Time, error) {
	bad := &apiwallet.Error{Code: apiwallet.EINVALID, Message: "the request has invalid fields",
		Fields: []apiwallet.FieldError{{Field: "month", Detail: "must be a month as YYYY-MM, such as 2026-03"}}}
	if len(s) != len(MonthLayout) {
		return time.Time{}, bad
	}
	t, err := time.Parse(MonthLayout, s)
	if err != nil {
		return time.Time{}, bad
	}
	return t.UTC(), nil
}
