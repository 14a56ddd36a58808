package apiwallet

import (
	"context"
	"time"
)

// Plans a workspace can be on. Prices and quotas belong to billing; this is
// only the vocabulary stored in workspaces.plan.
const (
	PlanFree         = "free"
	PlanProfessional = "professional"
	PlanEnterprise   = "enterprise"
	PlanCustom       = "custom"
)

// ValidPlan reports whether p is shaped like a plan id. Whether such a
// plan exists (admins add plans) is the store's to say.
func ValidPlan(p string) bool { return validSlug(p) }

// Invitation lifetimes: an invitation is valid for DefaultInvitationTTL
// unless the inviter picks a shorter one, and never for longer than
// MaxInvitationTTL.
const (
	DefaultInvitationTTL = 7 * 24 * time.Hour
	MaxInvitationTTL     = 30 * 24 * time.Hour
)

// Invitation asks the owner of an email address to join a workspace. Its
// token is shown to the inviter once; only its SHA-256 hash is stored, so a
// database reader cannot accept it. It can be accepted once, before
// ExpiresAt, by a logged-in user with that email.
type Invitation struct {
	ID          string
	WorkspaceID string
	Email       string // lower case
	Role        WorkspaceRole
	// TokenHash is the hex SHA-256 of the token; never shown.
	TokenHash  string
	InvitedBy  string // user id
	CreatedAt  time.Time
	ExpiresAt  time.Time
	AcceptedAt time.Time // zero while pending
	AcceptedBy string
}

// Member is one user of a workspace as the workspace's other members see
// them.
type Member struct {
	UserID string
	Email  string
	Name   string
	Role   WorkspaceRole
	// PersonalOwner is set on the user whose personal workspace this is;
	// that user can be neither removed nor demoted.
	PersonalOwner bool
	JoinedAt      time.Time
}

// CheckInvite returns EFORBIDDEN unless a member with role actor may invite
// someone as role: admins and owners invite, and only an owner invites an
// owner.
func CheckInvite(actor, role WorkspaceRole) error {
	if !actor.AtLeast(WorkspaceAdmin) {
		return Errorf(EFORBIDDEN, "your role in this workspace (%s) cannot invite members; it needs admin or above", actor)
	}
	if role == WorkspaceOwner && actor != WorkspaceOwner {
		return Errorf(EFORBIDDEN, "only an owner can invite another owner")
	}
	return nil
}

// CheckRoleChange returns EFORBIDDEN unless a member with role actor may
// change a member's role from target to role: admins and owners change
// roles, but an admin can neither make an owner nor change an owner's role.
// The last-owner rule is the store's, which sees every owner.
func CheckRoleChange(actor, target, role WorkspaceRole) error {
	if !actor.AtLeast(WorkspaceAdmin) {
		return Errorf(EFORBIDDEN, "your role in this workspace (%s) cannot change roles; it needs admin or above", actor)
	}
	if actor != WorkspaceOwner && (target == WorkspaceOwner || role == WorkspaceOwner) {
		return Errorf(EFORBIDDEN, "only an owner can make an owner or change an owner's role")
	}
	return nil
}

// CheckRemoval returns EFORBIDDEN unless a member with role actor may
// remove a member with role target. Anyone may leave (self); otherwise
// admins and owners remove members, and only an owner removes an owner.
func CheckRemoval(self bool, actor, target WorkspaceRole) error {
	if self {
		return nil
	}
	if !actor.AtLeast(WorkspaceAdmin) {
		return Errorf(EFORBIDDEN, "your role in this workspace (%s) cannot remove members; it needs admin or above", actor)
	}
	if target == WorkspaceOwner && actor != WorkspaceOwner {
		return Errorf(EFORBIDDEN, "only an owner can remove an owner")
	}
	return nil
}

