package sqldb

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/apikeywallet/apiwallet"
)

var _ apiwallet.TeamStore = (*DB)(nil)

// lockWorkspace takes the write lock on workspace id's row for the rest of
// tx and returns the workspace. Every change to a workspace's members goes
// through it first, so two of them never interleave: the owner count one
// reads cannot change before it commits (PostgreSQL re-reads after the
// lock; SQLite has one writer anyway). ENOTFOUND.
func lockWorkspace(ctx context.Context, tx *sql.Tx, id string) (*apiwallet.Workspace, error) {
	var (
		w  apiwallet.Workspace
		at int64
	)
	err := tx.QueryRowContext(ctx, `UPDATE workspaces SET plan = plan WHERE id = $1
		RETURNING id, name, personal, plan, created_at`, id).Scan(&w.ID, &w.Name, &w.Personal, &w.Plan, &at)
	if err != nil {
		return nil, notFound(err, "workspace")
	}
	w.CreatedAt = fromMicros(at)
	return &w, nil
}

// memberRole returns userID's role in workspaceID, or ENOTFOUND naming what.
func memberRole(ctx context.Context, tx *sql.Tx, workspaceID, userID, what string) (apiwallet.WorkspaceRole, error) {
	var role apiwallet.WorkspaceRole
	err := tx.QueryRowContext(ctx, `SELECT role FROM memberships WHERE workspace_id = $1 AND user_id = $2`,
		workspaceID, userID).Scan(&role)
	return role, notFound(err, what)
}

func countOwners(ctx context.Context, tx *sql.Tx, workspaceID string) (n int, err error) {
	err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM memberships WHERE workspace_id = $1 AND role = $2`,
		workspaceID, apiwallet.WorkspaceOwner).Scan(&n)
	return n, err
}

// isPersonalOwner reports whether workspaceID is userID's personal workspace.
func isPersonalOwner(ctx context.Context, tx *sql.Tx, workspaceID, userID string) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE id = $1 AND personal_workspace_id = $2`,
		userID, workspaceID).Scan(&n)
	return n > 0, err
}

// checkOwnerStays refuses a change that takes the owner role away from
// userID (target is its current role) when userID is the workspace's last
// owner or the user whose personal workspace it is.
func checkOwnerStays(ctx context.Context, tx *sql.Tx, ws *apiwallet.Workspace, userID string, target apiwallet.WorkspaceRole, doing string) error {
	if ws.Personal {
		personal, err := isPersonalOwner(ctx, tx, ws.ID, userID)
		if err != nil {
			return err
		}
		if personal {
			return apiwallet.Errorf(apiwallet.ECONFLICT, "a personal workspace's own user cannot be %s", doing)
		}
	}
	if target != apiwallet.WorkspaceOwner {
		return nil
	}
	n, err := countOwners(ctx, tx, ws.ID)
	if err != nil {
		return err
	}
	if n <= 1 {
		return apiwallet.Errorf(apiwallet.ECONFLICT, "the last owner of a workspace cannot be %s; make another member owner first", doing)
	}
	return nil
}

// CreateWorkspace implements apiwallet.TeamStore.
func (db *DB) CreateWorkspace(ctx context.Context, ws *apiwallet.Workspace, ownerID string, ev *apiwallet.AuditEvent) (err error) {
	defer apiwallet.Wrap(&err, "CreateWorkspace")
	now := db.now()
	if ws.ID == "" {
		ws.ID = apiwallet.NewID("ws")
	}
	if ws.Plan == "" {
		ws.Plan = apiwallet.PlanFree
	}
	ws.Personal = false
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO workspaces (id, name, personal, plan, created_at)
			VALUES ($1, $2, $3, $4, $5)`, ws.ID, ws.Name, false, ws.Plan, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO memberships (workspace_id, user_id, role, created_at)
			VALUES ($1, $2, $3, $4)`, ws.ID, ownerID, apiwallet.WorkspaceOwner, now); err != nil {
			return err
		}
		if ev != nil {
			ev.WorkspaceID, ev.TargetType, ev.TargetID = ws.ID, "workspace", ws.ID
		}
		return db.appendAudit(ctx, tx, ev)
	})
	if err != nil {
		return err
	}
	ws.CreatedAt = fromMicros(now)
	return nil
}

