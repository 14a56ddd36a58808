package sqldb

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/apikeywallet/apiwallet"
)

var _ apiwallet.TokenStore = (*DB)(nil)

const tokenColumns = `id, workspace_id, name, services, created_by, last4, rate_limit_per_minute,
	created_at, expires_at, last_used_at, rotated_at, revoked_at`

func scanToken(s scanner) (*apiwallet.AccessToken, error) {
	var (
		t                           apiwallet.AccessToken
		services                    string
		created                     int64
		expires, used, rotated, rev sql.NullInt64
	)
	if err := s.Scan(&t.ID, &t.WorkspaceID, &t.Name, &services, &t.CreatedBy, &t.Last4, &t.RateLimitPerMinute,
		&created, &expires, &used, &rotated, &rev); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(services), &t.Services); err != nil {
		return nil, err
	}
	t.CreatedAt = fromMicros(created)
	t.ExpiresAt, t.LastUsedAt = fromNullMicros(expires), fromNullMicros(used)
	t.RotatedAt, t.RevokedAt = fromNullMicros(rotated), fromNullMicros(rev)
	return &t, nil
}

// CreateAccessToken implements apiwallet.TokenStore.
func (db *DB) CreateAccessToken(ctx context.Context, t *apiwallet.AccessToken, secretHash string, limit int, ev *apiwallet.AuditEvent) (err error) {
	defer apiwallet.Wrap(&err, "CreateAccessToken")
	if t.ID == "" {
		t.ID = apiwallet.NewID("tok")
	}
	if t.Services == nil {
		t.Services = []string{}
	}
	services, err := json.Marshal(t.Services)
	if err != nil {
		return err
	}
	now := db.now()
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if err := db.belowLimit(ctx, tx, t.WorkspaceID, "token_count", limit, "access tokens"); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO access_tokens (id, workspace_id, name, services,
				created_by, last4, rate_limit_per_minute, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			t.ID, t.WorkspaceID, t.Name, string(services), t.CreatedBy, t.Last4, t.RateLimitPerMinute,
			now, nullMicros(t.ExpiresAt)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO access_token_secrets (hash, token_id, created_at)
			VALUES ($1, $2, $3)`, secretHash, t.ID, now); err != nil {
			return err
		}
		if ev != nil {
			ev.TargetType, ev.TargetID = "token", t.ID
		}
		return db.appendAudit(ctx, tx, ev)
	})
	if err != nil {
		return err
	}
	t.CreatedAt = fromMicros(now)
	return nil
}

// FindAccessTokenByID implements apiwallet.TokenStore.
func (db *DB) FindAccessTokenByID(ctx context.Context, workspaceID, id string) (*apiwallet.AccessToken, error) {
	t, err := scanToken(db.db.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM access_tokens
		WHERE id = $1 AND workspace_id = $2`, id, workspaceID))
	return t, notFound(err, "token")
}

