package proxy

import (
	"context"
	"crypto/sha256"
	"net/http"
	"strings"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/catalog"
)

// caller is an authenticated credential, cached.
type caller struct {
	workspaceID string
	userID      string
	token       *apiwallet.AccessToken // nil for a login JWT
}

func (c *caller) actor() (string, string) {
	if c.token != nil {
		return apiwallet.ActorToken, c.token.ID
	}
	return apiwallet.ActorUser, c.userID
}

// credential finds the wallet credential the client sent, wherever its SDK
// puts an API key: Authorization (Bearer, or Basic with the key as user),
// x-api-key, or the service's own query parameter.
//
// inQuery reports that it came as the query parameter, which must then be
// dropped before the call is forwarded.
func credential(r *http.Request, svc *catalog.Service) (raw string, inQuery bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, v, _ := strings.Cut(h, " ")
		switch {
		case strings.EqualFold(scheme, "Bearer"):
			return strings.TrimSpace(v), false
		case strings.EqualFold(scheme, "Basic"):
			if u, _, ok := r.BasicAuth(); ok {
				return u, false
			}
		}
	}
	if v := r.Header.Get("X-Api-Key"); v != "" {
		return v, false
	}
	if svc != nil && svc.Auth.Kind == catalog.AuthHeader {
		if v := r.Header.Get(svc.Auth.Name); v != "" {
			return v, false
		}
	}
	if svc != nil && svc.Auth.Kind == catalog.AuthQuery && r.URL.RawQuery != "" {
		if v := r.URL.Query().Get(svc.Auth.Name); v != "" {
			return v, true
		}
	}
	return "", false
}

// authenticate resolves the credential, from the cache when it can. The
// cache is keyed by a hash of the credential and the workspace asked
// for, so no credential is kept in memory longer than its request.
func (p *Proxy) authenticate(ctx context.Context, raw, workspaceHeader string) (*caller, error) {
	if raw == "" {
		return nil, errNoCredential
	}
	h := sha256.New()
	h.Write([]byte(raw))
	h.Write([]byte{0})
	h.Write([]byte(workspaceHeader))
	var k [32]byte
	h.Sum(k[:0])
	now := p.now().UnixNano()
	// A token that expires while cached is looked up again (and refused):
	// no write marks its expiry for the caches.
	if c, ok := p.callers.get(k, now); ok && (c.token == nil || !c.token.Expired(time.Unix(0, now))) {
		return c, nil
	}
	epoch := p.epoch.Load()
	var c *caller
	if strings.HasPrefix(raw, apiwallet.AccessTokenPrefix) {
		tok, u, err := p.auth.AuthenticateToken(ctx, raw)
		if err != nil {
			return nil, err
		}
		c = &caller{workspaceID: tok.WorkspaceID, userID: u.ID, token: tok}
	} else {
		u, err := p.auth.Authenticate(ctx, raw)
		if err != nil {
			return nil, err
		}
		m, err := p.auth.Workspace(ctx, u, workspaceHeader)
		if err != nil {
			if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND {
				return nil, refusal(apiwallet.ENOTFOUND, "workspace_not_found", "", "workspace not found")
			}
			return nil, err
		}
		if !m.Role.AtLeast(apiwallet.WorkspaceMember) {
			return nil, refusal(apiwallet.EFORBIDDEN, "permission_denied", "",
				"your role in this workspace (viewer) cannot call upstream APIs")
		}
		c = &caller{workspaceID: m.Workspace.ID, userID: u.ID}
	}
	p.callers.put(k, c, epoch, now)
	return c, nil
}
