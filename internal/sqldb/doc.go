// Package sqldb stores the wallet's state in a SQL database: SQLite
// (modernc.org/sqlite, pure Go) as the embedded default and PostgreSQL
// (jackc/pgx) when DATABASE_URL names one.
//
// Both backends share every query: placeholders are $N, which both accept,
// and times are BIGINT microseconds since the epoch. What differs — the
// driver, connection settings, migrations and how a unique violation is
// reported — lives in sqlite.go and postgres.go. The conformance suite in
// internal/storetest runs against both.
package sqldb