const memberColumns = `u.id, u.email, u.name, m.role, u.personal_workspace_id = m.workspace_id, m.created_at`

func scanMember(s scanner) (*apiwallet.Member, error) {
	var (
		m  apiwallet.Member
		at int64
	)
	if err := s.Scan(&m.UserID, &m.Email, &m.Name, &m.Role, &m.PersonalOwner, &at); err != nil {
		return nil, err
	}
	m.JoinedAt = fromMicros(at)
	return &m, nil
}

// FindMembers implements apiwallet.TeamStore.
func (db *DB) FindMembers(ctx context.Context, workspaceID string) (_ []*apiwallet.Member, err error) {
	defer apiwallet.Wrap(&err, "FindMembers")
	rows, err := db.db.QueryContext(ctx, `SELECT `+memberColumns+`
		FROM memberships m JOIN users u ON u.id = m.user_id
		WHERE m.workspace_id = $1
		ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 WHEN 'member' THEN 2 ELSE 3 END,
			m.created_at, u.id`, workspaceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ms []*apiwallet.Member
	for rows.Next() {
		m, err := scanMember(rows)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, rows.Err()
}

func findMember(ctx context.Context, tx *sql.Tx, workspaceID, userID string) (*apiwallet.Member, error) {
	m, err := scanMember(tx.QueryRowContext(ctx, `SELECT `+memberColumns+`
		FROM memberships m JOIN users u ON u.id = m.user_id
		WHERE m.workspace_id = $1 AND m.user_id = $2`, workspaceID, userID))
	return m, notFound(err, "member")
}

const invitationColumns = `id, workspace_id, email, role, token_hash, invited_by, created_at, expires_at,
	accepted_at, accepted_by`

func scanInvitation(s scanner) (*apiwallet.Invitation, error) {
	var (
		inv              apiwallet.Invitation
		created, expires int64
		accepted         sql.NullInt64
	)
	if err := s.Scan(&inv.ID, &inv.WorkspaceID, &inv.Email, &inv.Role, &inv.TokenHash, &inv.InvitedBy,
		&created, &expires, &accepted, &inv.AcceptedBy); err != nil {
		return nil, err
	}
	inv.CreatedAt, inv.ExpiresAt, inv.AcceptedAt = fromMicros(created), fromMicros(expires), fromNullMicros(accepted)
	return &inv, nil
}

// CreateInvitation implements apiwallet.TeamStore.
func (db *DB) CreateInvitation(ctx context.Context, inv *apiwallet.Invitation, ev *apiwallet.AuditEvent) (err error) {
	defer apiwallet.Wrap(&err, "CreateInvitation")
	now := db.now()
	if inv.ID == "" {
		inv.ID = apiwallet.NewID("inv")
	}
	inv.Email = strings.ToLower(inv.Email)
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := lockWorkspace(ctx, tx, inv.WorkspaceID); err != nil {
			return err
		}
		actor, err := memberRole(ctx, tx, inv.WorkspaceID, inv.InvitedBy, "workspace")
		if err != nil {
			return err
		}
		if err := apiwallet.CheckInvite(actor, inv.Role); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id
			WHERE m.workspace_id = $1 AND u.email = $2`, inv.WorkspaceID, inv.Email).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return apiwallet.Errorf(apiwallet.ECONFLICT, "%s is already a member of this workspace", inv.Email)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO invitations (`+invitationColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, '')`,
			inv.ID, inv.WorkspaceID, inv.Email, inv.Role, inv.TokenHash, inv.InvitedBy, now, micros(inv.ExpiresAt)); err != nil {
			return err
		}
		if ev != nil {
			// The invitee's email stays out of the permanent audit log.
			ev.WorkspaceID, ev.TargetType, ev.TargetID = inv.WorkspaceID, "invitation", inv.ID
			ev.Details = map[string]string{"role": string(inv.Role)}
		}
		return db.appendAudit(ctx, tx, ev)
	})
	if err != nil {
		return err
	}
	inv.CreatedAt = fromMicros(now)
	return nil
}

// FindInvitations implements apiwallet.TeamStore.
func (db *DB) FindInvitations(ctx context.Context, workspaceID string) (_ []*apiwallet.Invitation, err error) {
	defer apiwallet.Wrap(&err, "FindInvitations")
	return db.queryInvitations(ctx, `SELECT `+invitationColumns+` FROM invitations
		WHERE workspace_id = $1 AND accepted_at IS NULL ORDER BY created_at DESC, id DESC`, workspaceID)
}

// FindInvitationsByEmail implements apiwallet.TeamStore.
func (db *DB) FindInvitationsByEmail(ctx context.Context, email string) (_ []*apiwallet.Invitation, err error) {
	defer apiwallet.Wrap(&err, "FindInvitationsByEmail")
	return db.queryInvitations(ctx, `SELECT `+invitationColumns+` FROM invitations
		WHERE email = $1 ORDER BY created_at DESC, id DESC`, strings.ToLower(email))
}

func (db *DB) queryInvitations(ctx context.Context, q string, args ...any) ([]*apiwallet.Invitation, error) {
	rows, err := db.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var invs []*apiwallet.Invitation
	for rows.Next() {
		inv, err := scanInvitation(rows)
		if err != nil {
			return nil, err
		}
		invs = append(invs, inv)
	}
	return invs, rows.Err()
}

// DeleteInvitation implements apiwallet.TeamStore.
func (db *DB) DeleteInvitation(ctx context.Context, workspaceID, actorID, invitationID string, ev *apiwallet.AuditEvent) (err error) {
	defer apiwallet.Wrap(&err, "DeleteInvitation")
	return db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := lockWorkspace(ctx, tx, workspaceID); err != nil {
			return err
		}
		actor, err := memberRole(ctx, tx, workspaceID, actorID, "workspace")
		if err != nil {
			return err
		}
		if !actor.AtLeast(apiwallet.WorkspaceAdmin) {
			return apiwallet.Errorf(apiwallet.EFORBIDDEN, "your role in this workspace (%s) cannot revoke invitations; it needs admin or above", actor)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM invitations WHERE id = $1 AND workspace_id = $2 AND accepted_at IS NULL`,
			invitationID, workspaceID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return apiwallet.Errorf(apiwallet.ENOTFOUND, "invitation not found")
		}
		if ev != nil {
			ev.WorkspaceID, ev.TargetType, ev.TargetID = workspaceID, "invitation", invitationID
		}
		return db.appendAudit(ctx, tx, ev)
	})
}

