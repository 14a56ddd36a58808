package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/catalog"
	"github.com/apikeywallet/apiwallet/internal/quota"
	"github.com/apikeywallet/apiwallet/internal/ratelimit"
	"github.com/apikeywallet/apiwallet/internal/routing"
	"github.com/apikeywallet/apiwallet/internal/upstream"
)

// Authenticator turns a credential into who is calling.
type Authenticator interface {
	Authenticate(ctx context.Context, jwt string) (*apiwallet.User, error)
	AuthenticateToken(ctx context.Context, raw string) (*apiwallet.AccessToken, *apiwallet.User, error)
	Workspace(ctx context.Context, u *apiwallet.User, requested string) (*apiwallet.Membership, error)
}

// Keys lists a workspace's keys and reveals their secrets.
type Keys interface {
	FindKeys(ctx context.Context, f apiwallet.KeyFilter) ([]*apiwallet.Key, error)
	Reveal(ctx context.Context, workspaceID, keyID string) ([]byte, error)
	TouchKey(ctx context.Context, workspaceID, id string, at time.Time) error
	KeySetVersion(ctx context.Context, workspaceID, service string) (int64, error)
}

// UsageCounter tells how many calls each key made since a time, so that
// per-key quotas survive restarts.
type UsageCounter interface {
	KeyUsageSince(ctx context.Context, workspaceID, service string, since time.Time) (map[string]int64, error)
}

// Recorder takes one usage record per proxied call, asynchronously.
type Recorder interface {
	Record(u apiwallet.Usage)
}

// Options tunes the proxy.
type Options struct {
	// MaxBodyBytes bounds a request body (default 10 MiB).
	MaxBodyBytes int64
	// RetryBufferBytes is the largest body kept in memory so that it can
	// be sent again to another key (default 1 MiB); larger bodies stream
	// and get one attempt.
	RetryBufferBytes int64
	// UpstreamTimeout bounds the wait for an upstream's response headers
	// (default 60 s); streaming bodies are not cut.
	UpstreamTimeout time.Duration
	// CacheTTL bounds how long credentials, key sets and secrets are kept
	// without an invalidation (default 30 s).
	CacheTTL time.Duration
	// FallbackKeys are the operator's <SERVICE>_FALLBACK_KEY values.
	FallbackKeys map[string]string
	// RatePerMinute is each workspace's proxy rate limit
	// (MAX_REQUESTS_PER_MINUTE); 0 disables it.
	RatePerMinute int
}

// Proxy forwards calls to upstream services.
type Proxy struct {
	catalog   *catalog.Catalog
	router    *routing.Router
	auth      Authenticator
	keys      Keys
	counter   UsageCounter
	recorder  Recorder
	limiter   ratelimit.Limiter
	quota     quota.Counter
	plans     quota.Plans
	alerts    QuarantineAlerter
	policies  Policies
	policy    *ttlCache[string, policy]
	audit     apiwallet.AuditStore
	log       *slog.Logger
	opts      Options
	transport *upstream.Client
	epoch     *Epoch
	now       func() time.Time

	callers *ttlCache[[32]byte, *caller]
	keysets *ttlCache[string, *keySetEntry]
	secrets *ttlCache[string, []byte]
	used    *usedCounters
	loads   singleflight.Group
	touches *toucher
	bufs    sync.Pool
}

// Deps are what New needs.
type Deps struct {
	Catalog  *catalog.Catalog
	Router   *routing.Router
	Auth     Authenticator
	Keys     Keys
	Counter  UsageCounter // optional
	Recorder Recorder
	Audit    apiwallet.AuditStore
	Limiter  ratelimit.Limiter // optional
	Log      *slog.Logger
	Epoch    *Epoch
	Now      func() time.Time
	// Quota counts each workspace's calls against its plan's monthly
	// quota, by Plans; nil (or nil Plans) disables quotas.
	Quota quota.Counter
	Plans quota.Plans
	// Alerts is told when a key is quarantined; optional.
	Alerts QuarantineAlerter
	// Policies gives each workspace's routing setting and rate limit; nil
	// means premium routing for everyone at Options.RatePerMinute.
	Policies Policies
}

