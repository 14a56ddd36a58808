package api

import (
	"net/http"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/auth"
)

// The dashboard's session: POST /auth/session logs in with email and
// password and sets an HttpOnly, SameSite=Strict cookie holding the login
// JWT; the JWT itself never reaches script. GET /auth/session returns the
// user and the CSRF token the pages send back in X-CSRF-Token; DELETE logs
// out, which revokes every login token of the user, the cookie's included.

type browserSessionJSON struct {
	User      userJSON  `json:"user"`
	CSRFToken string    `json:"csrfToken"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
}

func (s *Server) createSession(w http.ResponseWriter, r *http.Request) error {
	// A cross-site form could otherwise log the browser into an
	// attacker's account (login CSRF).
	if err := auth.SameOrigin(r); err != nil {
		return err
	}
	ss, err := s.logIn(w, r)
	if err != nil {
		return err
	}
	s.cookies.Set(w, ss.Token, ss.ExpiresAt)
	return writeJSON(w, http.StatusOK, browserSessionJSON{User: toUserJSON(ss.User),
		CSRFToken: s.cookies.CSRFToken(ss.Token), ExpiresAt: ss.ExpiresAt})
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request, p *Principal) error {
	token, ok := s.cookies.Token(r)
	if _, hasBearer := bearer(r); hasBearer || !ok {
		return apiwallet.Errorf(apiwallet.EUNAUTHORIZED, "no dashboard session: log in with POST /auth/session")
	}
	return writeJSON(w, http.StatusOK, browserSessionJSON{User: toUserJSON(p.User), CSRFToken: s.cookies.CSRFToken(token)})
}

// deleteSession logs out. A cookie that no longer authenticates is simply
// cleared; a valid one must come with its CSRF token, so that another site
// cannot log the user out.
func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) error {
	token, ok := s.cookies.Token(r)
	if ok {
		if u, err := s.Auth.Authenticate(r.Context(), token); err == nil {
			if err := s.cookies.CheckCSRF(r, token); err != nil {
				return err
			}
			if err := s.Auth.Logout(r.Context(), u); err != nil {
				return err
			}
		} else if apiwallet.ErrorCode(err) != apiwallet.EUNAUTHORIZED {
			return err
		}
	}
	s.cookies.Clear(w)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// home serves GET / to a browser: the landing page, or the dashboard when
// logged in (the page asks GET /auth/session). It reports false for
// anything else, such as an app's call with credentials (an SDK that owns
// the URL path calling its upstream's root), which goes where every other
// unknown path goes.
func (s *Server) home(w http.ResponseWriter, r *http.Request) bool {
	if s.Web == nil || r.URL.Path != "/" || (r.Method != http.MethodGet && r.Method != http.MethodHead) ||
		r.Header.Get("Authorization") != "" {
		return false
	}
	r.Pattern = "GET /{$}"
	s.Web.ServeHTTP(w, r)
	return true
}
