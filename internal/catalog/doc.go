// Package catalog is the service catalog: the upstream APIs the wallet can
// proxy to, each with its base URL, how a stored key is injected into a
// request, the headers the upstream needs, what a call costs and how the
// service's own SDKs read an error body.
//
// The catalog is present from the first start without a seed step (New
// fills it with Defaults) and is edited by admins through Put and Delete.
// It has two layers: the admin layer, which Snapshot returns and Load
// restores so that the caller can persist it, and the environment layer
// (ApplyEnv, from <SERVICE>_BASE_URL), which points a service elsewhere
// without ever being saved. Get and List return the effective services,
// the admin layer with the environment applied.
//
// Lookups are on the proxy's hot path: every writer builds a new immutable
// map and swaps it in through an atomic pointer, so Get is one atomic load
// and one map lookup, with no lock.
package catalog