// Policies reads what a workspace's plan and settings say about its calls
// (*billing.Service).
type Policies interface {
	// WorkspacePolicy reports whether the workspace routes with cost
	// strategies and cross-key fallback (without it a call goes to the
	// first usable key in priority order, one attempt), and its plan's
	// calls per minute (0: the default).
	WorkspacePolicy(ctx context.Context, workspaceID string) (premium bool, ratePerMinute int, err error)
}

// policy is a workspace's cached Policies answer.
type policy struct {
	premium bool
	rate    int
}

// QuarantineAlerter raises the key_quarantined alert (*alerts.Service).
type QuarantineAlerter interface {
	KeyQuarantined(ctx context.Context, workspaceID, keyID, reason string)
}

// New returns a Proxy. Call Close to stop its background work.
func New(d Deps, o Options) *Proxy {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 10 << 20
	}
	if o.RetryBufferBytes <= 0 {
		o.RetryBufferBytes = 1 << 20
	}
	if o.UpstreamTimeout <= 0 {
		o.UpstreamTimeout = 60 * time.Second
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = 30 * time.Second
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Epoch == nil {
		d.Epoch = &Epoch{}
	}
	p := &Proxy{
		catalog: d.Catalog, router: d.Router, auth: d.Auth, keys: d.Keys, counter: d.Counter,
		recorder: d.Recorder, limiter: d.Limiter, audit: d.Audit, log: d.Log, opts: o, epoch: d.Epoch, now: d.Now,
		quota: d.Quota, plans: d.Plans, alerts: d.Alerts, policies: d.Policies,
		transport: upstream.New(upstream.Options{ResponseHeaderTimeout: o.UpstreamTimeout}),
	}
	p.callers = newTTLCache[[32]byte, *caller](p.epoch, o.CacheTTL, 100_000)
	p.policy = newTTLCache[string, policy](p.epoch, o.CacheTTL, 100_000)
	p.keysets = newTTLCache[string, *keySetEntry](p.epoch, o.CacheTTL, 100_000)
	p.secrets = newTTLCache[string, []byte](p.epoch, o.CacheTTL, 200_000)
	p.used = &usedCounters{}
	p.touches = newToucher(p)
	p.bufs.New = func() any { b := make([]byte, 32<<10); return &b }
	return p
}

// Epoch returns the invalidation counter the proxy's caches follow.
func (p *Proxy) Epoch() *Epoch { return p.epoch }

// Close flushes key-use summaries and closes idle upstream connections.
func (p *Proxy) Close() {
	p.touches.close()
	p.transport.Close()
}

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

// refusal is a wallet-made error response on a proxy route.
type refusal struct {
	status int
	code   string // machine code, also in the service's own error member
	msg    string
	slug   string // problem type suffix
	retry  int    // Retry-After seconds
	extra  map[string]any
}

func (e *refusal) Error() string { return e.msg }

var (
	errNoCredential = &refusal{status: 401, code: "missing_api_key", slug: "unauthorized",
		msg: "no wallet credential: send a wallet access token (awk_…) or a login JWT as the API key"}
	errBadCredential = &refusal{status: 401, code: "invalid_api_key", slug: "unauthorized",
		msg: "invalid, expired or revoked wallet credential"}
)

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

// authenticate resolves the credential, from the cache when it can.
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
	if c, ok := p.callers.get(k, now); ok {
		return c, nil
	}
	epoch := p.epoch.Load()
	var c *caller
	if strings.HasPrefix(raw, apiwallet.AccessTokenPrefix) {
		tok, u, err := p.auth.AuthenticateToken(ctx, raw)
		if err != nil {
			if apiwallet.ErrorCode(err) == apiwallet.EUNAUTHORIZED {
				return nil, errBadCredential
			}
			return nil, err
		}
		c = &caller{workspaceID: tok.WorkspaceID, userID: u.ID, token: tok}
	} else {
		u, err := p.auth.Authenticate(ctx, raw)
		if err != nil {
			if apiwallet.ErrorCode(err) == apiwallet.EUNAUTHORIZED {
				return nil, errBadCredential
			}
			return nil, err
		}
		m, err := p.auth.Workspace(ctx, u, workspaceHeader)
		if err != nil {
			if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND {
				return nil, &refusal{status: 404, code: "workspace_not_found", slug: "not-found", msg: "workspace not found"}
			}
			return nil, err
		}
		if !m.Role.AtLeast(apiwallet.WorkspaceMember) {
			return nil, &refusal{status: 403, code: "permission_denied", slug: "forbidden",
				msg: "your role in this workspace (viewer) cannot call upstream APIs"}
		}
		c = &caller{workspaceID: m.Workspace.ID, userID: u.ID}
	}
	p.callers.put(k, c, epoch, now)
	return c, nil
}