// TeamStore persists team workspaces, their members and invitations.
// Methods that act for a user (actorID) read that user's role inside the
// same transaction as the change and apply CheckInvite, CheckRoleChange or
// CheckRemoval to it, so a concurrent demotion cannot be raced. A
// workspace the actor is not a member of is ENOTFOUND, exactly like a
// missing one; so is a member or invitation of another workspace. Every
// mutating method appends ev (which may be nil) in the same transaction.
type TeamStore interface {
	// CreateWorkspace stores ws as a team (non-personal) workspace with
	// ownerID as its only owner.
	CreateWorkspace(ctx context.Context, ws *Workspace, ownerID string, ev *AuditEvent) error
	// FindMembers lists the members of workspaceID, owners first.
	FindMembers(ctx context.Context, workspaceID string) ([]*Member, error)

	// CreateInvitation stores inv for actorID (inv.InvitedBy). EFORBIDDEN
	// per CheckInvite; ECONFLICT if the email already belongs to a member.
	CreateInvitation(ctx context.Context, inv *Invitation, ev *AuditEvent) error
	// FindInvitations lists the pending (not accepted) invitations of
	// workspaceID, newest first, expired ones included.
	FindInvitations(ctx context.Context, workspaceID string) ([]*Invitation, error)
	// FindInvitationsByEmail lists every invitation addressed to email.
	FindInvitationsByEmail(ctx context.Context, email string) ([]*Invitation, error)
	// DeleteInvitation revokes a pending invitation of workspaceID.
	// EFORBIDDEN unless actorID is an admin or owner; ENOTFOUND.
	DeleteInvitation(ctx context.Context, workspaceID, actorID, invitationID string, ev *AuditEvent) error
	// AcceptInvitation makes u a member as the invitation whose token
	// hashes to tokenHash says, and marks it used, at the time now.
	// ENOTFOUND for an unknown token; ECONFLICT if it was used already or
	// u is a member already; EINVALID if it expired; EFORBIDDEN if it was
	// sent to another email. Nothing changes on error.
	AcceptInvitation(ctx context.Context, tokenHash string, u *User, now time.Time, ev *AuditEvent) (*Membership, error)

	// UpdateMemberRole sets userID's role in workspaceID. EFORBIDDEN per
	// CheckRoleChange; ECONFLICT if it would demote the last owner or the
	// owner of a personal workspace; ENOTFOUND.
	UpdateMemberRole(ctx context.Context, workspaceID, actorID, userID string, role WorkspaceRole, ev *AuditEvent) (*Member, error)
	// RemoveMember ends userID's membership of workspaceID; actorID ==
	// userID is leaving. EFORBIDDEN per CheckRemoval; ECONFLICT for the
	// last owner or the owner of a personal workspace; ENOTFOUND.
	RemoveMember(ctx context.Context, workspaceID, actorID, userID string, ev *AuditEvent) error
}

// AccountDeletion reports what erasing an account did.
type AccountDeletion struct {
	// DeletedWorkspaces were solely owned by the user: erased with every
	// row they held, their data key included (crypto-shredding).
	DeletedWorkspaces []string
	// LeftWorkspaces had other owners, or the user was not an owner: they
	// stay, minus this member.
	LeftWorkspaces []string
}

// AccountStore holds the operations on accounts as a whole: erasure and
// administration. Every mutating method appends its events in the same
// transaction as the change.
type AccountStore interface {
	// DeleteUserAccount erases user id in one transaction: every
	// workspace it solely owns is deleted with all its rows (keys,
	// tokens, wrapped data key, ...), other memberships end, invitations
	// to or by the user go, and the user row goes. Audit events stay: they
	// name actors by id only. ECONFLICT if the user is the last enabled
	// ADMIN. ENOTFOUND.
	DeleteUserAccount(ctx context.Context, id string, ev *AuditEvent) (*AccountDeletion, error)
	// UpdateUserAsAdmin applies upd like UserStore.UpdateUser and, if plan
	// is not nil, sets the plan of the user's personal workspace,
	// appending evs. ECONFLICT if no enabled ADMIN would be left.
	// ENOTFOUND.
	UpdateUserAsAdmin(ctx context.Context, id string, upd UserUpdate, plan *string, evs []*AuditEvent) (*User, error)
	// FindWorkspaceByID returns any workspace, for administrators only.
	// ENOTFOUND.
	FindWorkspaceByID(ctx context.Context, id string) (*Workspace, error)
	// UpdateWorkspacePlan sets a workspace's plan. ENOTFOUND.
	UpdateWorkspacePlan(ctx context.Context, id, plan string, ev *AuditEvent) (*Workspace, error)
}
