package sqldb

import (
	"database/sql"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

func openPostgres(dsn string) (*DB, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(25)
	db.SetMaxIdleConns(25)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(30 * time.Minute)
	return &DB{
		db:  db,
		Now: time.Now,
		dialect: dialect{
			name:  "postgres",
			goose: goose.DialectPostgres,
			sessionLck: func() (goose.ProviderOption, error) {
				l, err := lock.NewPostgresSessionLocker()
				if err != nil {
					return nil, err
				}
				return goose.WithSessionLocker(l), nil
			},
			isUnique: func(err error) bool {
				var e *pgconn.PgError
				return errors.As(err, &e) && e.Code == "23505"
			},
		},
	}, nil
}