// request is one call to forward, however it arrived.
type request struct {
	svc        catalog.Service
	method     string
	escPath    string // escaped, below the service's base path
	rawQuery   string
	header     http.Header
	body       io.ReadCloser
	length     int64
	credential string // to strip from the query, if it came there
	sent       bool   // an attempt reached an upstream
}

// ServeService serves ANY /proxy/{service}/{path...}. rest is the escaped
// path after the service name.
func (p *Proxy) ServeService(w http.ResponseWriter, r *http.Request, service, rest string) {
	start := p.now()
	svc, ok := p.catalog.Get(service)
	if !ok {
		p.refuse(w, r, nil, &refusal{status: 404, code: "unknown_service", slug: "not-found",
			msg: fmt.Sprintf("no service %q in the catalog; GET /services lists them", service)})
		return
	}
	_, esc, ok := safePath(rest)
	if !ok {
		p.refuse(w, r, &svc, &refusal{status: 400, code: "invalid_path", slug: "validation",
			msg: "the path must stay below the service's base URL: no dot segments, encoded slashes, backslashes or control characters"})
		return
	}
	p.serve(w, r, start, &request{svc: svc, method: r.Method, escPath: esc, rawQuery: r.URL.RawQuery,
		header: r.Header, body: r.Body, length: r.ContentLength})
}

// rootErrors gives the error member of refusals at the root made before
// the service is known (a bad or revoked credential, an ambiguous call):
// the {"error":{"type","code","message"}} shape that Stripe's and OpenAI's
// SDKs read, since stripe-go is the SDK that calls the root.
var rootErrors = &catalog.Service{ErrorShape: catalog.ShapeStripe}

// ServeRoot serves a request at a path that is none of the wallet's own
// routes: it goes to the service named by a "<service>." host prefix, or
// to the one service the credential is scoped to.
func (p *Proxy) ServeRoot(w http.ResponseWriter, r *http.Request) {
	start := p.now()
	name := ""
	if host, _, err := net.SplitHostPort(r.Host); err == nil || r.Host != "" {
		if host == "" {
			host = r.Host
		}
		if first, _, ok := strings.Cut(host, "."); ok {
			if _, known := p.catalog.Get(first); known {
				name = first
			}
		}
	}
	if name == "" {
		raw, _ := credential(r, nil)
		if raw == "" {
			// Without a credential this is not a proxy call: a plain 404.
			p.refuse(w, r, nil, &refusal{status: 404, code: "not_found", slug: "not-found",
				msg: fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)})
			return
		}
		c, err := p.authenticate(r.Context(), raw, r.Header.Get("X-Workspace-Id"))
		if err != nil {
			p.refuse(w, r, rootErrors, err)
			return
		}
		if c.token != nil && len(c.token.Services) == 1 {
			name = c.token.Services[0]
		}
	}
	if name == "" {
		p.refuse(w, r, rootErrors, &refusal{status: 400, code: "service_required", slug: "service-required",
			msg: "name the upstream service: call /proxy/{service}/…, use a wallet access token scoped to one service, " +
				"or send the request to <service>.<wallet host>"})
		return
	}
	svc, ok := p.catalog.Get(name)
	if !ok {
		p.refuse(w, r, rootErrors, &refusal{status: 404, code: "unknown_service", slug: "not-found",
			msg: fmt.Sprintf("no service %q in the catalog", name)})
		return
	}
	_, esc, ok := safePath(r.URL.EscapedPath())
	if !ok {
		p.refuse(w, r, &svc, &refusal{status: 400, code: "invalid_path", slug: "validation",
			msg: "the path must stay below the service's base URL"})
		return
	}
	p.serve(w, r, start, &request{svc: svc, method: r.Method, escPath: esc, rawQuery: r.URL.RawQuery,
		header: r.Header, body: r.Body, length: r.ContentLength})
}

