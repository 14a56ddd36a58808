package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/apikeywallet/apiwallet"
)

var _ apiwallet.KeyStore = (*DB)(nil)

const keyColumns = `id, workspace_id, service, tier, meta_type, meta_quota, meta_description, label,
	priority, enabled, status, sealed, fingerprint, masked, version, created_by,
	created_at, updated_at, last_used_at, rotated_at`

func scanKey(s scanner) (*apiwallet.Key, error) {
	var (
		k                 apiwallet.Key
		quota             sql.NullInt64
		created, updated  int64
		lastUsed, rotated sql.NullInt64
	)
	if err := s.Scan(&k.ID, &k.WorkspaceID, &k.Service, &k.Tier, &k.Metadata.Type, &quota,
		&k.Metadata.Description, &k.Label, &k.Priority, &k.Enabled, &k.Status, &k.Sealed,
		&k.Fingerprint, &k.Masked, &k.Version, &k.CreatedBy, &created, &updated, &lastUsed, &rotated); err != nil {
		return nil, err
	}
	if quota.Valid {
		q := quota.Int64
		k.Metadata.Quota = &q
	}
	k.CreatedAt, k.UpdatedAt = fromMicros(created), fromMicros(updated)
	k.LastUsedAt, k.RotatedAt = fromNullMicros(lastUsed), fromNullMicros(rotated)
	return &k, nil
}

func nullQuota(q *int64) sql.NullInt64 {
	if q == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: *q, Valid: true}
}

// keyAudit fills the target of a key event and the details every key event
// carries. Nothing here is secret: the masked form is left out too.
func keyAudit(ev *apiwallet.AuditEvent, k *apiwallet.Key) {
	if ev == nil {
		return
	}
	ev.WorkspaceID, ev.TargetType, ev.TargetID = k.WorkspaceID, "key", k.ID
	if ev.Details == nil {
		ev.Details = map[string]string{}
	}
	ev.Details["service"] = k.Service
	ev.Details["tier"] = string(k.Tier)
}

// duplicateKey is the conflict for a secret the workspace already holds.
// It names the key holding it: the caller may see that key anyway.
func duplicateKey(id string) error {
	if id == "" {
		return apiwallet.Errorf(apiwallet.ECONFLICT, "this secret is already stored in this workspace")
	}
	return apiwallet.Errorf(apiwallet.ECONFLICT, "this secret is already stored in this workspace as key %s", id)
}

// keyByFingerprint returns the ID of the workspace's key with fingerprint,
// or "" if there is none.
func keyByFingerprint(ctx context.Context, tx *sql.Tx, workspaceID, fingerprint string) (string, error) {
	var id string
	err := tx.QueryRowContext(ctx, `SELECT id FROM api_keys WHERE workspace_id = $1 AND fingerprint = $2`,
		workspaceID, fingerprint).Scan(&id)
	if err == sql.ErrNoRows {
		return "", nil
	}
	return id, err
}

// CreateKey implements apiwallet.KeyStore.
func (db *DB) CreateKey(ctx context.Context, k *apiwallet.Key, limit int, ev *apiwallet.AuditEvent) (err error) {
	defer apiwallet.Wrap(&err, "CreateKey")
	if k.ID == "" || k.WorkspaceID == "" {
		return fmt.Errorf("key id and workspace id are required")
	}
	now := db.now()
	if k.Status == "" {
		k.Status = apiwallet.KeyActive
	}
	if k.Version == 0 {
		k.Version = 1
	}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if err := db.belowLimit(ctx, tx, k.WorkspaceID, "key_count", limit, "keys"); err != nil {
			return err
		}
		// Checked first only to name the holder; the unique index is what
		// guarantees it against a concurrent insert.
		if id, err := keyByFingerprint(ctx, tx, k.WorkspaceID, k.Fingerprint); err != nil {
			return err
		} else if id != "" {
			return duplicateKey(id)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO api_keys (`+keyColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`,
			k.ID, k.WorkspaceID, k.Service, k.Tier, k.Metadata.Type, nullQuota(k.Metadata.Quota),
			k.Metadata.Description, k.Label, k.Priority, k.Enabled, k.Status, k.Sealed, k.Fingerprint,
			k.Masked, k.Version, k.CreatedBy, now, now, nullMicros(k.LastUsedAt), nullMicros(k.RotatedAt))
		if err != nil {
			if db.dialect.isUnique(err) {
				return duplicateKey("")
			}
			return err
		}
		keyAudit(ev, k)
		return db.appendAudit(ctx, tx, ev)
	})
	if err != nil {
		return err
	}
	k.CreatedAt, k.UpdatedAt = fromMicros(now), fromMicros(now)
	return nil
}

