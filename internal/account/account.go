// Package account serves a user's rights over their whole account — a
// data export (GDPR art. 15/20) and erasure (art. 17) — and the global
// administration of users and plans.
//
// Erasure crypto-shreds: every workspace the user solely owns is deleted
// with its wrapped data key, so any ciphertext that survives elsewhere can
// no longer be opened. The audit log keeps a pseudonymous record.
package account

import (
	"context"
	"fmt"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/auth"
	"github.com/apikeywallet/apiwallet/internal/ratelimit"
)

// deleteLimit throttles erasure attempts per account: the password check
// must not become a way to guess the password with a stolen session.
var deleteLimit = ratelimit.Limit{Rate: 5, Period: 15 * time.Minute, Burst: 5}

// maxExportEvents bounds the audit events in one export.
const maxExportEvents = 100_000

// Service is the account API.
type Service struct {
	Users      apiwallet.UserStore
	Workspaces apiwallet.WorkspaceStore
	Teams      apiwallet.TeamStore
	Accounts   apiwallet.AccountStore
	Audit      apiwallet.AuditStore
	Limiter    ratelimit.Limiter
	// Sections are the export's parts held by other stores (keys, tokens,
	// usage), after the ones this package collects itself.
	Sections []Section
	// Now stamps exports; nil means time.Now.
	Now func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// Section is one named part of a data export, collected by the package
// that holds the data. Collect returns a JSON-encodable value that must
// never hold a secret (keys and tokens appear masked) nor another user's
// data beyond what the user's own memberships show them.
type Section struct {
	Name    string
	Collect func(ctx context.Context, u *apiwallet.User, ms []*apiwallet.Membership) (any, error)
}

// Export is everything the wallet holds about a user, by section name.
type Export map[string]any

// Export collects u's data: profile, memberships, invitations addressed
// to u, the audit events u caused, then every Section.
func (s *Service) Export(ctx context.Context, u *apiwallet.User) (Export, error) {
	ms, err := s.Workspaces.FindMemberships(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	out := Export{
		"format":      "apiwallet-export/1",
		"exportedAt":  s.now().UTC(),
		"profile":     exportProfile(u),
		"memberships": exportMemberships(ms),
	}
	invs, err := s.Teams.FindInvitationsByEmail(ctx, u.Email)
	if err != nil {
		return nil, err
	}
	out["invitations"] = exportInvitations(invs)
	evs, truncated, err := s.actorEvents(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	out["auditEvents"] = evs
	if truncated {
		out["auditEventsTruncated"] = true
	}
	for _, sec := range s.Sections {
		v, err := sec.Collect(ctx, u, ms)
		if err != nil {
			return nil, fmt.Errorf("export section %s: %w", sec.Name, err)
		}
		out[sec.Name] = v
	}
	return out, nil
}

// actorEvents pages through the events whose actor is userID, newest
// first.
func (s *Service) actorEvents(ctx context.Context, userID string) (_ []auditJSON, truncated bool, err error) {
	out := []auditJSON{}
	var before int64
	for {
		page, err := s.Audit.FindAuditEvents(ctx, apiwallet.AuditFilter{ActorID: userID, Before: before, Limit: 500})
		if err != nil {
			return nil, false, err
		}
		for _, ev := range page {
			out = append(out, toAuditJSON(ev))
		}
		if len(page) < 500 {
			return out, false, nil
		}
		if len(out) >= maxExportEvents {
			return out, true, nil
		}
		before = page[len(page)-1].Seq
	}
}

// Delete erases u's account once password is confirmed; see
// AccountStore.DeleteUserAccount. A wrong password changes nothing but
// the audit log.
func (s *Service) Delete(ctx context.Context, u *apiwallet.User, password string) (*apiwallet.AccountDeletion, error) {
	if password == "" {
		return nil, &apiwallet.Error{Code: apiwallet.EINVALID, Message: "re-enter your password to delete the account",
			Fields: []apiwallet.FieldError{{Field: "password", Detail: "is required"}}}
	}
	d, err := s.Limiter.Allow(ctx, "account:delete:"+u.ID, deleteLimit, 1)
	if err != nil {
		return nil, err
	}
	if !d.Allowed {
		secs := int((d.RetryAfter + time.Second - 1) / time.Second)
		return nil, &apiwallet.Error{Code: apiwallet.ERATELIMIT, RetryAfterSeconds: secs,
			Message: fmt.Sprintf("too many attempts; try again in %d seconds", secs)}
	}
	ok := false
	if len(password) <= auth.MaxPasswordLen {
		if ok, err = auth.VerifyPassword(password, u.PasswordHash); err != nil {
			return nil, err
		}
	}
	ev := apiwallet.NewAuditEvent(ctx, u.PersonalWorkspaceID, apiwallet.ActorUser, u.ID, "user.delete", "user", u.ID)
	if !ok {
		ev.Outcome = apiwallet.OutcomeFailure
		ev.Details = map[string]string{"reason": "wrong password"}
		if err := s.Audit.AppendAudit(ctx, ev); err != nil {
			return nil, err
		}
		return nil, &apiwallet.Error{Code: apiwallet.EINVALID, Message: "the password is wrong; the account was not deleted",
			Fields: []apiwallet.FieldError{{Field: "password", Detail: "is wrong"}}}
	}
	return s.Accounts.DeleteUserAccount(ctx, u.ID, ev)
}

type profileJSON struct {
	ID                  string    `json:"id"`
	Email               string    `json:"email"`
	Name                string    `json:"name"`
	Role                string    `json:"role"`
	Disabled            bool      `json:"disabled"`
	PersonalWorkspaceID string    `json:"personalWorkspaceId"`
	CreatedAt           time.Time `json:"createdAt"`
	UpdatedAt           time.Time `json:"updatedAt"`
}

// exportProfile lists the user row's fields but the password hash and the
// token version, which are credentials rather than data about the user.
func exportProfile(u *apiwallet.User) profileJSON {
	return profileJSON{ID: u.ID, Email: u.Email, Name: u.Name, Role: string(u.Role), Disabled: u.Disabled,
		PersonalWorkspaceID: u.PersonalWorkspaceID, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

type membershipJSON struct {
	WorkspaceID   string    `json:"workspaceId"`
	WorkspaceName string    `json:"workspaceName"`
	Personal      bool      `json:"personal"`
	Plan          string    `json:"plan"`
	Role          string    `json:"role"`
	JoinedAt      time.Time `json:"joinedAt"`
}

func exportMemberships(ms []*apiwallet.Membership) []membershipJSON {
	out := []membershipJSON{}
	for _, m := range ms {
		out = append(out, membershipJSON{WorkspaceID: m.Workspace.ID, WorkspaceName: m.Workspace.Name,
			Personal: m.Workspace.Personal, Plan: m.Workspace.Plan, Role: string(m.Role), JoinedAt: m.CreatedAt})
	}
	return out
}

type invitationJSON struct {
	ID          string     `json:"id"`
	WorkspaceID string     `json:"workspaceId"`
	Email       string     `json:"email"`
	Role        string     `json:"role"`
	InvitedBy   string     `json:"invitedBy"`
	CreatedAt   time.Time  `json:"createdAt"`
	ExpiresAt   time.Time  `json:"expiresAt"`
	AcceptedAt  *time.Time `json:"acceptedAt,omitempty"`
}

func exportInvitations(invs []*apiwallet.Invitation) []invitationJSON {
	out := []invitationJSON{}
	for _, inv := range invs {
		j := invitationJSON{ID: inv.ID, WorkspaceID: inv.WorkspaceID, Email: inv.Email, Role: string(inv.Role),
			InvitedBy: inv.InvitedBy, CreatedAt: inv.CreatedAt, ExpiresAt: inv.ExpiresAt}
		if !inv.AcceptedAt.IsZero() {
			at := inv.AcceptedAt
			j.AcceptedAt = &at
		}
		out = append(out, j)
	}
	return out
}

type auditJSON struct {
	ID          string            `json:"id"`
	Seq         int64             `json:"seq"`
	WorkspaceID string            `json:"workspaceId,omitempty"`
	Action      string            `json:"action"`
	TargetType  string            `json:"targetType,omitempty"`
	TargetID    string            `json:"targetId,omitempty"`
	Outcome     string            `json:"outcome"`
	ClientIP    string            `json:"clientIp,omitempty"`
	RequestID   string            `json:"requestId,omitempty"`
	Details     map[string]string `json:"details,omitempty"`
	CreatedAt   time.Time         `json:"createdAt"`
}

func toAuditJSON(ev *apiwallet.AuditEvent) auditJSON {
	return auditJSON{ID: ev.ID, Seq: ev.Seq, WorkspaceID: ev.WorkspaceID, Action: ev.Action, TargetType: ev.TargetType,
		TargetID: ev.TargetID, Outcome: ev.Outcome, ClientIP: ev.ClientIP, RequestID: ev.RequestID,
		Details: ev.Details, CreatedAt: ev.CreatedAt}
}