// attempt is one try with one key.
type attempt struct {
	keyID  string
	status int // 0: no response
	reason string
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, start time.Time, req *request) {
	ctx := r.Context()
	svc := &req.svc
	raw, inQuery := credential(r, svc)
	c, err := p.authenticate(ctx, raw, r.Header.Get("X-Workspace-Id"))
	if err != nil {
		p.refuse(w, r, svc, err)
		return
	}
	if c.token != nil && !c.token.Allows(svc.Name) {
		p.refuse(w, r, svc, &refusal{status: 403, code: "service_not_allowed", slug: "forbidden",
			msg: fmt.Sprintf("this wallet access token is not scoped to %s", svc.Name)})
		return
	}
	pol, err := p.workspacePolicy(ctx, c.workspaceID)
	if err != nil {
		p.refuse(w, r, svc, err)
		return
	}
	if err := p.rateLimit(ctx, w, c, pol.rate); err != nil {
		p.refuse(w, r, svc, err)
		return
	}
	// The call is counted against the monthly quota before it leaves, and
	// refunded if it never reached an upstream.
	reservation, err := p.reserve(ctx, w, c)
	if err != nil {
		p.refuse(w, r, svc, err)
		return
	}
	defer func() { p.settle(ctx, reservation, req.sent) }()
	strategy := routing.StrategyCost
	if s := r.Header.Get("X-Wallet-Strategy"); s != "" {
		st, ok := routing.ParseStrategy(s)
		if !ok {
			p.refuse(w, r, svc, &refusal{status: 400, code: "invalid_strategy", slug: "validation",
				msg: "X-Wallet-Strategy must be one of cost, priority, round-robin, least-used"})
			return
		}
		strategy = st
	}
	attempts, premium := routing.MaxAttempts, pol.premium
	if !premium {
		strategy, attempts = routing.StrategyPriority, 1
	}
	if inQuery {
		req.credential = raw
	}

	// Body: kept in memory when small enough to be sent again to another
	// key; streamed (one attempt) when larger.
	var body []byte
	var streamed *clientBody // the client's body, when it streams
	canRetry := true
	if req.length > p.opts.MaxBodyBytes {
		p.refuse(w, r, svc, p.tooLarge())
		return
	}
	if req.body != nil && req.body != http.NoBody && req.length != 0 {
		limited := http.MaxBytesReader(w, req.body, p.opts.MaxBodyBytes)
		buf := bytes.NewBuffer(make([]byte, 0, min(max(req.length, 512), p.opts.RetryBufferBytes+1)))
		n, err := io.CopyN(buf, limited, p.opts.RetryBufferBytes+1)
		if err != nil && !errors.Is(err, io.EOF) {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				p.refuse(w, r, svc, p.tooLarge())
				return
			}
			p.refuse(w, r, svc, &refusal{status: 400, code: "body_read_failed", slug: "validation", msg: "could not read the request body"})
			return
		}
		if n > p.opts.RetryBufferBytes {
			canRetry = false
			streamed = &clientBody{r: io.MultiReader(bytes.NewReader(buf.Bytes()), limited), c: limited}
			req.body = streamed
		} else {
			body = buf.Bytes()
		}
	}
	idem := r.Header.Get("Idempotency-Key") != ""

	ks, err := p.keySet(ctx, c.workspaceID, svc)
	if err != nil {
		p.refuse(w, r, svc, err)
		return
	}
	now := p.now()
	var planBuf [routing.MaxAttempts]routing.Candidate
	plan := ks.Plan(planBuf[:0], strategy, now, attempts)
	fallback := p.opts.FallbackKeys[svc.Name]
	if !premium && len(plan) > 0 {
		fallback = "" // the operator's key is a fallback too
	}
	if len(plan) == 0 && fallback == "" {
		p.noKey(w, r, svc, ks, nil, now)
		return
	}

	var (
		tried       []attempt
		upstreamDur time.Duration
		last        *http.Response
		lastKey     string
		lastSecret  []byte
	)
	n := len(plan)
	if fallback != "" {
		n++
	}
	for i := 0; i < n; i++ {
		if i > 0 && !canRetry {
			break // the streamed body is spent
		}
		var keyID string
		var secret []byte
		if i < len(plan) {
			keyID = plan[i].ID
			secret, err = p.secret(ctx, c.workspaceID, keyID)
			if err != nil {
				// A key that does not decrypt is never used: it is
				// quarantined and the failure names it, not its secret.
				p.log.ErrorContext(ctx, "proxy: key does not decrypt", "key_id", keyID, "workspace_id", c.workspaceID, "err", err)
				if p.router.Quarantine(keyID, "undecryptable", now) {
					p.auditKey(ctx, c, keyID, "key.quarantine", map[string]string{"reason": "undecryptable"})
				}
				tried = append(tried, attempt{keyID: keyID, reason: "undecryptable"})
				continue
			}
		} else {
			keyID, secret = "fallback", []byte(fallback)
		}
		if last != nil {
			// A retry: the earlier answer is not delivered.
			last.Body.Close()
			last = nil
		}
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		} else if req.body != nil && req.body != http.NoBody {
			rd = req.body
		}
		out := p.outbound(req, rd, secret)
		t0 := time.Now()
		res, err := p.transport.Do(ctx, out)
		upstreamDur += time.Since(t0)
		now = p.now()
		more := i+1 < n && canRetry
		if err != nil && streamed != nil && streamed.failed() != nil {
			// The client's own body failed (too large, or cut off): not
			// the key's fault, and the client's error to hear.
			tried = append(tried, attempt{keyID: keyID, reason: "client_body"})
			p.record(c, svc, ks, req, strategy, tried, keyID, 413, true, start, upstreamDur, 0, 0)
			var mbe *http.MaxBytesError
			if errors.As(streamed.failed(), &mbe) {
				p.refuse(w, r, svc, p.tooLarge())
			} else if ctx.Err() == nil {
				p.refuse(w, r, svc, &refusal{status: 400, code: "body_read_failed", slug: "validation", msg: "could not read the request body"})
			}
			return
		}
		if err != nil && ctx.Err() != nil {
			// The client went away: not the key's fault, and nobody to
			// answer. The call is recorded as failed.
			req.sent = req.sent || !isDialError(err)
			tried = append(tried, attempt{keyID: keyID, reason: "client_gone"})
			p.record(c, svc, ks, req, strategy, tried, keyID, 0, true, start, upstreamDur, 0, 0)
			return
		}
		if err != nil {
			reached := !isDialError(err)
			req.sent = req.sent || reached
			if keyID != "fallback" {
				p.router.ReportFailure(keyID, 0, nil, now)
			}
			tried = append(tried, attempt{keyID: keyID, reason: "network_error"})
			if more && routing.Retryable(req.method, 0, body != nil, idem, err, reached) {
				continue
			}
			if ctx.Err() != nil {
				return // the client went away
			}
			p.record(c, svc, ks, req, strategy, tried, keyID, 502, true, start, upstreamDur, 0, 0)
			p.noKey(w, r, svc, ks, tried, now)
			return
		}
		req.sent = true
		tried = append(tried, attempt{keyID: keyID, status: res.StatusCode})
		last, lastKey, lastSecret = res, keyID, secret
		st := res.StatusCode
		switch {
		case st == 429 || st >= 500:
			if keyID != "fallback" {
				p.router.ReportFailure(keyID, st, res.Header, now)
			}
			if more && routing.Retryable(req.method, st, body != nil, idem, nil, true) {
				continue
			}
		case st == 401 || st == 402 || st == 403:
			if keyID != "fallback" {
				v := p.router.ReportFailure(keyID, st, res.Header, now)
				if v.NewlyQuarantined {
					p.log.WarnContext(ctx, "proxy: upstream refused a key; quarantined", "key_id", keyID,
						"service", svc.Name, "status", st, "reason", string(v.Reason))
					p.auditKey(ctx, c, keyID, "key.quarantine", map[string]string{"reason": string(v.Reason), "status": strconv.Itoa(st)})
					if p.alerts != nil {
						p.alerts.KeyQuarantined(ctx, c.workspaceID, keyID, string(v.Reason))
					}
				}
			}
			// The upstream did not act on a request it refused to
			// authenticate, so another key may try it.
			if more {
				continue
			}
		default:
			if keyID != "fallback" {
				p.router.ReportSuccess(keyID, res.Header, now)
			}
		}
		break
	}
	if last == nil {
		p.record(c, svc, ks, req, strategy, tried, "", 503, true, start, upstreamDur, 0, 0)
		p.noKey(w, r, svc, ks, tried, p.now())
		return
	}
	p.deliver(w, r, c, svc, req, ks, strategy, tried, last, lastKey, lastSecret, start, upstreamDur, int64(len(body)))
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// outbound builds the upstream request: the service's base URL and path,
// the client's forwardable headers, and the key.
func (p *Proxy) outbound(req *request, body io.Reader, secret []byte) *http.Request {
	base := req.svc.URL()
	u := &url.URL{Scheme: base.Scheme, Host: base.Host}
	u.Path = strings.TrimSuffix(base.Path, "/") + mustUnescape(req.escPath)
	u.RawPath = strings.TrimSuffix(base.EscapedPath(), "/") + req.escPath
	u.RawQuery = req.rawQuery
	if req.credential != "" {
		u.RawQuery = dropQueryValue(u.RawQuery, req.credential)
	}
	out := &http.Request{
		Method:     req.method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header, len(req.header)+2),
		Host:       base.Host,
	}
	extra := ""
	if req.svc.Auth.Kind == catalog.AuthHeader {
		extra = req.svc.Auth.Name
	}
	copyRequestHeaders(out.Header, req.header, extra)
	if body != nil {
		out.Body = io.NopCloser(body)
		out.ContentLength = req.length
		if br, ok := body.(*bytes.Reader); ok {
			out.ContentLength = int64(br.Len())
			snapshot := *br
			out.GetBody = func() (io.ReadCloser, error) { r := snapshot; return io.NopCloser(&r), nil }
		}
	}
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = noUserAgent
	}
	req.svc.Inject(out, string(secret))
	return out
}