// FindAccessTokens implements apiwallet.TokenStore.
func (db *DB) FindAccessTokens(ctx context.Context, f apiwallet.AccessTokenFilter) (_ []*apiwallet.AccessToken, err error) {
	defer apiwallet.Wrap(&err, "FindAccessTokens")
	if f.WorkspaceID == "" && f.CreatedBy == "" {
		return nil, apiwallet.Errorf(apiwallet.EINVALID, "a token listing needs a workspace or a creator")
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	rows, err := db.db.QueryContext(ctx, `SELECT `+tokenColumns+` FROM access_tokens
		WHERE ($1 = '' OR workspace_id = $1) AND ($2 = '' OR created_by = $2) AND id > $3
		ORDER BY id LIMIT $4`, f.WorkspaceID, f.CreatedBy, f.After, f.Limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	toks := []*apiwallet.AccessToken{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
	}
	return toks, rows.Err()
}

// FindAccessTokenBySecretHash implements apiwallet.TokenStore.
func (db *DB) FindAccessTokenBySecretHash(ctx context.Context, hash string) (_ *apiwallet.AccessToken, _ *apiwallet.TokenSecret, err error) {
	defer apiwallet.Wrap(&err, "FindAccessTokenBySecretHash")
	var (
		sec     apiwallet.TokenSecret
		created int64
		expires sql.NullInt64
		tokenID string
	)
	err = db.db.QueryRowContext(ctx, `SELECT hash, token_id, created_at, expires_at
		FROM access_token_secrets WHERE hash = $1`, hash).Scan(&sec.Hash, &tokenID, &created, &expires)
	if err != nil {
		return nil, nil, notFound(err, "token")
	}
	sec.CreatedAt, sec.ExpiresAt = fromMicros(created), fromNullMicros(expires)
	t, err := scanToken(db.db.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM access_tokens WHERE id = $1`, tokenID))
	if err != nil {
		return nil, nil, notFound(err, "token")
	}
	return t, &sec, nil
}

// RevokeAccessToken implements apiwallet.TokenStore.
func (db *DB) RevokeAccessToken(ctx context.Context, workspaceID, id string, ev *apiwallet.AuditEvent) (t *apiwallet.AccessToken, err error) {
	defer apiwallet.Wrap(&err, "RevokeAccessToken")
	err = db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE access_tokens SET revoked_at = $1
			WHERE id = $2 AND workspace_id = $3 AND revoked_at IS NULL`, db.now(), id, workspaceID)
		if err != nil {
			return err
		}
		changed, err := res.RowsAffected()
		if err != nil {
			return err
		}
		t, err = scanToken(tx.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM access_tokens
			WHERE id = $1 AND workspace_id = $2`, id, workspaceID))
		if err != nil {
			return notFound(err, "token")
		}
		if changed == 0 {
			return nil // already revoked: nothing changed, nothing to record
		}
		return db.appendAudit(ctx, tx, ev)
	})
	return t, err
}

// RotateAccessToken implements apiwallet.TokenStore.
func (db *DB) RotateAccessToken(ctx context.Context, workspaceID, id, newHash, last4 string, graceUntil time.Time, ev *apiwallet.AuditEvent) (t *apiwallet.AccessToken, err error) {
	defer apiwallet.Wrap(&err, "RotateAccessToken")
	now := db.now()
	err = db.tx(ctx, func(tx *sql.Tx) error {
		t, err = scanToken(tx.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM access_tokens
			WHERE id = $1 AND workspace_id = $2`, id, workspaceID))
		if err != nil {
			return notFound(err, "token")
		}
		// The guard on revoked_at makes a revoke that commits between the
		// read above and this write win.
		res, err := tx.ExecContext(ctx, `UPDATE access_tokens SET last4 = $1, rotated_at = $2
			WHERE id = $3 AND revoked_at IS NULL`, last4, now, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 || t.Revoked() {
			return apiwallet.Errorf(apiwallet.ECONFLICT, "the token is revoked; create a new one instead")
		}
		// Secrets whose grace already ended go; the rest end at graceUntil
		// at the latest.
		if _, err := tx.ExecContext(ctx, `DELETE FROM access_token_secrets
			WHERE token_id = $1 AND expires_at IS NOT NULL AND expires_at <= $2`, id, now); err != nil {
			return err
		}
		until := micros(graceUntil)
		if _, err := tx.ExecContext(ctx, `UPDATE access_token_secrets SET expires_at = $1
			WHERE token_id = $2 AND (expires_at IS NULL OR expires_at > $1)`, until, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO access_token_secrets (hash, token_id, created_at)
			VALUES ($1, $2, $3)`, newHash, id, now); err != nil {
			return err
		}
		t.Last4, t.RotatedAt = last4, fromMicros(now)
		return db.appendAudit(ctx, tx, ev)
	})
	return t, err
}

// TouchAccessToken implements apiwallet.TokenStore.
func (db *DB) TouchAccessToken(ctx context.Context, id string, at time.Time) (err error) {
	defer apiwallet.Wrap(&err, "TouchAccessToken")
	_, err = db.db.ExecContext(ctx, `UPDATE access_tokens SET last_used_at = $1
		WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)`, micros(at), id)
	return err
}
