package api

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/auth"
)

// errAccessTokenOnManagement answers a wallet access token sent to any
// management endpoint.
var errAccessTokenOnManagement = apiwallet.Errorf(apiwallet.EFORBIDDEN,
	"wallet access tokens can only call the proxy endpoints; manage keys and tokens with a login token")

// tokenJSON is an access token as the API shows it. Token, the secret, is
// set only in the response that creates or rotates it.
type tokenJSON struct {
	ID                 string     `json:"id"`
	Name               string     `json:"name"`
	Token              string     `json:"token,omitempty"`
	Masked             string     `json:"masked"`
	Services           []string   `json:"services"`
	WorkspaceID        string     `json:"workspaceId"`
	CreatedBy          string     `json:"createdBy"`
	RateLimitPerMinute int        `json:"rateLimitPerMinute"`
	Status             string     `json:"status"`
	CreatedAt          time.Time  `json:"createdAt"`
	ExpiresAt          *time.Time `json:"expiresAt"`
	LastUsedAt         *time.Time `json:"lastUsedAt"`
	RotatedAt          *time.Time `json:"rotatedAt"`
	RevokedAt          *time.Time `json:"revokedAt"`
}

// tokenTime is t, or null for the zero time.
func tokenTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (s *Server) toTokenJSON(t *apiwallet.AccessToken) tokenJSON {
	status := "active"
	if t.Revoked() {
		status = "revoked"
	} else if t.Expired(s.Now()) {
		status = "expired"
	}
	services := t.Services
	if services == nil {
		services = []string{}
	}
	return tokenJSON{ID: t.ID, Name: t.Name, Masked: t.Masked(), Services: services, WorkspaceID: t.WorkspaceID,
		CreatedBy: t.CreatedBy, RateLimitPerMinute: t.RateLimitPerMinute, Status: status, CreatedAt: t.CreatedAt,
		ExpiresAt: tokenTime(t.ExpiresAt), LastUsedAt: tokenTime(t.LastUsedAt), RotatedAt: tokenTime(t.RotatedAt),
		RevokedAt: tokenTime(t.RevokedAt)}
}

// createToken is POST /tokens {name, services?, expires_at?,
// rate_limit_per_minute?}. The response is the only time the secret is
// shown.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request, p *Principal) error {
	var in struct {
		Name               string   `json:"name"`
		Services           []string `json:"services"`
		ExpiresAt          *string  `json:"expires_at"`
		RateLimitPerMinute *int     `json:"rate_limit_per_minute"`
	}
	if err := decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	ti := auth.TokenInput{Name: in.Name, Services: in.Services}
	if in.ExpiresAt != nil && *in.ExpiresAt != "" {
		at, err := time.Parse(time.RFC3339, *in.ExpiresAt)
		if err != nil {
			var v apiwallet.ValidationError
			v.Add("expires_at", "must be an RFC 3339 time such as 2030-01-31T12:00:00Z")
			return v.Err()
		}
		ti.ExpiresAt = at
	}
	if in.RateLimitPerMinute != nil {
		ti.RateLimitPerMinute = *in.RateLimitPerMinute
	}
	t, secret, err := s.Auth.CreateToken(r.Context(), p.Membership, ti)
	if err != nil {
		return err
	}
	out := s.toTokenJSON(t)
	out.Token = secret
	w.Header().Set("Location", "/tokens/"+t.ID)
	return writeJSON(w, http.StatusCreated, out)
}

// listTokens is GET /tokens?after=<id>&limit=<1..500>: the acting
// workspace's tokens, masked, oldest first, revoked ones included.
// nextAfter, when present, is the after value of the next page.
func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, p *Principal) error {
	limit := 100
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 499 {
			var v apiwallet.ValidationError
			v.Add("limit", "must be a whole number from 1 to 499")
			return v.Err()
		}
		limit = n
	}
	// One more than asked tells whether there is a next page.
	toks, err := s.Auth.ListTokens(r.Context(), p.Membership, r.URL.Query().Get("after"), limit+1)
	if err != nil {
		return err
	}
	out := struct {
		Tokens    []tokenJSON `json:"tokens"`
		NextAfter string      `json:"nextAfter,omitempty"`
	}{Tokens: []tokenJSON{}}
	if len(toks) > limit {
		toks = toks[:limit]
		out.NextAfter = toks[limit-1].ID
	}
	for _, t := range toks {
		out.Tokens = append(out.Tokens, s.toTokenJSON(t))
	}
	return writeJSON(w, http.StatusOK, out)
}

// revokeToken is DELETE /tokens/{id}: the token stops working at once.
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if _, err := s.Auth.RevokeToken(r.Context(), p.Membership, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// rotateToken is POST /tokens/{id}/rotate {grace_seconds?}: a new secret
// for the same token, shown once; the old one keeps working for
// grace_seconds (default a day).
func (s *Server) rotateToken(w http.ResponseWriter, r *http.Request, p *Principal) error {
	var in struct {
		GraceSeconds *int64 `json:"grace_seconds"`
	}
	// The body is optional: an empty one takes the default grace.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return bodyTooLarge(s.cfg.MaxBodyBytes)
	} else if err != nil {
		return apiwallet.Errorf(apiwallet.EINVALID, "could not read the request body")
	}
	if len(bytes.TrimSpace(body)) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(body))
		if err := decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
			return err
		}
	}
	grace := auth.DefaultRotationGrace
	if in.GraceSeconds != nil {
		if *in.GraceSeconds < 0 || *in.GraceSeconds > int64(auth.MaxRotationGrace/time.Second) {
			var v apiwallet.ValidationError
			v.Add("grace_seconds", "must be between 0 and "+strconv.FormatInt(int64(auth.MaxRotationGrace/time.Second), 10)+" (30 days)")
			return v.Err()
		}
		grace = time.Duration(*in.GraceSeconds) * time.Second
	}
	t, secret, until, err := s.Auth.RotateToken(r.Context(), p.Membership, r.PathValue("id"), grace)
	if err != nil {
		return err
	}
	out := struct {
		tokenJSON
		PreviousValidUntil time.Time `json:"previousValidUntil"`
	}{s.toTokenJSON(t), until}
	out.Token = secret
	return writeJSON(w, http.StatusOK, out)
}
