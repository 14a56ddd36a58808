package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/catalog"
	"github.com/apikeywallet/apiwallet/internal/quota"
	"github.com/apikeywallet/apiwallet/internal/ratelimit"
	"github.com/apikeywallet/apiwallet/internal/routing"
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

// Policies reads what a workspace's plan and settings say about its calls
// (*billing.Service).
type Policies interface {
	// WorkspacePolicy reports whether the workspace routes with cost
	// strategies and cross-key fallback (without it a call goes to the
	// first usable key in priority order, one attempt), its plan's
	// calls per minute (0: the default)
	// and the id of its plan (for the quota metric).
	WorkspacePolicy(ctx context.Context, workspaceID string) (premium bool, ratePerMinute int, plan string, err error)
}

// QuarantineAlerter raises the key_quarantined alert (*alerts.Service).
type QuarantineAlerter interface {
	KeyQuarantined(ctx context.Context, workspaceID, keyID, reason string)
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
	// (default 60 s) when the proxy builds its own Transport.
	UpstreamTimeout time.Duration
	// WriteTimeout bounds each write of an answer to the client (default
	// 30 s): it is extended as bytes flow, so a client that stops reading
	// is cut after it, while a stream it keeps reading lives on.
	WriteTimeout time.Duration
	// StreamIdleTimeout ends a streamed answer from which no byte arrived
	// for that long (default 5 min): an upstream that neither sends nor
	// ends holds a connection, an upstream slot and a quota reservation.
	StreamIdleTimeout time.Duration
	// CacheTTL bounds how long credentials, key sets and secrets are kept
	// without an invalidation (default 30 s).
	CacheTTL time.Duration
	// FallbackKeys are the operator's <SERVICE>_FALLBACK_KEY values.
	FallbackKeys map[string]string
	// RatePerMinute is each workspace's proxy rate limit
	// (MAX_REQUESTS_PER_MINUTE); 0 disables it.
	RatePerMinute int
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
	// Transport makes every upstream call; nil means NewTransport with
	// Options.UpstreamTimeout.
	Transport http.RoundTripper
	// Quota counts each workspace's calls against its plan's monthly
	// quota, by Plans; nil (or nil Plans) disables quotas.
	Quota quota.Counter
	Plans quota.Plans
	// Alerts is told when a key is quarantined; optional.
	Alerts QuarantineAlerter
	// Policies gives each workspace's routing setting and rate limit; nil
	// means premium routing for everyone at Options.RatePerMinute.
	Policies Policies
	// Registerer, if not nil, receives the proxy's metrics.
	Registerer prometheus.Registerer
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
	audit     apiwallet.AuditStore
	log       *slog.Logger
	opts      Options
	transport http.RoundTripper
	epoch     *Epoch
	now       func() time.Time

	callers *ttlCache[[32]byte, *caller]
	policy  *ttlCache[string, policy]
	keysets *ttlCache[string, *keySetEntry]
	secrets *ttlCache[string, []byte]
	used    *usedCounters
	loads   singleflight.Group
	touches *toucher
	bufs    sync.Pool
	metrics *metrics
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
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.StreamIdleTimeout <= 0 {
		o.StreamIdleTimeout = 5 * time.Minute
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
	if d.Transport == nil {
		d.Transport = NewTransport(TransportOptions{ResponseHeaderTimeout: o.UpstreamTimeout})
	}
	p := &Proxy{
		catalog: d.Catalog, router: d.Router, auth: d.Auth, keys: d.Keys, counter: d.Counter,
		recorder: d.Recorder, limiter: d.Limiter, audit: d.Audit, log: d.Log, opts: o, epoch: d.Epoch, now: d.Now,
		quota: d.Quota, plans: d.Plans, alerts: d.Alerts, policies: d.Policies, transport: d.Transport,
	}
	p.callers = newTTLCache[[32]byte, *caller](p.epoch, o.CacheTTL, 100_000)
	p.policy = newTTLCache[string, policy](p.epoch, o.CacheTTL, 100_000)
	p.keysets = newTTLCache[string, *keySetEntry](p.epoch, o.CacheTTL, 100_000)
	p.secrets = newTTLCache[string, []byte](p.epoch, o.CacheTTL, 200_000)
	p.used = &usedCounters{}
	p.touches = newToucher(p)
	p.bufs.New = func() any { b := make([]byte, 32<<10); return &b }
	p.metrics = newMetrics()
	if d.Registerer != nil {
		p.registerMetrics(d.Registerer)
	}
	return p
}

// Epoch returns the invalidation counter the proxy's caches follow.
func (p *Proxy) Epoch() *Epoch { return p.epoch }

// Close flushes key-use summaries and closes idle upstream connections.
func (p *Proxy) Close() {
	p.touches.close()
	if c, ok := p.transport.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
