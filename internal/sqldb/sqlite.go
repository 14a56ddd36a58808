package sqldb

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqlitePragmas make the embedded database safe for a concurrent server:
// WAL lets readers run beside the writer, busy_timeout waits for the write
// lock instead of failing, and _txlock=immediate takes that lock at BEGIN so
// two transactions never deadlock upgrading from read to write.
const sqlitePragmas = "_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)" +
	"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"

// sqliteFile is the database file dsn names (dataDir/apiwallet.db when
// dsn is empty).
func sqliteFile(dsn, dataDir string) string {
	path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite://"), "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path == "" {
		if dataDir == "" {
			dataDir = "data"
		}
		path = filepath.Join(dataDir, "apiwallet.db")
	}
	return path
}

func openSQLite(dsn, dataDir string) (*DB, error) {
	path := sqliteFile(dsn, dataDir)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}
	// The file holds sealed keys and hashed tokens: readable by its owner
	// only. SQLite gives its -wal and -shm files the same mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open database file: %w", err)
	}
	f.Close()
	db, err := sql.Open("sqlite", "file:"+path+"?"+sqlitePragmas)
	if err != nil {
		return nil, err
	}
	// One writer at a time is SQLite's model; a small pool serves readers.
	db.SetMaxOpenConns(8)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return &DB{
		db:  db,
		Now: time.Now,
		dialect: dialect{
			name:  "sqlite",
			goose: goose.DialectSQLite3,
			isUnique: func(err error) bool {
				var e *sqlite.Error
				if !errors.As(err, &e) {
					return false
				}
				return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
			},
		},
	}, nil
}