// noUserAgent keeps the upstream client from adding a default User-Agent.
// It is shared by every call, and nothing writes to it.
var noUserAgent = []string{""}

func mustUnescape(s string) string {
	p, err := url.PathUnescape(s)
	if err != nil {
		return s
	}
	return p
}

// dropQueryValue removes parameters whose value is v (the wallet
// credential sent in the query).
func dropQueryValue(rawQuery, v string) string {
	parts := strings.Split(rawQuery, "&")
	keep := parts[:0]
	for _, part := range parts {
		_, val, _ := strings.Cut(part, "=")
		if uv, err := url.QueryUnescape(val); err == nil && uv == v {
			continue
		}
		keep = append(keep, part)
	}
	return strings.Join(keep, "&")
}

// rateLimit applies the workspace's limit and, when the token sets one, the
// token's; it sets the RateLimit-* headers of the tighter one. A refusal
// names the limit that fired, its window, what remains and when it resets.
func (p *Proxy) rateLimit(ctx context.Context, w http.ResponseWriter, c *caller, rate int) error {
	if rate <= 0 {
		rate = p.opts.RatePerMinute
	}
	if p.limiter == nil || rate <= 0 {
		return nil
	}
	type check struct {
		name, key string
		limit     ratelimit.Limit
	}
	checks := [2]check{{"workspace-rate", "rl:ws:" + c.workspaceID, ratelimit.PerMinute(rate)}}
	n := 1
	if c.token != nil && c.token.RateLimitPerMinute > 0 {
		checks[1] = check{"token-rate", "rl:tok:" + c.token.ID, ratelimit.PerMinute(c.token.RateLimitPerMinute)}
		n = 2
	}
	var shown ratelimit.Decision
	for i := range n {
		d, err := p.limiter.Allow(ctx, checks[i].key, checks[i].limit, 1)
		if err != nil {
			return err
		}
		if i == 0 || d.Remaining < shown.Remaining {
			shown = d
		}
		if !d.Allowed {
			setRateHeaders(w.Header(), d)
			secs := int((d.RetryAfter + time.Second - 1) / time.Second)
			w.Header().Set("X-Wallet-Limit", checks[i].name)
			return &refusal{status: 429, code: "rate_limit_exceeded", slug: "rate-limited", retry: secs,
				msg: fmt.Sprintf("%s limit of %d calls per minute reached; retry in %d s", checks[i].name, d.Limit, secs),
				extra: map[string]any{"limit": checks[i].name, "window": "1m", "max": d.Limit,
					"remaining": d.Remaining, "resetSeconds": int(d.ResetAfter.Seconds())}}
		}
	}
	setRateHeaders(w.Header(), shown)
	return nil
}

