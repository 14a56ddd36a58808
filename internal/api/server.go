// Package api is the wallet's HTTP interface: the route table, middleware,
// problem+json errors and thin handlers that decode, call one domain
// service and encode.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
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
	// table is the route table the mux was built from.
	table []Route
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
	}
	// The document is part of the binary: one that does not convert is a
	// build mistake, like a bad regexp.MustCompile.
	if _, err := loadOpenAPI(); err != nil {
		panic(err)
	}
	s.routes()
	s.handler = s.observe(http.HandlerFunc(s.dispatch))
	return s
}

// AuthKind is how a route authenticates its caller.
type AuthKind string

// Auth kinds of the route table.
const (
	// AuthPublic routes take no credential.
	AuthPublic AuthKind = "public"
	// AuthLogin routes take a login JWT, as a bearer token or in the
	// dashboard's session cookie (with its CSRF token on changes).
	AuthLogin AuthKind = "login"
	// AuthLoginOrToken routes take a wallet access token too.
	AuthLoginOrToken AuthKind = "login-or-token"
	// AuthProxy routes are the proxy's: it reads the credential wherever
	// the upstream's SDK sends its key.
	AuthProxy AuthKind = "proxy"
)

// Route is one entry of the route table: what the mux serves and what
// the OpenAPI document (openapi.yaml) describes, so a test can hold the
// two to each other.
type Route struct {
	// Pattern is the ServeMux pattern, such as "GET /keys/{id}"; "ANY"
	// stands for every method on the routes dispatch serves before the
	// mux.
	Pattern string
	Auth    AuthKind

	h       handlerFunc
	handler http.Handler
	// unregistered routes are served before the mux (dispatch) or by its
	// fallback (home), not by a pattern of their own.
	unregistered bool
}

func public(pattern string, h handlerFunc) Route {
	return Route{Pattern: pattern, Auth: AuthPublic, h: h}
}

func (s *Server) signedIn(pattern string, h authedFunc) Route {
	return Route{Pattern: pattern, Auth: AuthLogin, h: s.authed(h)}
}

func (s *Server) signedInOrToken(pattern string, h authedFunc) Route {
	return Route{Pattern: pattern, Auth: AuthLoginOrToken, h: s.authedOrToken(h)}
}

// Routes returns the route table.
func (s *Server) Routes() []Route { return slices.Clone(s.table) }

