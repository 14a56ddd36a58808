// Package analytics turns the usage rollup into the figures a workspace
// reads: calls and outcomes, latency percentiles, cost and savings by any
// grouping, the same for the previous period, key health and computed
// recommendations with the money at stake. It reads the rollup only
// (apiwallet.AnalyticsStore), never raw usage records, and sees the keys,
// tokens, members, services and plans through small interfaces.
//
// Savings are what the calls served by free keys would have cost on a
// paid key of the same service: the proxy records that price with each
// call (Usage.SavedMicros, the catalog's per-call price, which every paid
// key of a service shares), so the savings of any group are the sum of
// its records' SavedMicros, and savings percent is saved / (cost + saved).
package analytics