func setRateHeaders(h http.Header, d ratelimit.Decision) {
	setHeaders(h, "Ratelimit-Limit", strconv.Itoa(d.Limit),
		"Ratelimit-Remaining", strconv.Itoa(d.Remaining),
		"Ratelimit-Reset", strconv.Itoa(int((d.ResetAfter+time.Second-1)/time.Second)))
}

// setHeaders sets each header (named in canonical form) to its value. It
// makes one allocation for all the values where Header.Set makes one
// each: it runs on every proxied call.
func setHeaders(h http.Header, kv ...string) {
	vals := make([]string, len(kv)/2)
	for i := range vals {
		vals[i] = kv[2*i+1]
		h[kv[2*i]] = vals[i : i+1 : i+1]
	}
}

// reserve counts the call against the workspace's monthly plan quota. A
// hard stop answers 429 quota-exceeded, naming the limit, the numbers,
// when it resets and how to upgrade.
func (p *Proxy) reserve(ctx context.Context, w http.ResponseWriter, c *caller) (quota.Reservation, error) {
	if p.quota == nil || p.plans == nil {
		return quota.Reservation{}, nil
	}
	included, hardStop, err := p.plans.PlanFor(ctx, c.workspaceID)
	if err != nil {
		return quota.Reservation{}, err
	}
	now := p.now()
	res, err := p.quota.Reserve(ctx, c.workspaceID, now, included, hardStop)
	var ex *quota.Exceeded
	if !errors.As(err, &ex) {
		return res, err
	}
	secs := max(int(ex.ResetAt.Sub(now).Seconds()+0.999), 1)
	w.Header().Set("X-Wallet-Limit", "plan-quota")
	return res, &refusal{status: 429, code: "quota_exceeded", slug: "quota-exceeded", retry: secs,
		msg: fmt.Sprintf("this workspace's plan includes %d calls a month and %d are used; the quota resets at %s. "+
			"Upgrade the plan to keep calling: GET /billing/plan shows it, POST /billing/checkout changes it",
			ex.Included, ex.Used, ex.ResetAt.Format(time.RFC3339)),
		extra: map[string]any{"limit": "plan-quota", "window": "month", "included": ex.Included, "used": ex.Used,
			"remaining": max(ex.Included-ex.Used, 0), "resetAt": ex.ResetAt.Format(time.RFC3339), "resetSeconds": secs,
			"upgrade": map[string]string{"plan": "GET /billing/plan", "checkout": "POST /billing/checkout"}}}
}

