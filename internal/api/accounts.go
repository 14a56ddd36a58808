package api

import (
	"net/http"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/auth"
)

// userJSON is a user as the API shows it.
type userJSON struct {
	ID                  string    `json:"id"`
	Email               string    `json:"email"`
	Name                string    `json:"name"`
	Role                string    `json:"role"`
	Disabled            bool      `json:"disabled,omitempty"`
	PersonalWorkspaceID string    `json:"personalWorkspaceId"`
	CreatedAt           time.Time `json:"createdAt"`
}

func toUserJSON(u *apiwallet.User) userJSON {
	return userJSON{ID: u.ID, Email: u.Email, Name: u.Name, Role: string(u.Role), Disabled: u.Disabled,
		PersonalWorkspaceID: u.PersonalWorkspaceID, CreatedAt: u.CreatedAt}
}

type workspaceJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Personal  bool      `json:"personal"`
	Plan      string    `json:"plan"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"createdAt"`
}

func toWorkspaceJSON(m *apiwallet.Membership) workspaceJSON {
	return workspaceJSON{ID: m.Workspace.ID, Name: m.Workspace.Name, Personal: m.Workspace.Personal,
		Plan: m.Workspace.Plan, Role: string(m.Role), CreatedAt: m.Workspace.CreatedAt}
}

type sessionJSON struct {
	Token     string    `json:"token"`
	TokenType string    `json:"tokenType"`
	ExpiresAt time.Time `json:"expiresAt"`
	ExpiresIn int64     `json:"expiresIn"`
	User      userJSON  `json:"user"`
}

func (s *Server) toSessionJSON(ss *auth.Session) sessionJSON {
	return sessionJSON{Token: ss.Token, TokenType: "Bearer", ExpiresAt: ss.ExpiresAt,
		ExpiresIn: int64(ss.ExpiresAt.Sub(s.Now()).Seconds()), User: toUserJSON(ss.User)}
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
		Name     string `json:"name"`
	}
	if err := decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	ss, err := s.Auth.Register(r.Context(), in.Email, in.Password, in.Name)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/auth/me")
	return writeJSON(w, http.StatusCreated, s.toSessionJSON(ss))
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	ss, err := s.logIn(w, r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.toSessionJSON(ss))
}

// logIn decodes {email,password} and logs the user in: for POST
// /auth/login and the dashboard's POST /auth/session alike.
func (s *Server) logIn(w http.ResponseWriter, r *http.Request) (*auth.Session, error) {
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return nil, err
	}
	var v apiwallet.ValidationError
	if in.Email == "" {
		v.Add("email", "is required")
	}
	if in.Password == "" {
		v.Add("password", "is required")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	return s.Auth.Login(r.Context(), in.Email, in.Password, apiwallet.RequestInfoFrom(r.Context()).ClientIP)
}

func (s *Server) me(w http.ResponseWriter, r *http.Request, p *Principal) error {
	ms, err := s.Auth.Workspaces.FindMemberships(r.Context(), p.User.ID)
	if err != nil {
		return err
	}
	out := struct {
		userJSON
		Workspace  workspaceJSON   `json:"workspace"`
		Workspaces []workspaceJSON `json:"workspaces"`
	}{userJSON: toUserJSON(p.User), Workspace: toWorkspaceJSON(p.Membership), Workspaces: []workspaceJSON{}}
	for _, m := range ms {
		out.Workspaces = append(out.Workspaces, toWorkspaceJSON(m))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := s.Auth.Logout(r.Context(), p.User); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) changePassword(w http.ResponseWriter, r *http.Request, p *Principal) error {
	var in struct {
		CurrentPassword string `json:"currentPassword"`
		NewPassword     string `json:"newPassword"`
	}
	if err := decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	ss, err := s.Auth.ChangePassword(r.Context(), p.User, in.CurrentPassword, in.NewPassword)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.toSessionJSON(ss))
}

func (s *Server) listWorkspaces(w http.ResponseWriter, r *http.Request, p *Principal) error {
	ms, err := s.Auth.Workspaces.FindMemberships(r.Context(), p.User.ID)
	if err != nil {
		return err
	}
	out := []workspaceJSON{}
	for _, m := range ms {
		out = append(out, toWorkspaceJSON(m))
	}
	return writeJSON(w, http.StatusOK, map[string]any{"workspaces": out})
}
