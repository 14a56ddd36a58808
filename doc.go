// Package apiwallet holds the domain vocabulary of API Key Wallet: the types
// every other package speaks of, the small storage interfaces the domain
// packages depend on, and the error codes that cross package boundaries.
//
// It imports only the standard library. Concrete storage lives in
// internal/sqldb, HTTP in internal/api, and cmd/apiwallet wires them.
package apiwallet
