package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"sort"

	"github.com/apikeywallet/apiwallet"
)

var _ apiwallet.AccountStore = (*DB)(nil)

// dataKeyTable holds each workspace's wrapped data key (00003_keys.sql).
// Erasing a workspace deletes its row first: without it, every ciphertext
// the workspace left anywhere is unreadable.
const dataKeyTable = "data_keys"

// retainedTables keep their rows when a workspace is erased, although they
// have a workspace_id column: the audit log is a hash chain that deleting
// rows would break, and it names actors by opaque id only.
var retainedTables = map[string]bool{"audit_events": true}

// workspaceTables lists every table with a workspace_id column, read from
// the catalog so that a table added later is erased with its workspace
// without anyone remembering to list it here.
func (db *DB) workspaceTables(ctx context.Context, tx *sql.Tx) ([]string, error) {
	q := `SELECT m.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
		WHERE m.type = 'table' AND p.name = 'workspace_id' ORDER BY m.name`
	if db.dialect.name == "postgres" {
		q = `SELECT table_name FROM information_schema.columns
			WHERE table_schema = current_schema() AND column_name = 'workspace_id' ORDER BY table_name`
	}
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		if !retainedTables[n] && safeIdent(n) {
			names = append(names, n)
		}
	}
	return names, rows.Err()
}

// safeIdent reports whether a catalog name can be put in a query as is.
func safeIdent(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return s != ""
}

