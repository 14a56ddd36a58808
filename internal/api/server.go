// Package api is the wallet's HTTP interface: the route table, middleware,
// problem+json errors and thin handlers that decode, call one domain
// service and encode.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/account"
	"github.com/apikeywallet/apiwallet/internal/alerts"
	"github.com/apikeywallet/apiwallet/internal/analytics"
	"github.com/apikeywallet/apiwallet/internal/auth"
	"github.com/apikeywallet/apiwallet/internal/billing"
	"github.com/apikeywallet/apiwallet/internal/catalog"
	"github.com/apikeywallet/apiwallet/internal/config"
	"github.com/apikeywallet/apiwallet/internal/proxy"
	"github.com/apikeywallet/apiwallet/internal/stripebilling"
	"github.com/apikeywallet/apiwallet/internal/team"
	"github.com/apikeywallet/apiwallet/internal/vault"
)

// Pinger is a dependency the health check asks.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Deps are the services the handlers call.
type Deps struct {
	Config *config.Config
	Log    *slog.Logger
	Auth   *auth.Service
	DB     Pinger
	// Redis is nil when REDIS_URL is not set.
	Redis Pinger
	// Keys stores, rotates and reveals upstream keys.
	Keys *vault.Service
	// Teams manages team workspaces, members and invitations.
	Teams *team.Service
	// Accounts serves data export, erasure and user administration.
	Accounts *account.Service
	// Proxy forwards calls to upstream services; nil disables proxying.
	Proxy *proxy.Proxy
	// Catalog is the service catalog, and CatalogStore where admin edits
	// of it are saved.
	Catalog      *catalog.Catalog
	CatalogStore apiwallet.CatalogStore
	// Billing serves plans, invoices and the business report; nil answers
	// the billing routes with 503.
	Billing *billing.Service
	// Stripe verifies Stripe webhooks and creates Checkout Sessions; nil
	// (or without STRIPE_WEBHOOK_SECRET / STRIPE_SECRET_KEY) answers 503.
	Stripe *stripebilling.Service
	// Alerts lists alerts and keeps alert settings; nil answers 503.
	Alerts *alerts.Service
	// Web serves the landing page, the dashboard and their assets (GET /,
	// /app/..., /static/...); nil serves none.
	Web http.Handler
	// Analytics answers /usage; nil answers it with 503.
	Analytics *analytics.Service
	// Registry receives the HTTP metrics; nil disables /metrics.
	Registry *prometheus.Registry
	Now      func() time.Time
}

// Server serves the wallet's HTTP API.
type Server struct {
	Deps
	cfg     *config.Config
	log     *slog.Logger
	mux     *http.ServeMux
	cookies *auth.Cookies
	metrics *metrics
	handler http.Handler
}

// handlerFunc is a handler that returns its error; one adapter turns the
// error into problem+json.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// authedFunc is a handler for an authenticated caller.
type authedFunc func(w http.ResponseWriter, r *http.Request, p *Principal) error

// Principal is the authenticated caller and the workspace the request acts
// in.
type Principal struct {
	User       *apiwallet.User
	Membership *apiwallet.Membership
	// Token is the wallet access token the caller used, on the routes
	// that take one (authedOrToken); nil for a login JWT.
	Token *apiwallet.AccessToken
}

// NewServer builds the route table.
func NewServer(d Deps) *Server {
	if d.Now == nil {
		d.Now = time.Now
	}
	s := &Server{Deps: d, cfg: d.Config, log: d.Log, mux: http.NewServeMux(),
		cookies: &auth.Cookies{Secure: d.Config.Production, Secret: d.Config.JWTSecret}}
	if d.Registry != nil && d.Config.EnableMetrics {
		d.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		s.metrics = newMetrics(d.Registry)
		d.Registry.MustRegister(&upCollector{db: d.DB, redis: d.Redis})
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{}))
	}
	s.routes()
	s.handler = s.observe(http.HandlerFunc(s.dispatch))
	return s
}