// AcceptInvitation implements apiwallet.TeamStore.
func (db *DB) AcceptInvitation(ctx context.Context, tokenHash string, u *apiwallet.User, now time.Time, ev *apiwallet.AuditEvent) (m *apiwallet.Membership, err error) {
	defer apiwallet.Wrap(&err, "AcceptInvitation")
	err = db.tx(ctx, func(tx *sql.Tx) error {
		inv, err := scanInvitation(tx.QueryRowContext(ctx, `SELECT `+invitationColumns+` FROM invitations
			WHERE token_hash = $1`, tokenHash))
		if err != nil {
			return notFound(err, "invitation")
		}
		switch {
		case !inv.AcceptedAt.IsZero():
			return apiwallet.Errorf(apiwallet.ECONFLICT, "this invitation has already been used")
		case !now.Before(inv.ExpiresAt):
			return &apiwallet.Error{Code: apiwallet.EINVALID, Message: "this invitation has expired; ask for a new one",
				Fields: []apiwallet.FieldError{{Field: "token", Detail: "has expired"}}}
		case !strings.EqualFold(inv.Email, u.Email):
			return apiwallet.Errorf(apiwallet.EFORBIDDEN, "this invitation was sent to another email address; log in as that user to accept it")
		}
		ws, err := lockWorkspace(ctx, tx, inv.WorkspaceID)
		if err != nil {
			return err
		}
		if _, err := memberRole(ctx, tx, ws.ID, u.ID, "member"); err == nil {
			return apiwallet.Errorf(apiwallet.ECONFLICT, "you are already a member of this workspace")
		} else if apiwallet.ErrorCode(err) != apiwallet.ENOTFOUND {
			return err
		}
		// The condition on accepted_at makes the invitation single-use even
		// when two accepts race: the second finds no row to update.
		at := micros(now)
		res, err := tx.ExecContext(ctx, `UPDATE invitations SET accepted_at = $1, accepted_by = $2
			WHERE id = $3 AND accepted_at IS NULL`, at, u.ID, inv.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return apiwallet.Errorf(apiwallet.ECONFLICT, "this invitation has already been used")
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO memberships (workspace_id, user_id, role, created_at)
			VALUES ($1, $2, $3, $4)`, ws.ID, u.ID, inv.Role, at); err != nil {
			return err
		}
		if ev != nil {
			ev.WorkspaceID, ev.TargetType, ev.TargetID = ws.ID, "invitation", inv.ID
			ev.Details = map[string]string{"role": string(inv.Role), "invited_by": inv.InvitedBy}
		}
		m = &apiwallet.Membership{Workspace: ws, UserID: u.ID, Role: inv.Role, CreatedAt: fromMicros(at)}
		return db.appendAudit(ctx, tx, ev)
	})
	return m, err
}

// UpdateMemberRole implements apiwallet.TeamStore.
func (db *DB) UpdateMemberRole(ctx context.Context, workspaceID, actorID, userID string, role apiwallet.WorkspaceRole, ev *apiwallet.AuditEvent) (m *apiwallet.Member, err error) {
	defer apiwallet.Wrap(&err, "UpdateMemberRole")
	err = db.tx(ctx, func(tx *sql.Tx) error {
		ws, err := lockWorkspace(ctx, tx, workspaceID)
		if err != nil {
			return err
		}
		actor, err := memberRole(ctx, tx, workspaceID, actorID, "workspace")
		if err != nil {
			return err
		}
		cur, err := findMember(ctx, tx, workspaceID, userID)
		if err != nil {
			return err
		}
		if err := apiwallet.CheckRoleChange(actor, cur.Role, role); err != nil {
			return err
		}
		m = cur
		if cur.Role == role {
			return nil
		}
		if role != apiwallet.WorkspaceOwner {
			if err := checkOwnerStays(ctx, tx, ws, userID, cur.Role, "demoted"); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE memberships SET role = $1 WHERE workspace_id = $2 AND user_id = $3`,
			role, workspaceID, userID); err != nil {
			return err
		}
		if ev != nil {
			ev.WorkspaceID, ev.TargetType, ev.TargetID = workspaceID, "user", userID
			ev.Details = map[string]string{"from": string(cur.Role), "to": string(role)}
		}
		m.Role = role
		return db.appendAudit(ctx, tx, ev)
	})
	return m, err
}