// purgeWorkspace deletes workspace id and every row it holds: its data key
// first (crypto-shredding whatever ciphertext survives elsewhere, such as in
// backups taken after the root key is next rotated), then every other table
// with a workspace_id column, then the workspace itself. Foreign keys with
// ON DELETE CASCADE take rows keyed by those (such as token secrets).
func (db *DB) purgeWorkspace(ctx context.Context, tx *sql.Tx, tables []string, id string) error {
	ordered := make([]string, 0, len(tables))
	for _, t := range tables {
		if t == dataKeyTable {
			ordered = append([]string{t}, ordered...)
		} else {
			ordered = append(ordered, t)
		}
	}
	for _, t := range ordered {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+t+` WHERE workspace_id = $1`, id); err != nil {
			return fmt.Errorf("erase %s of workspace %s: %w", t, id, err)
		}
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM workspaces WHERE id = $1`, id)
	return err
}

// lockEnabledAdmins locks the rows of every enabled ADMIN until tx ends and
// returns their IDs. Changes that may take away the last one lock first, so
// that two admins demoting each other at once cannot both succeed.
func lockEnabledAdmins(ctx context.Context, tx *sql.Tx) ([]string, error) {
	return collectStrings(tx.QueryContext(ctx, `UPDATE users SET token_version = token_version
		WHERE role = $1 AND disabled = $2 RETURNING id`, apiwallet.RoleAdmin, false))
}

// checkNotLastAdmin fails if id is the only enabled ADMIN.
func checkNotLastAdmin(ctx context.Context, tx *sql.Tx, id, doing string) error {
	admins, err := lockEnabledAdmins(ctx, tx)
	if err != nil {
		return err
	}
	if len(admins) == 1 && admins[0] == id {
		return apiwallet.Errorf(apiwallet.ECONFLICT, "this is the last enabled ADMIN and cannot be %s; make another user ADMIN first", doing)
	}
	return nil
}

// DeleteUserAccount implements apiwallet.AccountStore.
func (db *DB) DeleteUserAccount(ctx context.Context, id string, ev *apiwallet.AuditEvent) (d *apiwallet.AccountDeletion, err error) {
	defer apiwallet.Wrap(&err, "DeleteUserAccount")
	err = db.tx(ctx, func(tx *sql.Tx) error {
		u, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
		if err != nil {
			return notFound(err, "user")
		}
		if u.Role == apiwallet.RoleAdmin && !u.Disabled {
			if err := checkNotLastAdmin(ctx, tx, id, "deleted"); err != nil {
				return err
			}
		}
		wsIDs, err := txWorkspaceIDs(ctx, tx, id)
		if err != nil {
			return err
		}
		tables, err := db.workspaceTables(ctx, tx)
		if err != nil {
			return err
		}
		d = &apiwallet.AccountDeletion{DeletedWorkspaces: []string{}, LeftWorkspaces: []string{}}
		// Workspaces are locked in ID order, so two erasures sharing
		// workspaces cannot deadlock; each sees the other's outcome.
		for _, wsID := range wsIDs {
			ws, err := lockWorkspace(ctx, tx, wsID)
			if err != nil {
				return err
			}
			// The role is read again under the lock: it may have changed
			// since the list was read.
			role, err := memberRole(ctx, tx, ws.ID, id, "member")
			if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND {
				continue
			} else if err != nil {
				return err
			}
			sole := false
			if role == apiwallet.WorkspaceOwner {
				n, err := countOwners(ctx, tx, ws.ID)
				if err != nil {
					return err
				}
				sole = n == 1
			}
			if sole {
				if err := db.purgeWorkspace(ctx, tx, tables, ws.ID); err != nil {
					return err
				}
				d.DeletedWorkspaces = append(d.DeletedWorkspaces, ws.ID)
				continue
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM memberships WHERE workspace_id = $1 AND user_id = $2`,
				ws.ID, id); err != nil {
				return err
			}
			if ws.ID == u.PersonalWorkspaceID {
				// Its remaining owners keep it as a team workspace.
				if _, err := tx.ExecContext(ctx, `UPDATE workspaces SET personal = $1 WHERE id = $2`, false, ws.ID); err != nil {
					return err
				}
			}
			d.LeftWorkspaces = append(d.LeftWorkspaces, ws.ID)
		}
		// Invitations to the user hold its email; those it sent or used
		// name it. None is needed once the account is gone.
		if _, err := tx.ExecContext(ctx, `DELETE FROM invitations WHERE email = $1 OR invited_by = $2 OR accepted_by = $2`,
			u.Email, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = $1`, id); err != nil {
			return err
		}
		if ev != nil {
			// A pseudonymous record: ids and counts, never the email.
			ev.WorkspaceID, ev.TargetType, ev.TargetID = u.PersonalWorkspaceID, "user", id
			ev.Details = map[string]string{
				"deleted_workspaces": fmt.Sprint(len(d.DeletedWorkspaces)),
				"left_workspaces":    fmt.Sprint(len(d.LeftWorkspaces)),
			}
		}
		return db.appendAudit(ctx, tx, ev)
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// txWorkspaceIDs lists the workspaces userID belongs to, in ID order.
func txWorkspaceIDs(ctx context.Context, tx *sql.Tx, userID string) ([]string, error) {
	ids, err := collectStrings(tx.QueryContext(ctx, `SELECT workspace_id FROM memberships WHERE user_id = $1`, userID))
	sort.Strings(ids)
	return ids, err
}

// UpdateUserAsAdmin implements apiwallet.AccountStore.
func (db *DB) UpdateUserAsAdmin(ctx context.Context, id string, upd apiwallet.UserUpdate, plan *string, evs []*apiwallet.AuditEvent) (u *apiwallet.User, err error) {
	defer apiwallet.Wrap(&err, "UpdateUserAsAdmin")
	err = db.tx(ctx, func(tx *sql.Tx) error {
		demote := upd.Role != nil && *upd.Role != apiwallet.RoleAdmin
		disable := upd.Disabled != nil && *upd.Disabled
		if demote || disable {
			doing := "disabled"
			if demote {
				doing = "demoted"
			}
			if err := checkNotLastAdmin(ctx, tx, id, doing); err != nil {
				return err
			}
		}
		if u, err = db.updateUser(ctx, tx, id, upd); err != nil {
			return err
		}
		if plan != nil {
			w, err := lockWorkspace(ctx, tx, u.PersonalWorkspaceID)
			if err != nil {
				return err
			}
			actor := ""
			if len(evs) > 0 {
				actor = evs[0].ActorID
			}
			if err := db.setWorkspacePlan(ctx, tx, w, *plan, apiwallet.PlanSourceAdmin, actor); err != nil {
				return err
			}
		}
		for _, ev := range evs {
			if err := db.appendAudit(ctx, tx, ev); err != nil {
				return err
			}
		}
		return nil
	})
	return u, err
}

// FindWorkspaceByID implements apiwallet.AccountStore.
func (db *DB) FindWorkspaceByID(ctx context.Context, id string) (*apiwallet.Workspace, error) {
	var (
		w  apiwallet.Workspace
		at int64
	)
	err := db.db.QueryRowContext(ctx, `SELECT id, name, personal, plan, created_at FROM workspaces WHERE id = $1`, id).
		Scan(&w.ID, &w.Name, &w.Personal, &w.Plan, &at)
	if err != nil {
		return nil, notFound(err, "workspace")
	}
	w.CreatedAt = fromMicros(at)
	return &w, nil
}

// UpdateWorkspacePlan implements apiwallet.AccountStore.
func (db *DB) UpdateWorkspacePlan(ctx context.Context, id, plan string, ev *apiwallet.AuditEvent) (w *apiwallet.Workspace, err error) {
	defer apiwallet.Wrap(&err, "UpdateWorkspacePlan")
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if w, err = lockWorkspace(ctx, tx, id); err != nil {
			return err
		}
		from, actor := w.Plan, ""
		if ev != nil {
			actor = ev.ActorID
		}
		if err := db.setWorkspacePlan(ctx, tx, w, plan, apiwallet.PlanSourceAdmin, actor); err != nil {
			return err
		}
		if ev != nil {
			ev.WorkspaceID, ev.TargetType, ev.TargetID = id, "workspace", id
			ev.Details = map[string]string{"from": from, "to": plan}
		}
		return db.appendAudit(ctx, tx, ev)
	})
	return w, err
}