func findKey(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, workspaceID, id string) (*apiwallet.Key, error) {
	k, err := scanKey(q.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM api_keys
		WHERE workspace_id = $1 AND id = $2`, workspaceID, id))
	return k, notFound(err, "key")
}

// FindKeyByID implements apiwallet.KeyStore.
func (db *DB) FindKeyByID(ctx context.Context, workspaceID, id string) (*apiwallet.Key, error) {
	return findKey(ctx, db.db, workspaceID, id)
}

// ReadKey implements apiwallet.KeyStore.
func (db *DB) ReadKey(ctx context.Context, workspaceID, id string, ev *apiwallet.AuditEvent) (k *apiwallet.Key, err error) {
	defer apiwallet.Wrap(&err, "ReadKey")
	err = db.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if k, err = findKey(ctx, tx, workspaceID, id); err != nil {
			return err
		}
		keyAudit(ev, k)
		return db.appendAudit(ctx, tx, ev)
	})
	return k, err
}

// FindKeys implements apiwallet.KeyStore.
func (db *DB) FindKeys(ctx context.Context, f apiwallet.KeyFilter) (_ []*apiwallet.Key, err error) {
	defer apiwallet.Wrap(&err, "FindKeys")
	if f.WorkspaceID == "" {
		return nil, fmt.Errorf("a workspace id is required")
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	var w filter
	w.where("workspace_id = %s", f.WorkspaceID)
	if f.Service != "" {
		w.where("service = %s", f.Service)
	}
	if f.Tier != "" {
		w.where("tier = %s", string(f.Tier))
	}
	if f.Enabled != nil {
		w.where("enabled = %s", *f.Enabled)
	}
	if f.After != "" {
		w.where("id > %s", f.After)
	}
	q := `SELECT ` + keyColumns + ` FROM api_keys` + w.clause() + ` ORDER BY id LIMIT ` + w.arg(f.Limit)
	args := w.args
	rows, err := db.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys []*apiwallet.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// UpdateKey implements apiwallet.KeyStore.
func (db *DB) UpdateKey(ctx context.Context, workspaceID, id string, upd apiwallet.KeyUpdate, ev *apiwallet.AuditEvent) (k *apiwallet.Key, err error) {
	defer apiwallet.Wrap(&err, "UpdateKey")
	err = db.tx(ctx, func(tx *sql.Tx) error {
		cur, err := findKey(ctx, tx, workspaceID, id)
		if err != nil {
			return err
		}
		if upd.Tier != nil {
			cur.Tier = *upd.Tier
		}
		if upd.Metadata != nil {
			cur.Metadata = *upd.Metadata
		}
		if upd.Enabled != nil {
			cur.Enabled = *upd.Enabled
		}
		if upd.Priority != nil {
			cur.Priority = *upd.Priority
		}
		if upd.Label != nil {
			cur.Label = *upd.Label
		}
		cur.UpdatedAt = fromMicros(db.now())
		if _, err := tx.ExecContext(ctx, `UPDATE api_keys SET tier = $1, meta_type = $2, meta_quota = $3,
				meta_description = $4, label = $5, priority = $6, enabled = $7, updated_at = $8
			WHERE workspace_id = $9 AND id = $10`,
			cur.Tier, cur.Metadata.Type, nullQuota(cur.Metadata.Quota), cur.Metadata.Description, cur.Label,
			cur.Priority, cur.Enabled, micros(cur.UpdatedAt), workspaceID, id); err != nil {
			return err
		}
		k = cur
		keyAudit(ev, cur)
		if ev != nil {
			ev.Details["fields"] = strings.Join(upd.Fields(), ",")
		}
		return db.appendAudit(ctx, tx, ev)
	})
	return k, err
}

// RotateKey implements apiwallet.KeyStore.
func (db *DB) RotateKey(ctx context.Context, workspaceID, id string, rot apiwallet.KeyRotation, ev *apiwallet.AuditEvent) (k *apiwallet.Key, err error) {
	defer apiwallet.Wrap(&err, "RotateKey")
	err = db.tx(ctx, func(tx *sql.Tx) error {
		cur, err := findKey(ctx, tx, workspaceID, id)
		if err != nil {
			return err
		}
		if holder, err := keyByFingerprint(ctx, tx, workspaceID, rot.Fingerprint); err != nil {
			return err
		} else if holder == id {
			return apiwallet.Errorf(apiwallet.ECONFLICT, "the new secret is the key's current one; rotating needs a different secret")
		} else if holder != "" {
			return duplicateKey(holder)
		}
		now := db.now()
		if _, err := tx.ExecContext(ctx, `UPDATE api_keys SET sealed = $1, fingerprint = $2, masked = $3,
				version = version + 1, status = $4, rotated_at = $5, updated_at = $5
			WHERE workspace_id = $6 AND id = $7`,
			rot.Sealed, rot.Fingerprint, rot.Masked, apiwallet.KeyActive, now, workspaceID, id); err != nil {
			if db.dialect.isUnique(err) {
				return duplicateKey("")
			}
			return err
		}
		cur.Sealed, cur.Fingerprint, cur.Masked, cur.Status = rot.Sealed, rot.Fingerprint, rot.Masked, apiwallet.KeyActive
		cur.Version++
		cur.RotatedAt, cur.UpdatedAt = fromMicros(now), fromMicros(now)
		k = cur
		keyAudit(ev, cur)
		if ev != nil {
			ev.Details["version"] = fmt.Sprint(cur.Version)
		}
		return db.appendAudit(ctx, tx, ev)
	})
	return k, err
}

// DeleteKey implements apiwallet.KeyStore.
func (db *DB) DeleteKey(ctx context.Context, workspaceID, id string, ev *apiwallet.AuditEvent) (err error) {
	defer apiwallet.Wrap(&err, "DeleteKey")
	return db.tx(ctx, func(tx *sql.Tx) error {
		cur, err := findKey(ctx, tx, workspaceID, id)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM api_keys WHERE workspace_id = $1 AND id = $2`, workspaceID, id); err != nil {
			return err
		}
		keyAudit(ev, cur)
		return db.appendAudit(ctx, tx, ev)
	})
}

