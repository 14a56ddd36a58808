package sqldb

import (
	"context"
	"database/sql"
)

// Tx runs fn in one of the store's transactions, for tests of the
// transaction helper itself.
func (db *DB) Tx(ctx context.Context, fn func(*sql.Tx) error) error { return db.tx(ctx, fn) }
