package sqldb

import (
	"context"
	"database/sql"
	"strings"

	"github.com/apikeywallet/apiwallet"
)

var (
	_ apiwallet.UserStore      = (*DB)(nil)
	_ apiwallet.WorkspaceStore = (*DB)(nil)
)

const userColumns = `id, email, name, password_hash, role, token_version, disabled,
	personal_workspace_id, created_at, updated_at`

type scanner interface{ Scan(...any) error }

func scanUser(s scanner) (*apiwallet.User, error) {
	var (
		u                apiwallet.User
		created, updated int64
	)
	if err := s.Scan(&u.ID, &u.Email, &u.Name, &u.PasswordHash, &u.Role, &u.TokenVersion,
		&u.Disabled, &u.PersonalWorkspaceID, &created, &updated); err != nil {
		return nil, err
	}
	u.CreatedAt, u.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &u, nil
}

// CreateUser implements apiwallet.UserStore.
func (db *DB) CreateUser(ctx context.Context, u *apiwallet.User, ws *apiwallet.Workspace, ev *apiwallet.AuditEvent) (err error) {
	defer apiwallet.Wrap(&err, "CreateUser")
	now := db.now()
	u.Email = strings.ToLower(u.Email)
	if u.ID == "" {
		u.ID = apiwallet.NewID("usr")
	}
	if ws.ID == "" {
		ws.ID = apiwallet.NewID("ws")
	}
	if ws.Plan == "" {
		ws.Plan = "free"
	}
	ws.Personal = true
	u.PersonalWorkspaceID = ws.ID
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO workspaces (id, name, personal, plan, created_at)
			VALUES ($1, $2, $3, $4, $5)`, ws.ID, ws.Name, true, ws.Plan, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO users (`+userColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			u.ID, u.Email, u.Name, u.PasswordHash, u.Role, u.TokenVersion, u.Disabled,
			u.PersonalWorkspaceID, now, now); err != nil {
			if db.dialect.isUnique(err) {
				return apiwallet.Errorf(apiwallet.ECONFLICT, "an account with this email already exists")
			}
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO memberships (workspace_id, user_id, role, created_at)
			VALUES ($1, $2, $3, $4)`, ws.ID, u.ID, apiwallet.WorkspaceOwner, now)
		if err != nil {
			return err
		}
		if ev != nil {
			if ev.ActorType == apiwallet.ActorUser && ev.ActorID == "" {
				ev.ActorID = u.ID
			}
			ev.WorkspaceID, ev.TargetType, ev.TargetID = ws.ID, "user", u.ID
		}
		return db.appendAudit(ctx, tx, ev)
	})
	if err != nil {
		return err
	}
	u.CreatedAt, u.UpdatedAt = fromMicros(now), fromMicros(now)
	ws.CreatedAt = fromMicros(now)
	return nil
}

// FindUserByID implements apiwallet.UserStore.
func (db *DB) FindUserByID(ctx context.Context, id string) (*apiwallet.User, error) {
	u, err := scanUser(db.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	return u, notFound(err, "user")
}

// FindUserByEmail implements apiwallet.UserStore.
func (db *DB) FindUserByEmail(ctx context.Context, email string) (*apiwallet.User, error) {
	u, err := scanUser(db.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE email = $1`,
		strings.ToLower(email)))
	return u, notFound(err, "user")
}

// FindUsers implements apiwallet.UserStore.
func (db *DB) FindUsers(ctx context.Context, f apiwallet.UserFilter) (_ []*apiwallet.User, err error) {
	defer apiwallet.Wrap(&err, "FindUsers")
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	rows, err := db.db.QueryContext(ctx, `SELECT `+userColumns+` FROM users
		WHERE id > $1 AND ($2 = '' OR email = $2) ORDER BY id LIMIT $3`,
		f.After, strings.ToLower(f.Email), f.Limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var users []*apiwallet.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		users = append(users, u)
	}
	return users, rows.Err()
}

