// Package billing turns plans and metered usage into what a workspace
// owes: its plan and quota for the month so far with a projection to the
// month's end, its monthly invoice, and the administrators' business
// report (MRR, ARPU, active workspaces, churn, plan mix).
//
// # Money
//
// Every amount is an int64 of micro-dollars (1_000_000 is $1), so that
// $0.0001 per call is exact: 23,456 overage calls at 100 micros are
// 2_345_600 micros, $2.3456. Products of quantities and prices are
// checked for overflow; Dollars formats an amount as a decimal string
// without floating point.
//
// # Periods
//
// A billing period is a calendar month in UTC, [first of the month, first
// of the next). Calls are counted from the hourly usage rollups
// (apiwallet.UsageStore.WorkspaceUsage), so reading a month never scans
// raw usage records. Every call a usage record exists for is counted,
// whatever its outcome; Usage.Premium marks the calls charged for premium
// routing.
//
// # Invoices
//
// An invoice is computed when asked for, not stored. Its plan is the plan
// the workspace was on at the end of the month (or now, for the current
// month), found from the recorded plan changes; its prices are the plan's
// prices now, and its analytics add-on is the workspace's setting now. An
// administrator who edits a price thus re-prices past months too: issue
// invoices to customers (Stripe) when a month closes.
//
// # Plans
//
// Plans are rows of the plans table, seeded with DESIGN.md's defaults and
// edited by administrators. DEFAULT_FREE_QUOTA replaces the free plan's
// included calls at run time (Options.FreeQuota) without touching the
// table. Paid plans bill calls beyond their included calls as overage;
// hard-stop plans (Free) never bill overage, because the proxy refuses
// those calls.
package billing
