package apiwallet

import (
	"context"
	"time"
)

// Workspace owns everything a customer stores: keys, tokens, usage, plan,
// invoices and alerts. Every user has a personal one; teams share others.
type Workspace struct {
	ID        string
	Name      string
	Personal  bool
	Plan      string
	CreatedAt time.Time
}

// WorkspaceRole is what a member may do inside one workspace.
type WorkspaceRole string

const (
	WorkspaceOwner  WorkspaceRole = "owner"
	WorkspaceAdmin  WorkspaceRole = "admin"
	WorkspaceMember WorkspaceRole = "member"
	WorkspaceViewer WorkspaceRole = "viewer"
)

var workspaceRank = map[WorkspaceRole]int{
	WorkspaceViewer: 1, WorkspaceMember: 2, WorkspaceAdmin: 3, WorkspaceOwner: 4,
}

// Valid reports whether r is a known workspace role.
func (r WorkspaceRole) Valid() bool { return workspaceRank[r] > 0 }

// AtLeast reports whether r grants everything min grants.
func (r WorkspaceRole) AtLeast(min WorkspaceRole) bool {
	return workspaceRank[r] >= workspaceRank[min] && workspaceRank[r] > 0
}

// Membership ties a user to a workspace with a role.
type Membership struct {
	Workspace *Workspace
	UserID    string
	Role      WorkspaceRole
	CreatedAt time.Time
}

// WorkspaceStore persists workspaces and memberships. Every method is scoped
// to the user it names: a workspace the user is not a member of is
// ENOTFOUND, exactly like one that does not exist.
type WorkspaceStore interface {
	// FindMemberships lists the user's workspaces, personal one first.
	FindMemberships(ctx context.Context, userID string) ([]*Membership, error)
	// FindMembership returns the user's membership of workspaceID, or
	// ENOTFOUND.
	FindMembership(ctx context.Context, workspaceID, userID string) (*Membership, error)
}