// settle completes a reservation: a call that never reached an upstream is
// refunded.
func (p *Proxy) settle(ctx context.Context, res quota.Reservation, sent bool) {
	if sent || !res.Valid() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := p.quota.Settle(ctx, res, false); err != nil {
		p.log.WarnContext(ctx, "proxy: quota refund failed", "workspace_id", res.WorkspaceID, "err", err)
	}
}

func (p *Proxy) tooLarge() *refusal {
	return &refusal{status: 413, code: "body_too_large", slug: "body-too-large",
		msg: fmt.Sprintf("the request body is larger than %d bytes", p.opts.MaxBodyBytes)}
}

// clientBody is a client's request body streamed to the upstream; it keeps
// the error reading it, so that a failure of the client's body is not
// taken for a failure of the upstream (or of the key).
type clientBody struct {
	r   io.Reader
	c   io.Closer
	mu  sync.Mutex
	err error
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.mu.Lock()
		b.err = err
		b.mu.Unlock()
	}
	return n, err
}

func (b *clientBody) Close() error { return b.c.Close() }

func (b *clientBody) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// workspacePolicy reads the workspace's policy, cached.
func (p *Proxy) workspacePolicy(ctx context.Context, workspaceID string) (policy, error) {
	if p.policies == nil {
		return policy{premium: true}, nil
	}
	now := p.now().UnixNano()
	if v, ok := p.policy.get(workspaceID, now); ok {
		return v, nil
	}
	epoch := p.epoch.Load()
	premium, rate, err := p.policies.WorkspacePolicy(ctx, workspaceID)
	if err != nil {
		return policy{}, err
	}
	v := policy{premium: premium, rate: rate}
	p.policy.put(workspaceID, v, epoch, now)
	return v, nil
}