// RemoveMember implements apiwallet.TeamStore.
func (db *DB) RemoveMember(ctx context.Context, workspaceID, actorID, userID string, ev *apiwallet.AuditEvent) (err error) {
	defer apiwallet.Wrap(&err, "RemoveMember")
	return db.tx(ctx, func(tx *sql.Tx) error {
		ws, err := lockWorkspace(ctx, tx, workspaceID)
		if err != nil {
			return err
		}
		actor, err := memberRole(ctx, tx, workspaceID, actorID, "workspace")
		if err != nil {
			return err
		}
		target, err := memberRole(ctx, tx, workspaceID, userID, "member")
		if err != nil {
			return err
		}
		self := actorID == userID
		if err := apiwallet.CheckRemoval(self, actor, target); err != nil {
			return err
		}
		if err := checkOwnerStays(ctx, tx, ws, userID, target, "removed"); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM memberships WHERE workspace_id = $1 AND user_id = $2`,
			workspaceID, userID); err != nil {
			return err
		}
		if ev != nil {
			ev.WorkspaceID, ev.TargetType, ev.TargetID = workspaceID, "user", userID
			ev.Details = map[string]string{"role": string(target)}
			if self {
				ev.Details["self"] = "true"
			}
		}
		return db.appendAudit(ctx, tx, ev)
	})
}
