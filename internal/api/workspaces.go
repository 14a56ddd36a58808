package api

import (
	"net/http"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/team"
)

// inWorkspace resolves the workspace named by the path's {id} for p's
// user, whatever X-Workspace-Id says. A workspace the user is not a member
// of is 404, exactly like a missing one; membership is read on every
// request, so a removed member is refused at once.
func (s *Server) inWorkspace(r *http.Request, p *Principal) (*apiwallet.Membership, error) {
	return s.Auth.Workspace(r.Context(), p.User, r.PathValue("id"))
}

type memberJSON struct {
	UserID        string    `json:"userId"`
	Email         string    `json:"email"`
	Name          string    `json:"name"`
	Role          string    `json:"role"`
	PersonalOwner bool      `json:"personalOwner,omitempty"`
	JoinedAt      time.Time `json:"joinedAt"`
}

func toMemberJSON(m *apiwallet.Member) memberJSON {
	return memberJSON{UserID: m.UserID, Email: m.Email, Name: m.Name, Role: string(m.Role),
		PersonalOwner: m.PersonalOwner, JoinedAt: m.JoinedAt}
}

type invitationJSON struct {
	ID          string    `json:"id"`
	WorkspaceID string    `json:"workspaceId"`
	Email       string    `json:"email"`
	Role        string    `json:"role"`
	InvitedBy   string    `json:"invitedBy"`
	CreatedAt   time.Time `json:"createdAt"`
	ExpiresAt   time.Time `json:"expiresAt"`
	Expired     bool      `json:"expired"`
	// Token is set only in the response that creates the invitation.
	Token string `json:"token,omitempty"`
}

func (s *Server) toInvitationJSON(inv *apiwallet.Invitation) invitationJSON {
	return invitationJSON{ID: inv.ID, WorkspaceID: inv.WorkspaceID, Email: inv.Email, Role: string(inv.Role),
		InvitedBy: inv.InvitedBy, CreatedAt: inv.CreatedAt, ExpiresAt: inv.ExpiresAt,
		Expired: !s.Now().Before(inv.ExpiresAt)}
}

func (s *Server) createWorkspace(w http.ResponseWriter, r *http.Request, p *Principal) error {
	var in struct {
		Name string `json:"name"`
	}
	if err := decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	m, err := s.Teams.CreateWorkspace(r.Context(), p.User, in.Name)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/workspaces/"+m.Workspace.ID)
	return writeJSON(w, http.StatusCreated, toWorkspaceJSON(m))
}

func (s *Server) getWorkspace(w http.ResponseWriter, r *http.Request, p *Principal) error {
	m, err := s.inWorkspace(r, p)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toWorkspaceJSON(m))
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request, p *Principal) error {
	m, err := s.inWorkspace(r, p)
	if err != nil {
		return err
	}
	ms, err := s.Teams.Members(r.Context(), m)
	if err != nil {
		return err
	}
	out := []memberJSON{}
	for _, m := range ms {
		out = append(out, toMemberJSON(m))
	}
	return writeJSON(w, http.StatusOK, map[string]any{"members": out})
}

func (s *Server) updateMember(w http.ResponseWriter, r *http.Request, p *Principal) error {
	m, err := s.inWorkspace(r, p)
	if err != nil {
		return err
	}
	var in struct {
		Role apiwallet.WorkspaceRole `json:"role"`
	}
	if err := decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	mem, err := s.Teams.ChangeRole(r.Context(), m, r.PathValue("userId"), in.Role)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toMemberJSON(mem))
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request, p *Principal) error {
	m, err := s.inWorkspace(r, p)
	if err != nil {
		return err
	}
	if err := s.Teams.RemoveMember(r.Context(), m, r.PathValue("userId")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) createInvitation(w http.ResponseWriter, r *http.Request, p *Principal) error {
	m, err := s.inWorkspace(r, p)
	if err != nil {
		return err
	}
	var in struct {
		Email     string                  `json:"email"`
		Role      apiwallet.WorkspaceRole `json:"role"`
		ExpiresAt string                  `json:"expiresAt"`
	}
	if err := decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	invite := team.Invite{Email: in.Email, Role: in.Role}
	if in.ExpiresAt != "" {
		t, err := time.Parse(time.RFC3339, in.ExpiresAt)
		if err != nil {
			return &apiwallet.Error{Code: apiwallet.EINVALID, Message: "the request has invalid fields",
				Fields: []apiwallet.FieldError{{Field: "expiresAt", Detail: "must be an RFC 3339 time such as 2030-01-02T15:04:05Z"}}}
		}
		invite.ExpiresAt = t
	}
	inv, token, err := s.Teams.Invite(r.Context(), m, invite)
	if err != nil {
		return err
	}
	out := s.toInvitationJSON(inv)
	out.Token = token
	w.Header().Set("Location", "/workspaces/"+m.Workspace.ID+"/invitations/"+inv.ID)
	return writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listInvitations(w http.ResponseWriter, r *http.Request, p *Principal) error {
	m, err := s.inWorkspace(r, p)
	if err != nil {
		return err
	}
	invs, err := s.Teams.Invitations(r.Context(), m)
	if err != nil {
		return err
	}
	out := []invitationJSON{}
	for _, inv := range invs {
		out = append(out, s.toInvitationJSON(inv))
	}
	return writeJSON(w, http.StatusOK, map[string]any{"invitations": out})
}

func (s *Server) revokeInvitation(w http.ResponseWriter, r *http.Request, p *Principal) error {
	m, err := s.inWorkspace(r, p)
	if err != nil {
		return err
	}
	if err := s.Teams.RevokeInvitation(r.Context(), m, r.PathValue("invitationId")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) acceptInvitation(w http.ResponseWriter, r *http.Request, p *Principal) error {
	var in struct {
		Token string `json:"token"`
	}
	if err := decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	m, err := s.Teams.Accept(r.Context(), p.User, in.Token)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"workspace": toWorkspaceJSON(m)})
}
