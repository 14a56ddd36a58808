package sqldb

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/apikeywallet/apiwallet"
)

//go:embed migrations
var migrations embed.FS

// dialect is what differs between the two backends.
type dialect struct {
	name       string // "sqlite" or "postgres"
	goose      goose.Dialect
	sessionLck func() (goose.ProviderOption, error)
	// isUnique reports whether err is a unique-constraint violation.
	isUnique func(error) bool
}

// DB is a handle to the wallet's database.
type DB struct {
	db      *sql.DB
	dialect dialect
	// Now returns the current time; tests replace it.
	Now func() time.Time
	// OnCommit, if set, is called after every committed transaction that
	// changed wallet state: the proxy's caches are invalidated from it.
	// Every such change writes an audit event, so the audit log is the
	// change feed: a transaction that appended an event other than a
	// routine one (quietActions) counts as a change. Writes whose event
	// may be missing mark the change themselves (markChanged);
	// invalidation_test.go checks every write method either way.
	OnCommit func()

	changedMu sync.Mutex
	changed   map[*sql.Tx]bool
}

// quietActions are audit actions that change nothing the proxy caches.
var quietActions = map[string]bool{
	"key.use": true, "key.read": true, "auth.login": true,
}

// markChanged records that tx changed wallet state.
func (db *DB) markChanged(tx *sql.Tx) {
	db.changedMu.Lock()
	if db.changed == nil {
		db.changed = map[*sql.Tx]bool{}
	}
	db.changed[tx] = true
	db.changedMu.Unlock()
}

// takeChanged reports whether tx changed wallet state and forgets it.
func (db *DB) takeChanged(tx *sql.Tx) bool {
	db.changedMu.Lock()
	defer db.changedMu.Unlock()
	c := db.changed[tx]
	delete(db.changed, tx)
	return c
}

// Open connects to the database named by dsn: a postgres:// or
// postgresql:// URL selects PostgreSQL, anything else is a SQLite file path
// (an empty dsn means dataDir/apiwallet.db).
func Open(ctx context.Context, dsn, dataDir string) (*DB, error) {
	var (
		db  *DB
		err error
	)
	if IsPostgresURL(dsn) {
		db, err = openPostgres(dsn)
	} else {
		db, err = openSQLite(dsn, dataDir)
	}
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.db.PingContext(pctx); err != nil {
		db.db.Close()
		return nil, fmt.Errorf("connect to %s: %w", db.dialect.name, err)
	}
	return db, nil
}

// OpenReadReplica connects to a PostgreSQL read replica (a hot standby of
// the database Open connects to) for reads that may lag the primary: the
// usage analytics. Its sessions are read-only (default_transaction_read_only),
// so a replica URL that names a primary by mistake still writes nothing.
// Never migrate it: migrations reach it through replication.
func OpenReadReplica(ctx context.Context, dsn string) (*DB, error) {
	if !IsPostgresURL(dsn) {
		return nil, errors.New("a read replica must be a postgres:// or postgresql:// URL")
	}
	db, err := openPostgresWith(dsn, map[string]string{"default_transaction_read_only": "on"})
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.db.PingContext(pctx); err != nil {
		db.db.Close()
		return nil, fmt.Errorf("connect to the postgres read replica: %w", err)
	}
	return db, nil
}

// IsPostgresURL reports whether dsn selects the PostgreSQL backend.
func IsPostgresURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Dialect names the backend: "sqlite" or "postgres".
func (db *DB) Dialect() string { return db.dialect.name }

// SQL exposes the underlying handle for operator commands and tests.
func (db *DB) SQL() *sql.DB { return db.db }

// Close closes the database.
func (db *DB) Close() error { return db.db.Close() }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.db.PingContext(ctx) }

// Migrate applies every pending migration. On PostgreSQL it holds a session
// advisory lock so that instances starting together migrate once.
func (db *DB) Migrate(ctx context.Context, log *slog.Logger) error {
	p, err := db.migrationProvider()
	if err != nil {
		return err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, r := range results {
		log.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "duration_ms", r.Duration.Milliseconds())
	}
	return nil
}

// now returns the current time in microseconds, the unit every time column
// uses.
func (db *DB) now() int64 { return db.Now().UTC().UnixMicro() }

func micros(t time.Time) int64 { return t.UTC().UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// nullMicros maps a zero time to NULL.
func nullMicros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: micros(t), Valid: true}
}

func fromNullMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromMicros(n.Int64)
}

// tx runs fn in a transaction, committing if it returns nil, and calls
// OnCommit if it changed wallet state.
func (db *DB) tx(ctx context.Context, fn func(*sql.Tx) error) error { return db.runTx(ctx, true, fn) }

// runTx is tx; notify false leaves OnCommit out (quietTx). A panic in fn
// rolls the transaction back before it goes on up: an open transaction
// would keep its connection and its locks (on SQLite the database's one
// write lock) until its context ended.
func (db *DB) runTx(ctx context.Context, notify bool, fn func(*sql.Tx) error) (err error) {
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		changed := db.takeChanged(tx)
		if !committed {
			_ = tx.Rollback()
			return
		}
		if err == nil && changed && notify && db.OnCommit != nil {
			db.OnCommit()
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	committed = true
	return tx.Commit()
}

// notFound turns sql.ErrNoRows into ENOTFOUND with the given message.
func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return apiwallet.Errorf(apiwallet.ENOTFOUND, "%s not found", what)
	}
	return err
}