func (s *Server) routes() {
	s.handle("GET /monitoring/health", s.health)

	s.handle("POST /auth/register", s.register)
	s.handle("POST /auth/login", s.login)
	s.handle("GET /auth/me", s.authed(s.me))
	s.handle("POST /auth/logout", s.authed(s.logout))
	s.handle("POST /auth/password", s.authed(s.changePassword))
	s.handle("POST /auth/session", s.createSession)
	s.handle("GET /auth/session", s.authed(s.getSession))
	s.handle("DELETE /auth/session", s.deleteSession)

	s.handle("GET /workspaces", s.authed(s.listWorkspaces))
	s.handle("POST /workspaces", s.authed(s.createWorkspace))
	s.handle("GET /workspaces/{id}", s.authed(s.getWorkspace))
	s.handle("GET /workspaces/{id}/members", s.authed(s.listMembers))
	s.handle("PATCH /workspaces/{id}/members/{userId}", s.authed(s.updateMember))
	s.handle("DELETE /workspaces/{id}/members/{userId}", s.authed(s.removeMember))
	s.handle("POST /workspaces/{id}/invitations", s.authed(s.createInvitation))
	s.handle("GET /workspaces/{id}/invitations", s.authed(s.listInvitations))
	s.handle("DELETE /workspaces/{id}/invitations/{invitationId}", s.authed(s.revokeInvitation))
	s.handle("POST /invitations/accept", s.authed(s.acceptInvitation))

	s.handle("GET /account/export", s.authed(s.exportAccount))
	s.handle("DELETE /account", s.authed(s.deleteAccount))

	s.handle("GET /admin/users", s.authed(s.adminListUsers))
	s.handle("GET /admin/users/{id}", s.authed(s.adminGetUser))
	s.handle("PATCH /admin/users/{id}", s.authed(s.adminUpdateUser))
	s.handle("PATCH /admin/workspaces/{id}", s.authed(s.adminUpdateWorkspace))

	s.handle("POST /keys", s.authed(s.createKey))
	s.handle("GET /keys", s.authed(s.listKeys))
	s.handle("GET /keys/{id}", s.authed(s.getKey))
	s.handle("PATCH /keys/{id}", s.authed(s.updateKey))
	s.handle("DELETE /keys/{id}", s.authed(s.deleteKey))
	s.handle("POST /keys/{id}/rotate", s.authed(s.rotateKey))

	s.handle("POST /tokens", s.authed(s.createToken))
	s.handle("GET /tokens", s.authed(s.listTokens))
	s.handle("DELETE /tokens/{id}", s.authed(s.revokeToken))
	s.handle("POST /tokens/{id}/rotate", s.authed(s.rotateToken))

	s.handle("GET /audit", s.authed(s.listAudit))

	s.handle("GET /services", s.listServices)
	s.handle("GET /services/{name}", s.getService)
	s.handle("PUT /admin/services/{name}", s.authed(s.adminPutService))
	s.handle("DELETE /admin/services/{name}", s.authed(s.adminDeleteService))
	s.handle("POST /proxy", s.proxyCall)

	s.handle("GET /billing/plan", s.authed(s.getBillingPlan))
	s.handle("GET /billing/invoices/{month}", s.authed(s.getInvoice))
	s.handle("PATCH /billing/settings", s.authed(s.updateBillingSettings))
	s.handle("GET /admin/plans", s.authed(s.adminListPlans))
	s.handle("POST /admin/plans", s.authed(s.adminCreatePlan))
	s.handle("PUT /admin/plans/{id}", s.authed(s.adminUpdatePlan))
	s.handle("GET /admin/reports/business", s.authed(s.adminBusinessReport))
	s.handle("GET /plans", s.listPublicPlans)

	s.handle("GET /usage", s.authedOrToken(s.getUsage))
	s.handle("GET /usage/live", s.authedOrToken(s.getUsageLive))
	s.handle("GET /usage/recommendations", s.authed(s.getUsageRecommendations))
	s.handle("GET /usage/keys", s.authed(s.getUsageKeys))

	s.handle("POST /billing/stripe/webhook", s.stripeWebhook)
	s.handle("POST /billing/checkout", s.authed(s.createCheckout))
	s.handle("GET /billing/subscription", s.authed(s.getSubscription))
	s.handle("GET /alerts", s.authed(s.listAlerts))
	s.handle("GET /alerts/settings", s.authed(s.getAlertSettings))
	s.handle("PUT /alerts/settings", s.authed(s.putAlertSettings))

	// GET / is served by notFound (see home): a route for it would turn
	// every other method on / into a 405 instead of a proxied call.
	if s.Web != nil {
		s.mux.Handle("GET /app/", s.Web)
		s.mux.Handle("GET /static/", s.Web)
	}

	// Everything else: a problem+json 404 (or 405 for a known path).
	s.handle("/", s.notFound)
}

func (s *Server) handle(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			writeError(w, r, s.log, err)
		}
	})
}

// Route patterns of proxied calls, for logs and metrics.
const (
	proxyRoute = "ANY /proxy/{service}/{path...}"
	rootRoute  = "ANY /{path...}"
)

// dispatch sends proxied calls straight to the proxy, before the mux: the
// mux would clean the path (resolving dot segments, redirecting), and the
// proxy must see the path exactly as sent to refuse what is hostile. A
// path outside the wallet's own prefixes is a call at the root (SDKs that
// own the URL path, such as stripe-go) and is resolved once, there.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	if s.Proxy == nil {
		s.serveWallet(w, r)
		return
	}
	var err error
	if rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/proxy/"); ok {
		service, tail, _ := strings.Cut(rest, "/")
		if tail != "" || strings.HasSuffix(rest, "/") {
			tail = "/" + tail
		}
		r.Pattern = proxyRoute
		err = s.Proxy.ServeService(w, r, service, tail)
	} else if !walletPath(r.URL.Path) {
		r.Pattern = rootRoute
		err = s.Proxy.ServeRoot(w, r)
	} else {
		s.serveWallet(w, r)
		return
	}
	if err != nil {
		writeError(w, r, s.log, err)
	}
}

