package sqldb

import (
	"context"
	"database/sql"

	"github.com/apikeywallet/apiwallet"
)

var _ apiwallet.CatalogStore = (*DB)(nil)

// FindCatalog implements apiwallet.CatalogStore.
func (db *DB) FindCatalog(ctx context.Context) ([]byte, error) {
	var doc string
	err := db.db.QueryRowContext(ctx, `SELECT document FROM service_catalog WHERE id = 1`).Scan(&doc)
	if err != nil {
		return nil, notFound(err, "saved catalog")
	}
	return []byte(doc), nil
}

// SaveCatalog implements apiwallet.CatalogStore.
func (db *DB) SaveCatalog(ctx context.Context, doc []byte, ev *apiwallet.AuditEvent) (err error) {
	defer apiwallet.Wrap(&err, "SaveCatalog")
	return db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO service_catalog (id, document, updated_at) VALUES (1, $1, $2)
			ON CONFLICT (id) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at`,
			string(doc), db.now()); err != nil {
			return err
		}
		return db.appendAudit(ctx, tx, ev)
	})
}
