// Package team manages shared workspaces: creating them, inviting members
// by email with single-use tokens, changing roles and removing members.
//
// What a member may do follows apiwallet.CheckInvite, CheckRoleChange and
// CheckRemoval. The store applies them to roles it reads in the same
// transaction as the change, so this package validates input, makes and
// hashes invitation tokens and builds audit events, but never decides on a
// role it read earlier.
package team

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/auth"
)

// TokenPrefix starts every invitation token, so that one pasted in the
// wrong place is recognisable.
const TokenPrefix = "awi_"

// Service is the team API over a TeamStore.
type Service struct {
	Store apiwallet.TeamStore
	// Now is the clock invitations expire by; nil means time.Now.
	Now func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// event starts an audit event for an action by userID.
func event(ctx context.Context, workspaceID, userID, action string) *apiwallet.AuditEvent {
	return apiwallet.NewAuditEvent(ctx, workspaceID, apiwallet.ActorUser, userID, action, "", "")
}

// ValidateWorkspaceName trims and checks a workspace name.
func ValidateWorkspaceName(v *apiwallet.ValidationError, name string) string {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		v.Add("name", "is required")
	case utf8.RuneCountInString(name) > 100 || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f }):
		v.Add("name", "must be at most 100 printable characters")
	}
	return name
}

// CreateWorkspace creates a team workspace owned by u and returns u's
// membership of it.
func (s *Service) CreateWorkspace(ctx context.Context, u *apiwallet.User, name string) (*apiwallet.Membership, error) {
	var v apiwallet.ValidationError
	name = ValidateWorkspaceName(&v, name)
	if err := v.Err(); err != nil {
		return nil, err
	}
	ws := &apiwallet.Workspace{Name: name}
	if err := s.Store.CreateWorkspace(ctx, ws, u.ID, event(ctx, "", u.ID, "workspace.create")); err != nil {
		return nil, err
	}
	return &apiwallet.Membership{Workspace: ws, UserID: u.ID, Role: apiwallet.WorkspaceOwner, CreatedAt: ws.CreatedAt}, nil
}

// Members lists the members of m's workspace; any member may.
func (s *Service) Members(ctx context.Context, m *apiwallet.Membership) ([]*apiwallet.Member, error) {
	return s.Store.FindMembers(ctx, m.Workspace.ID)
}

// Invite is a request to invite someone.
type Invite struct {
	Email string
	Role  apiwallet.WorkspaceRole // empty means member
	// ExpiresAt is optional: zero means DefaultInvitationTTL from now.
	ExpiresAt time.Time
}

// Invite invites in.Email to m's workspace and returns the invitation with
// its token, which exists only in this return value: the store keeps its
// hash.
func (s *Service) Invite(ctx context.Context, m *apiwallet.Membership, in Invite) (*apiwallet.Invitation, string, error) {
	var v apiwallet.ValidationError
	email := auth.ValidateEmail(&v, in.Email)
	role := in.Role
	if role == "" {
		role = apiwallet.WorkspaceMember
	} else if !role.Valid() {
		v.Add("role", `must be "viewer", "member", "admin" or "owner"`)
	}
	now := s.now()
	exp := in.ExpiresAt
	switch {
	case exp.IsZero():
		exp = now.Add(apiwallet.DefaultInvitationTTL)
	case !exp.After(now.Add(time.Minute)):
		v.Add("expiresAt", "must be in the future")
	case exp.After(now.Add(apiwallet.MaxInvitationTTL)):
		v.Add("expiresAt", "must be at most 30 days away")
	}
	if err := v.Err(); err != nil {
		return nil, "", err
	}
	// Checked here for a quick answer; the store checks again under its
	// lock.
	if err := apiwallet.CheckInvite(m.Role, role); err != nil {
		return nil, "", err
	}
	token, hash, err := newToken()
	if err != nil {
		return nil, "", err
	}
	inv := &apiwallet.Invitation{WorkspaceID: m.Workspace.ID, Email: email, Role: role, TokenHash: hash,
		InvitedBy: m.UserID, ExpiresAt: exp.UTC().Truncate(time.Microsecond)}
	if err := s.Store.CreateInvitation(ctx, inv, event(ctx, m.Workspace.ID, m.UserID, "invitation.create")); err != nil {
		return nil, "", err
	}
	return inv, token, nil
}

// Invitations lists the pending invitations of m's workspace, for its
// admins and owners.
func (s *Service) Invitations(ctx context.Context, m *apiwallet.Membership) ([]*apiwallet.Invitation, error) {
	if !m.Role.AtLeast(apiwallet.WorkspaceAdmin) {
		return nil, apiwallet.Errorf(apiwallet.EFORBIDDEN, "your role in this workspace (%s) cannot see invitations; it needs admin or above", m.Role)
	}
	return s.Store.FindInvitations(ctx, m.Workspace.ID)
}

// RevokeInvitation deletes a pending invitation of m's workspace.
func (s *Service) RevokeInvitation(ctx context.Context, m *apiwallet.Membership, id string) error {
	return s.Store.DeleteInvitation(ctx, m.Workspace.ID, m.UserID, id, event(ctx, m.Workspace.ID, m.UserID, "invitation.revoke"))
}

// Accept makes u a member of the workspace that token invites it to.
func (s *Service) Accept(ctx context.Context, u *apiwallet.User, token string) (*apiwallet.Membership, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, &apiwallet.Error{Code: apiwallet.EINVALID, Message: "the request has invalid fields",
			Fields: []apiwallet.FieldError{{Field: "token", Detail: "is required"}}}
	}
	if !strings.HasPrefix(token, TokenPrefix) || len(token) > 200 {
		return nil, apiwallet.Errorf(apiwallet.ENOTFOUND, "invitation not found")
	}
	return s.Store.AcceptInvitation(ctx, HashToken(token), u, s.now(), event(ctx, "", u.ID, "invitation.accept"))
}

// ChangeRole sets a member's role in m's workspace.
func (s *Service) ChangeRole(ctx context.Context, m *apiwallet.Membership, userID string, role apiwallet.WorkspaceRole) (*apiwallet.Member, error) {
	if !role.Valid() {
		var v apiwallet.ValidationError
		v.Add("role", `must be "viewer", "member", "admin" or "owner"`)
		return nil, v.Err()
	}
	return s.Store.UpdateMemberRole(ctx, m.Workspace.ID, m.UserID, userID, role,
		event(ctx, m.Workspace.ID, m.UserID, "member.role_change"))
}

// RemoveMember ends a membership of m's workspace; userID == m.UserID is
// leaving it.
func (s *Service) RemoveMember(ctx context.Context, m *apiwallet.Membership, userID string) error {
	return s.Store.RemoveMember(ctx, m.Workspace.ID, m.UserID, userID,
		event(ctx, m.Workspace.ID, m.UserID, "member.remove"))
}

// newToken returns a fresh invitation token and its hash.
func newToken() (token, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashToken(token), nil
}

// HashToken is what the store keeps of an invitation token: its hex
// SHA-256. The token carries 256 random bits, so a fast hash is enough.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}
