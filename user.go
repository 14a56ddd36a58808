package apiwallet

import (
	"context"
	"time"
)

// Role is a user's global role: it governs operating the wallet itself, not
// what the user may do inside a workspace (see WorkspaceRole).
type Role string

const (
	RoleUser  Role = "USER"
	RoleAdmin Role = "ADMIN"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleUser || r == RoleAdmin }

// User is an account that logs in with an email and a password.
type User struct {
	ID    string
	Email string // lower case
	Name  string
	Role  Role
	// PasswordHash is an argon2id PHC string; never leaves the server.
	PasswordHash string
	// TokenVersion is embedded in every JWT issued to the user; bumping it
	// (logout, password change, disable) revokes every earlier token at once.
	TokenVersion        int64
	Disabled            bool
	PersonalWorkspaceID string
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// UserUpdate holds the fields to change; nil fields stay as they are.
type UserUpdate struct {
	Name         *string
	Role         *Role
	PasswordHash *string
	Disabled     *bool
}

// UserFilter selects users for the admin listing.
type UserFilter struct {
	Email string // exact, optional
	After string // cursor: return IDs greater than this
	Limit int
}

// UserStore persists users.
type UserStore interface {
	// Every mutating method appends ev (which may be nil) to the audit log
	// in the same transaction as its change.
	//
	// CreateUser stores u together with its personal workspace ws, making u
	// the workspace's owner, in one transaction. ECONFLICT if the email is
	// taken.
	CreateUser(ctx context.Context, u *User, ws *Workspace, ev *AuditEvent) error
	// FindUserByID returns ENOTFOUND if there is no such user.
	FindUserByID(ctx context.Context, id string) (*User, error)
	// FindUserByEmail returns ENOTFOUND if there is no such user.
	FindUserByEmail(ctx context.Context, email string) (*User, error)
	// FindUsers lists users ordered by ID.
	FindUsers(ctx context.Context, f UserFilter) ([]*User, error)
	// UpdateUser applies upd and returns the new user. A change of password,
	// role or disabled state also bumps TokenVersion. ENOTFOUND.
	UpdateUser(ctx context.Context, id string, upd UserUpdate, ev *AuditEvent) (*User, error)
	// RevokeUserTokens bumps TokenVersion so every JWT issued before now
	// stops working. ENOTFOUND.
	RevokeUserTokens(ctx context.Context, id string, ev *AuditEvent) error
}