// UpdateUser implements apiwallet.UserStore.
func (db *DB) UpdateUser(ctx context.Context, id string, upd apiwallet.UserUpdate, ev *apiwallet.AuditEvent) (u *apiwallet.User, err error) {
	defer apiwallet.Wrap(&err, "UpdateUser")
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if u, err = db.updateUser(ctx, tx, id, upd); err != nil {
			return err
		}
		return db.appendAudit(ctx, tx, ev)
	})
	return u, err
}

// updateUser applies upd to user id inside tx; UpdateUser and
// UpdateUserAsAdmin share it.
func (db *DB) updateUser(ctx context.Context, tx *sql.Tx, id string, upd apiwallet.UserUpdate) (*apiwallet.User, error) {
	cur, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if err != nil {
		return nil, notFound(err, "user")
	}
	revoke := false
	if upd.Name != nil {
		cur.Name = *upd.Name
	}
	if upd.Role != nil && *upd.Role != cur.Role {
		cur.Role, revoke = *upd.Role, true
	}
	if upd.PasswordHash != nil {
		cur.PasswordHash, revoke = *upd.PasswordHash, true
	}
	if upd.Disabled != nil && *upd.Disabled != cur.Disabled {
		cur.Disabled, revoke = *upd.Disabled, true
	}
	if revoke {
		cur.TokenVersion++
		// The proxy may hold callers authenticated with the login tokens
		// this revokes. Its callers' events cannot tell: the admin service
		// builds them from a read made before this transaction, so a
		// change that lands in between is applied here with no event.
		db.markChanged(tx)
	}
	cur.UpdatedAt = fromMicros(db.now())
	_, err = tx.ExecContext(ctx, `UPDATE users SET name = $1, role = $2, password_hash = $3,
		disabled = $4, token_version = $5, updated_at = $6 WHERE id = $7`,
		cur.Name, cur.Role, cur.PasswordHash, cur.Disabled, cur.TokenVersion, micros(cur.UpdatedAt), id)
	if err != nil {
		return nil, err
	}
	return cur, nil
}

// RevokeUserTokens implements apiwallet.UserStore.
func (db *DB) RevokeUserTokens(ctx context.Context, id string, ev *apiwallet.AuditEvent) (err error) {
	defer apiwallet.Wrap(&err, "RevokeUserTokens")
	return db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET token_version = token_version + 1,
			updated_at = $1 WHERE id = $2`, db.now(), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return apiwallet.Errorf(apiwallet.ENOTFOUND, "user not found")
		}
		return db.appendAudit(ctx, tx, ev)
	})
}

// FindMemberships implements apiwallet.WorkspaceStore.
func (db *DB) FindMemberships(ctx context.Context, userID string) (_ []*apiwallet.Membership, err error) {
	defer apiwallet.Wrap(&err, "FindMemberships")
	rows, err := db.db.QueryContext(ctx, `SELECT w.id, w.name, w.personal, w.plan, w.created_at,
			m.role, m.created_at
		FROM memberships m JOIN workspaces w ON w.id = m.workspace_id
		WHERE m.user_id = $1 ORDER BY w.personal DESC, w.id`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ms []*apiwallet.Membership
	for rows.Next() {
		m, err := scanMembership(rows, userID)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, rows.Err()
}

// FindMembership implements apiwallet.WorkspaceStore.
func (db *DB) FindMembership(ctx context.Context, workspaceID, userID string) (*apiwallet.Membership, error) {
	m, err := scanMembership(db.db.QueryRowContext(ctx, `SELECT w.id, w.name, w.personal, w.plan,
			w.created_at, m.role, m.created_at
		FROM memberships m JOIN workspaces w ON w.id = m.workspace_id
		WHERE m.workspace_id = $1 AND m.user_id = $2`, workspaceID, userID), userID)
	return m, notFound(err, "workspace")
}

func scanMembership(s scanner, userID string) (*apiwallet.Membership, error) {
	var (
		w              apiwallet.Workspace
		m              = apiwallet.Membership{Workspace: &w, UserID: userID}
		wsAt, memberAt int64
	)
	if err := s.Scan(&w.ID, &w.Name, &w.Personal, &w.Plan, &wsAt, &m.Role, &memberAt); err != nil {
		return nil, err
	}
	w.CreatedAt, m.CreatedAt = fromMicros(wsAt), fromMicros(memberAt)
	return &m, nil
}
