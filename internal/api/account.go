package api

import (
	"net/http"
)

// exportAccount answers GET /account/export: everything the wallet holds
// about the caller, as one JSON document (GDPR access and portability).
func (s *Server) exportAccount(w http.ResponseWriter, r *http.Request, p *Principal) error {
	out, err := s.Accounts.Export(r.Context(), p.User)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Disposition", `attachment; filename="apiwallet-export-`+p.User.ID+`.json"`)
	return writeJSON(w, http.StatusOK, out)
}

// deleteAccount answers DELETE /account {password}: erasure, once the
// password is entered again.
func (s *Server) deleteAccount(w http.ResponseWriter, r *http.Request, p *Principal) error {
	var in struct {
		Password string `json:"password"`
	}
	if err := decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	d, err := s.Accounts.Delete(r.Context(), p.User, in.Password)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct {
		Deleted           bool     `json:"deleted"`
		DeletedWorkspaces []string `json:"deletedWorkspaces"`
		LeftWorkspaces    []string `json:"leftWorkspaces"`
	}{true, d.DeletedWorkspaces, d.LeftWorkspaces})
}