// TouchKey implements apiwallet.KeyStore.
func (db *DB) TouchKey(ctx context.Context, workspaceID, id string, at time.Time) (err error) {
	defer apiwallet.Wrap(&err, "TouchKey")
	res, err := db.db.ExecContext(ctx, `UPDATE api_keys SET last_used_at = $1
		WHERE workspace_id = $2 AND id = $3 AND (last_used_at IS NULL OR last_used_at < $1)`,
		micros(at), workspaceID, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	// Nothing moved: either the key is missing or it was used later.
	_, err = findKey(ctx, db.db, workspaceID, id)
	return err
}

// KeySetVersion implements apiwallet.KeyStore. Triggers on api_keys keep
// the count (see migration 00011).
func (db *DB) KeySetVersion(ctx context.Context, workspaceID, service string) (v int64, err error) {
	defer apiwallet.Wrap(&err, "KeySetVersion")
	err = db.db.QueryRowContext(ctx, `SELECT version FROM api_key_sets WHERE workspace_id = $1 AND service = $2`,
		workspaceID, service).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

func scanDataKey(s scanner) (*apiwallet.DataKey, error) {
	var (
		dk      apiwallet.DataKey
		created int64
	)
	if err := s.Scan(&dk.WorkspaceID, &dk.Wrapped, &dk.RootVersion, &created); err != nil {
		return nil, err
	}
	dk.CreatedAt = fromMicros(created)
	return &dk, nil
}

const dataKeyColumns = `workspace_id, wrapped, root_version, created_at`

// FindDataKey implements apiwallet.KeyStore.
func (db *DB) FindDataKey(ctx context.Context, workspaceID string) (*apiwallet.DataKey, error) {
	dk, err := scanDataKey(db.db.QueryRowContext(ctx, `SELECT `+dataKeyColumns+` FROM data_keys
		WHERE workspace_id = $1`, workspaceID))
	return dk, notFound(err, "data key")
}

// forShare locks the rows a query reads against a concurrent UPDATE until
// the transaction ends. SQLite needs no such clause: its write transactions
// (BEGIN IMMEDIATE) run one at a time.
func (db *DB) forShare() string {
	if db.dialect.name == "postgres" {
		return " FOR SHARE"
	}
	return ""
}

// belowLimit refuses with LimitReached when the workspace's count (a column
// of workspaces that triggers keep, see migration 00013) is at limit; a
// limit of 0 or less means none. It reads the count with the row lock
// lockWorkspace takes (a no-op UPDATE, the same on both dialects), so a
// concurrent creation in the workspace waits for this transaction and then
// reads the count it leaves.
func (db *DB) belowLimit(ctx context.Context, tx *sql.Tx, workspaceID, column string, limit int, what string) error {
	if limit <= 0 {
		return nil
	}
	var n int64
	err := tx.QueryRowContext(ctx, `UPDATE workspaces SET plan = plan WHERE id = $1 RETURNING `+column, workspaceID).Scan(&n)
	if err != nil {
		return notFound(err, "workspace")
	}
	if n >= int64(limit) {
		return apiwallet.LimitReached(what, limit)
	}
	return nil
}

// CreateDataKey implements apiwallet.KeyStore.
//
// It holds a share lock on the vault_root row, which RotateRootKey updates
// first: a rotation therefore waits for data keys being created, and sees
// them when it reads every data key, while a creation that starts during a
// rotation waits for it to commit and then finds the new version, so it
// never stores a data key wrapped under a root that was just retired.
func (db *DB) CreateDataKey(ctx context.Context, dk *apiwallet.DataKey) (out *apiwallet.DataKey, err error) {
	defer apiwallet.Wrap(&err, "CreateDataKey(%s)", dk.WorkspaceID)
	err = db.tx(ctx, func(tx *sql.Tx) error {
		var current int
		err := tx.QueryRowContext(ctx, `SELECT version FROM vault_root WHERE id = 1`+db.forShare()).Scan(&current)
		if err != nil {
			return notFound(err, "root key record")
		}
		if current != dk.RootVersion {
			return fmt.Errorf("data key wrapped under root key version %d but the database is at version %d: "+
				"the master key was rotated; restart this instance with the new ENCRYPTION_KEY", dk.RootVersion, current)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO data_keys (workspace_id, wrapped, root_version, created_at)
			VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id) DO NOTHING`,
			dk.WorkspaceID, dk.Wrapped, dk.RootVersion, db.now()); err != nil {
			return err
		}
		out, err = scanDataKey(tx.QueryRowContext(ctx, `SELECT `+dataKeyColumns+` FROM data_keys
			WHERE workspace_id = $1`, dk.WorkspaceID))
		return err
	})
	return out, err
}

// DestroyDataKey implements apiwallet.KeyStore.
func (db *DB) DestroyDataKey(ctx context.Context, workspaceID string, ev *apiwallet.AuditEvent) (err error) {
	defer apiwallet.Wrap(&err, "DestroyDataKey(%s)", workspaceID)
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := db.destroyDataKey(ctx, tx, workspaceID); err != nil {
			return err
		}
		return db.appendAudit(ctx, tx, ev)
	})
}

// destroyDataKey crypto-shreds a workspace inside tx: its data key goes, and
// with it every secret sealed under it, in backups too; its key rows go as
// well since they can no longer be opened. Account erasure calls it in its
// own transaction.
func (db *DB) destroyDataKey(ctx context.Context, tx *sql.Tx, workspaceID string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM api_keys WHERE workspace_id = $1`, workspaceID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM data_keys WHERE workspace_id = $1`, workspaceID); err != nil {
		return err
	}
	// The proxy's cached plaintexts must go with the data key, whatever
	// event (nil included) vault.Service.DestroyWorkspace was given.
	db.markChanged(tx)
	return nil
}

func scanRootKey(s scanner) (*apiwallet.RootKey, error) {
	var (
		rk      apiwallet.RootKey
		created int64
		rotated sql.NullInt64
	)
	if err := s.Scan(&rk.Version, &rk.Check, &created, &rotated); err != nil {
		return nil, err
	}
	rk.CreatedAt, rk.RotatedAt = fromMicros(created), fromNullMicros(rotated)
	return &rk, nil
}

const rootKeyQuery = `SELECT version, check_key, created_at, rotated_at FROM vault_root WHERE id = 1`

// FindRootKey implements apiwallet.KeyStore.
func (db *DB) FindRootKey(ctx context.Context) (*apiwallet.RootKey, error) {
	rk, err := scanRootKey(db.db.QueryRowContext(ctx, rootKeyQuery))
	return rk, notFound(err, "root key record")
}

// InitRootKey implements apiwallet.KeyStore.
func (db *DB) InitRootKey(ctx context.Context, rk *apiwallet.RootKey) (out *apiwallet.RootKey, err error) {
	defer apiwallet.Wrap(&err, "InitRootKey")
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO vault_root (id, version, check_key, created_at)
			VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING`, rk.Version, rk.Check, db.now()); err != nil {
			return err
		}
		out, err = scanRootKey(tx.QueryRowContext(ctx, rootKeyQuery))
		return err
	})
	return out, err
}

// RotateRootKey implements apiwallet.KeyStore.
//
// The vault_root row is updated first. That waits for every data key being
// created (they hold a share lock on it, see CreateDataKey) and holds off
// new ones until the commit, so the data keys read next are all there are.
// Readers are not blocked: until the commit they see the old wrapped keys,
// which the old root still opens.
func (db *DB) RotateRootKey(ctx context.Context, from int, to *apiwallet.RootKey, rewrap func(*apiwallet.DataKey) ([]byte, error), ev *apiwallet.AuditEvent) (out *apiwallet.RootRotation, err error) {
	defer apiwallet.Wrap(&err, "RotateRootKey(%d to %d)", from, to.Version)
	err = db.tx(ctx, func(tx *sql.Tx) error {
		now := db.now()
		res, err := tx.ExecContext(ctx, `UPDATE vault_root SET version = $1, check_key = $2, rotated_at = $3
			WHERE id = 1 AND version = $4`, to.Version, to.Check, now, from)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return apiwallet.Errorf(apiwallet.ECONFLICT, "the root key is not at version %d (was it rotated already?)", from)
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+dataKeyColumns+` FROM data_keys ORDER BY workspace_id`)
		if err != nil {
			return err
		}
		var dks []*apiwallet.DataKey
		for rows.Next() {
			dk, err := scanDataKey(rows)
			if err != nil {
				rows.Close()
				return err
			}
			dks = append(dks, dk)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, `UPDATE data_keys SET wrapped = $1, root_version = $2, rewrapped_at = $3
			WHERE workspace_id = $4`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, dk := range dks {
			if dk.RootVersion != from {
				return fmt.Errorf("data key of workspace %s is at root version %d, not %d; nothing was changed", dk.WorkspaceID, dk.RootVersion, from)
			}
			wrapped, err := rewrap(dk)
			if err != nil {
				return err
			}
			if _, err := stmt.ExecContext(ctx, wrapped, to.Version, now, dk.WorkspaceID); err != nil {
				return err
			}
		}
		out = &apiwallet.RootRotation{FromVersion: from, ToVersion: to.Version, DataKeys: len(dks)}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_keys`).Scan(&out.Keys); err != nil {
			return err
		}
		if ev != nil {
			ev.TargetType, ev.TargetID = "root_key", fmt.Sprint(to.Version)
			if ev.Details == nil {
				ev.Details = map[string]string{}
			}
			ev.Details["from_version"] = fmt.Sprint(from)
			ev.Details["to_version"] = fmt.Sprint(to.Version)
			ev.Details["data_keys"] = fmt.Sprint(len(dks))
		}
		return db.appendAudit(ctx, tx, ev)
	})
	return out, err
}