// serveWallet serves the wallet's own routes. A NUL character in the path
// or the query is refused here, once for every route: no text the wallet
// stores or matches may hold one (PostgreSQL's text cannot).
func (s *Server) serveWallet(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.URL.Path, "\x00") || strings.Contains(r.URL.RawQuery, "%00") {
		writeError(w, r, s.log, errNUL)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// authed authenticates the bearer token and resolves the workspace the
// request acts in before calling h. Management routes take login tokens
// only: a valid wallet access token is refused with 403.
func (s *Server) authed(h authedFunc) handlerFunc {
	return s.authenticated(false, h)
}

// authedOrToken is authed for the few read routes a wallet access token
// may call too (its own usage); the Principal then carries the token and
// acts in the token's workspace.
func (s *Server) authedOrToken(h authedFunc) handlerFunc {
	return s.authenticated(true, h)
}

func (s *Server) authenticated(tokens bool, h authedFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		token, ok := bearer(r)
		if !ok {
			// The dashboard's session cookie stands in for the header.
			// It holds a login JWT, never an access token, and a request
			// that changes anything must prove it comes from the
			// wallet's own pages (CSRF).
			cookie, found := s.cookies.Token(r)
			if !found || strings.HasPrefix(cookie, apiwallet.AccessTokenPrefix) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="apiwallet"`)
				return apiwallet.Errorf(apiwallet.EUNAUTHORIZED, "missing bearer token: send Authorization: Bearer <token>")
			}
			if err := s.cookies.CheckCSRF(r, cookie); err != nil {
				return err
			}
			token = cookie
		}
		if strings.HasPrefix(token, apiwallet.AccessTokenPrefix) {
			// Whether a token is valid decides between 401 and 403, so it
			// is looked up even where it can never be used: a bad
			// credential of any shape is a 401.
			tok, u, err := s.Auth.AuthenticateToken(r.Context(), token)
			if err != nil {
				if apiwallet.ErrorCode(err) == apiwallet.EUNAUTHORIZED {
					w.Header().Set("WWW-Authenticate", `Bearer realm="apiwallet", error="invalid_token"`)
				}
				return err
			}
			if !tokens {
				return errAccessTokenOnManagement
			}
			m, err := s.Auth.Workspace(r.Context(), u, tok.WorkspaceID)
			if err != nil {
				return err
			}
			return h(w, r, &Principal{User: u, Membership: m, Token: tok})
		}
		u, err := s.Auth.Authenticate(r.Context(), token)
		if err != nil {
			if apiwallet.ErrorCode(err) == apiwallet.EUNAUTHORIZED {
				w.Header().Set("WWW-Authenticate", `Bearer realm="apiwallet", error="invalid_token"`)
			}
			return err
		}
		m, err := s.Auth.Workspace(r.Context(), u, r.Header.Get("X-Workspace-Id"))
		if err != nil {
			return err
		}
		return h(w, r, &Principal{User: u, Membership: m})
	}
}

// bearer returns the token of an Authorization: Bearer header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// notFound answers every wallet path that no route matches (dispatch sends
// the others to the proxy). A path that a route serves with another
// method gets 405 and an Allow header instead.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) error {
	if s.home(w, r) {
		return nil
	}
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		WriteProblem(w, &Problem{
			Type: ProblemBase + "method-not-allowed", Title: http.StatusText(http.StatusMethodNotAllowed),
			Status: http.StatusMethodNotAllowed, Detail: r.Method + " is not allowed here; use " + strings.Join(allow, ", "),
			Instance: r.URL.Path, RequestID: RequestID(r.Context()),
		})
		return nil
	}
	return apiwallet.Errorf(apiwallet.ENOTFOUND, "no route for %s %s", r.Method, r.URL.Path)
}

// walletPrefixes are the first path segments of the wallet's own routes;
// a miss below them is a wallet 404, never a proxied call.
var walletPrefixes = []string{"auth", "workspaces", "invitations", "account", "admin", "keys", "tokens",
	"audit", "services", "proxy", "monitoring", "metrics", "usage", "billing", "alerts", "problems", "plans",
	// The dashboard's pages and assets.
	"app", "static"}

func walletPath(p string) bool {
	first, _, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	if p == "/" {
		return true // the wallet's own front page
	}
	for _, w := range walletPrefixes {
		if first == w {
			return true
		}
	}
	return false
}

// require fails unless the caller's role in the acting workspace grants at
// least min.
func (p *Principal) require(min apiwallet.WorkspaceRole, doing string) error {
	if !p.Membership.Role.AtLeast(min) {
		return apiwallet.Errorf(apiwallet.EFORBIDDEN, "your role in this workspace (%s) cannot %s; it needs %s or above",
			p.Membership.Role, doing, min)
	}
	return nil
}

// auditEvent starts an audit event for an action by p in its workspace.
func (p *Principal) auditEvent(r *http.Request, action, targetType, targetID string) *apiwallet.AuditEvent {
	return apiwallet.NewAuditEvent(r.Context(), p.Membership.Workspace.ID, apiwallet.ActorUser, p.User.ID,
		action, targetType, targetID)
}
