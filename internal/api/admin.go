package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/account"
)

// adminUserJSON is a user as administrators see it: with its personal
// workspace's plan.
type adminUserJSON struct {
	userJSON
	// Disabled is always shown here, false included.
	Disabled     bool   `json:"disabled"`
	TokenVersion int64  `json:"tokenVersion"`
	Plan         string `json:"plan,omitempty"`
}

func toAdminUserJSON(u *apiwallet.User, ws *apiwallet.Workspace) adminUserJSON {
	out := adminUserJSON{userJSON: toUserJSON(u), Disabled: u.Disabled, TokenVersion: u.TokenVersion}
	if ws != nil {
		out.Plan = ws.Plan
	}
	return out
}

func (s *Server) adminListUsers(w http.ResponseWriter, r *http.Request, p *Principal) error {
	q := r.URL.Query()
	f := apiwallet.UserFilter{Email: q.Get("email"), After: q.Get("after"), Limit: 50}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return &apiwallet.Error{Code: apiwallet.EINVALID, Message: "the request has invalid fields",
				Fields: []apiwallet.FieldError{{Field: "limit", Detail: "must be a whole number from 1 to 500"}}}
		}
		f.Limit = n
	}
	users, err := s.Accounts.FindUsers(r.Context(), p.User, f)
	if err != nil {
		return err
	}
	out := struct {
		Users []adminUserJSON `json:"users"`
		// Next is the cursor for the following page (?after=), empty on
		// the last one.
		Next string `json:"next,omitempty"`
	}{Users: []adminUserJSON{}}
	for _, u := range users {
		out.Users = append(out.Users, toAdminUserJSON(u, nil))
	}
	if len(users) == f.Limit {
		out.Next = users[len(users)-1].ID
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) adminGetUser(w http.ResponseWriter, r *http.Request, p *Principal) error {
	u, ws, err := s.Accounts.FindUser(r.Context(), p.User, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toAdminUserJSON(u, ws))
}

func (s *Server) adminUpdateUser(w http.ResponseWriter, r *http.Request, p *Principal) error {
	// Refused before the body is read: a non-admin learns nothing of
	// what the route accepts.
	if err := requireAdmin(p); err != nil {
		return err
	}
	var in struct {
		Role     *apiwallet.Role `json:"role"`
		Disabled *bool           `json:"disabled"`
		Plan     *string         `json:"plan"`
	}
	if err := decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	u, ws, err := s.Accounts.UpdateUser(r.Context(), p.User, r.PathValue("id"),
		account.UserChange{Role: in.Role, Disabled: in.Disabled, Plan: in.Plan})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toAdminUserJSON(u, ws))
}

func (s *Server) adminUpdateWorkspace(w http.ResponseWriter, r *http.Request, p *Principal) error {
	// Refused before the body is read: a non-admin learns nothing of
	// what the route accepts.
	if err := requireAdmin(p); err != nil {
		return err
	}
	var in struct {
		Plan string `json:"plan"`
	}
	if err := decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	ws, err := s.Accounts.SetWorkspacePlan(r.Context(), p.User, r.PathValue("id"), in.Plan)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct {
		ID        string    `json:"id"`
		Name      string    `json:"name"`
		Personal  bool      `json:"personal"`
		Plan      string    `json:"plan"`
		CreatedAt time.Time `json:"createdAt"`
	}{ws.ID, ws.Name, ws.Personal, ws.Plan, ws.CreatedAt})
}