// routeTable is every operation of the HTTP API.
func (s *Server) routeTable() []Route {
	rs := []Route{
		public("GET /monitoring/health", s.health),
		public("GET /openapi.json", s.openAPI),

		public("POST /auth/register", s.register),
		public("POST /auth/login", s.login),
		s.signedIn("GET /auth/me", s.me),
		s.signedIn("POST /auth/logout", s.logout),
		s.signedIn("POST /auth/password", s.changePassword),
		public("POST /auth/session", s.createSession),
		s.signedIn("GET /auth/session", s.getSession),
		public("DELETE /auth/session", s.deleteSession),

		s.signedIn("GET /workspaces", s.listWorkspaces),
		s.signedIn("POST /workspaces", s.createWorkspace),
		s.signedIn("GET /workspaces/{id}", s.getWorkspace),
		s.signedIn("GET /workspaces/{id}/members", s.listMembers),
		s.signedIn("PATCH /workspaces/{id}/members/{userId}", s.updateMember),
		s.signedIn("DELETE /workspaces/{id}/members/{userId}", s.removeMember),
		s.signedIn("POST /workspaces/{id}/invitations", s.createInvitation),
		s.signedIn("GET /workspaces/{id}/invitations", s.listInvitations),
		s.signedIn("DELETE /workspaces/{id}/invitations/{invitationId}", s.revokeInvitation),
		s.signedIn("POST /invitations/accept", s.acceptInvitation),

		s.signedIn("GET /account/export", s.exportAccount),
		s.signedIn("DELETE /account", s.deleteAccount),

		s.signedIn("GET /admin/users", s.adminListUsers),
		s.signedIn("GET /admin/users/{id}", s.adminGetUser),
		s.signedIn("PATCH /admin/users/{id}", s.adminUpdateUser),
		s.signedIn("PATCH /admin/workspaces/{id}", s.adminUpdateWorkspace),

		s.signedIn("POST /keys", s.createKey),
		s.signedIn("GET /keys", s.listKeys),
		s.signedIn("GET /keys/{id}", s.getKey),
		s.signedIn("PATCH /keys/{id}", s.updateKey),
		s.signedIn("DELETE /keys/{id}", s.deleteKey),
		s.signedIn("POST /keys/{id}/rotate", s.rotateKey),

		s.signedIn("POST /tokens", s.createToken),
		s.signedIn("GET /tokens", s.listTokens),
		s.signedIn("DELETE /tokens/{id}", s.revokeToken),
		s.signedIn("POST /tokens/{id}/rotate", s.rotateToken),

		s.signedIn("GET /audit", s.listAudit),

		public("GET /services", s.listServices),
		public("GET /services/{name}", s.getService),
		s.signedIn("PUT /admin/services/{name}", s.adminPutService),
		s.signedIn("DELETE /admin/services/{name}", s.adminDeleteService),
		{Pattern: "POST /proxy", Auth: AuthProxy, h: s.proxyCall},

		s.signedIn("GET /billing/plan", s.getBillingPlan),
		s.signedIn("GET /billing/invoices/{month}", s.getInvoice),
		s.signedIn("PATCH /billing/settings", s.updateBillingSettings),
		s.signedIn("GET /admin/plans", s.adminListPlans),
		s.signedIn("POST /admin/plans", s.adminCreatePlan),
		s.signedIn("PUT /admin/plans/{id}", s.adminUpdatePlan),
		s.signedIn("GET /admin/reports/business", s.adminBusinessReport),
		public("GET /plans", s.listPublicPlans),

		s.signedInOrToken("GET /usage", s.getUsage),
		s.signedInOrToken("GET /usage/live", s.getUsageLive),
		s.signedIn("GET /usage/recommendations", s.getUsageRecommendations),
		s.signedIn("GET /usage/keys", s.getUsageKeys),

		public("POST /billing/stripe/webhook", s.stripeWebhook),
		s.signedIn("POST /billing/checkout", s.createCheckout),
		s.signedIn("GET /billing/subscription", s.getSubscription),
		s.signedIn("GET /alerts", s.listAlerts),
		s.signedIn("GET /alerts/settings", s.getAlertSettings),
		s.signedIn("PUT /alerts/settings", s.putAlertSettings),
	}
	if s.metrics != nil {
		rs = append(rs, Route{Pattern: "GET /metrics", Auth: AuthPublic,
			handler: promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{})})
	}
	if s.Web != nil {
		rs = append(rs,
			// GET / is served by notFound (see home): a route for it would
			// turn every other method on / into a 405 instead of a proxied
			// call.
			Route{Pattern: "GET /{$}", Auth: AuthPublic, unregistered: true},
			Route{Pattern: "GET /app/", Auth: AuthPublic, handler: s.Web},
			Route{Pattern: "GET /static/", Auth: AuthPublic, handler: s.Web})
	}
	if s.Proxy != nil {
		rs = append(rs,
			Route{Pattern: proxyRoute, Auth: AuthProxy, unregistered: true},
			Route{Pattern: rootRoute, Auth: AuthProxy, unregistered: true})
	}
	return rs
}

func (s *Server) routes() {
	s.table = s.routeTable()
	for _, rt := range s.table {
		switch {
		case rt.unregistered:
		case rt.handler != nil:
			s.mux.Handle(rt.Pattern, rt.handler)
		default:
			s.handle(rt.Pattern, rt.h)
		}
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
	"audit", "services", "proxy", "monitoring", "metrics", "openapi.json", "usage", "billing", "alerts", "problems", "plans",
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
