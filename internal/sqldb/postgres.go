package sqldb

import (
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib" // also registers the "pgx" driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

func openPostgres(dsn string) (*DB, error) { return openPostgresWith(dsn, nil) }

// openPostgresWith opens dsn with extra run-time parameters set on every
// session.
func openPostgresWith(dsn string, params map[string]string) (*DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	for k, v := range params {
		cfg.RuntimeParams[k] = v
	}
	db := stdlib.OpenDB(*cfg)
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
