package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/catalog"
	"github.com/apikeywallet/apiwallet/internal/quota"
	"github.com/apikeywallet/apiwallet/internal/routing"
)

// call is one proxied call's state, carried through its stages:
// authenticate → limit → read the body → route → forward → deliver →
// record. Each stage reads what the earlier ones left and returns a
// refusal (an *apiwallet.Error) when the call ends there.
type call struct {
	w     http.ResponseWriter
	r     *http.Request
	ctx   context.Context
	start time.Time

	// What to forward, however the call arrived.
	svc      catalog.Service
	method   string
	escPath  string // escaped, below the service's base path
	rawQuery string
	header   http.Header
	body     io.ReadCloser
	length   int64

	// Who calls: the raw credential (to strip from the query when it came
	// there) and what it resolved to.
	credential string
	inQuery    bool
	caller     *caller

	// What the workspace's policy and the client asked for.
	strategy    routing.Strategy
	maxAttempts int
	premium     bool
	reservation quota.Reservation

	// The body: buffered (it can be sent again to another key) or
	// streamed (one attempt).
	buffered []byte
	streamed *clientBody
	idem     bool

	ks    *routing.KeySet
	plan  []routing.Candidate
	fb    string // the operator's fallback key for the service, if any
	tried []attempt

	// The outcome.
	sent        bool // an attempt reached an upstream
	upstreamDur time.Duration
	res         *http.Response
	// cancelAttempt ends the attempt whose answer is in res: it drops the
	// upstream connection if the body is not read to its end.
	cancelAttempt context.CancelFunc
	keyID         string
	secret        []byte
	status        int
	failed        bool
	bytesOut      int64
	// overheadSeen: the wallet's own time was observed as the answer's
	// headers went out.
	overheadSeen bool
	metrics      *serviceMetrics // the service's metrics, once resolved

	planBuf [routing.MaxAttempts]routing.Candidate
}

// attempt is one try with one key.
type attempt struct {
	keyID  string
	status int // 0: no response
	reason string
}

func (p *Proxy) newCall(w http.ResponseWriter, r *http.Request, svc catalog.Service, escPath string) *call {
	return &call{w: w, r: r, ctx: r.Context(), start: p.now(), svc: svc, method: r.Method, escPath: escPath,
		rawQuery: r.URL.RawQuery, header: r.Header, body: r.Body, length: r.ContentLength}
}

// ServeService serves ANY /proxy/{service}/{path...}. rest is the escaped
// path after the service name. It returns the refusal to write when the
// call ends before an upstream's answer is relayed.
func (p *Proxy) ServeService(w http.ResponseWriter, r *http.Request, service, rest string) error {
	svc, ok := p.catalog.Get(service)
	if !ok {
		return refusal(apiwallet.ENOTFOUND, "unknown_service", "", fmt.Sprintf("no service %q in the catalog; GET /services lists them", service))
	}
	_, esc, ok := safePath(rest)
	if !ok {
		return refuse(&svc, refusal(apiwallet.EINVALID, "invalid_path", "",
			"the path must stay below the service's base URL: no dot segments, encoded slashes, backslashes or control characters"))
	}
	return p.serve(p.newCall(w, r, svc, esc))
}

// ServeRoot serves a request at a path that is none of the wallet's own
// routes: it goes to the service named by a "<service>." host prefix, or
// to the one service the credential is scoped to. The credential is
// resolved here once and the call goes on with it.
func (p *Proxy) ServeRoot(w http.ResponseWriter, r *http.Request) error {
	var c *caller
	name := hostService(r.Host, p.catalog)
	if name == "" {
		raw, _ := credential(r, nil)
		if raw == "" {
			// Without a credential this is not a proxy call: a plain 404.
			return refusal(apiwallet.ENOTFOUND, "not_found", "", fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
		}
		var err error
		if c, err = p.authenticate(r.Context(), raw, r.Header.Get("X-Workspace-Id")); err != nil {
			return refuse(rootErrors, err)
		}
		if c.token != nil && len(c.token.Services) == 1 {
			name = c.token.Services[0]
		}
	}
	if name == "" {
		return refuse(rootErrors, refusal(apiwallet.EINVALID, "service_required", "service-required",
			"name the upstream service: call /proxy/{service}/…, use a wallet access token scoped to one service, "+
				"or send the request to <service>.<wallet host>"))
	}
	svc, ok := p.catalog.Get(name)
	if !ok {
		return refuse(rootErrors, refusal(apiwallet.ENOTFOUND, "unknown_service", "", fmt.Sprintf("no service %q in the catalog", name)))
	}
	_, esc, ok := safePath(r.URL.EscapedPath())
	if !ok {
		return refuse(&svc, refusal(apiwallet.EINVALID, "invalid_path", "", "the path must stay below the service's base URL"))
	}
	cl := p.newCall(w, r, svc, esc)
	cl.caller = c
	return p.serve(cl)
}

// hostService is the service a "<service>." prefix of host names, if any.
func hostService(host string, cat *catalog.Catalog) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if first, _, ok := strings.Cut(host, "."); ok {
		if _, known := cat.Get(first); known {
			return first
		}
	}
	return ""
}

// serve runs a call through its stages. A refusal made before anything
// was written is returned for internal/api to write.
func (p *Proxy) serve(c *call) error {
	if err := p.authorize(c); err != nil {
		return refuse(&c.svc, err)
	}
	if err := p.limit(c); err != nil {
		return refuse(&c.svc, err)
	}
	// The call is counted against the monthly quota before it leaves, and
	// refunded if it never reached an upstream.
	defer p.settle(c)
	if err := p.readBody(c); err != nil {
		return refuse(&c.svc, err)
	}
	if err := p.route(c); err != nil {
		return refuse(&c.svc, err)
	}
	if err := p.forward(c); err != nil {
		return refuse(&c.svc, err)
	}
	return p.deliver(c)
}

// authorize resolves the caller (unless the root already did) and checks
// that its credential may call the service.
func (p *Proxy) authorize(c *call) error {
	raw, inQuery := credential(c.r, &c.svc)
	if inQuery {
		c.credential, c.inQuery = raw, true
	}
	if c.caller == nil {
		cl, err := p.authenticate(c.ctx, raw, c.r.Header.Get("X-Workspace-Id"))
		if err != nil {
			return err
		}
		c.caller = cl
	}
	if t := c.caller.token; t != nil && !t.Allows(c.svc.Name) {
		return refusal(apiwallet.EFORBIDDEN, "service_not_allowed", "", fmt.Sprintf("this wallet access token is not scoped to %s", c.svc.Name))
	}
	return nil
}

// route reads the workspace's key set for the service and plans the
// attempts: keys in the strategy's order, then the operator's fallback
// key.
func (p *Proxy) route(c *call) error {
	ks, err := p.keySet(c.ctx, c.caller.workspaceID, &c.svc)
	if err != nil {
		return err
	}
	c.ks = ks
	now := p.now()
	c.plan = ks.Plan(c.planBuf[:0], c.strategy, now, c.maxAttempts)
	c.fb = p.opts.FallbackKeys[c.svc.Name]
	if !c.premium && len(c.plan) > 0 {
		c.fb = "" // the operator's key is a fallback too
	}
	if len(c.plan) == 0 && c.fb == "" {
		if ks.Len() > 0 && ks.Health(now).QuotaExhausted > 0 {
			p.metrics.refusals[limitKeyQuota].Inc()
		}
		return noKey(&c.svc, ks, nil, now)
	}
	return nil
}

// auditKey records a key event caused by a proxied call.
func (p *Proxy) auditKey(ctx context.Context, c *caller, keyID, action string, details map[string]string) {
	if p.audit == nil {
		return
	}
	at, aid := c.actor()
	ev := apiwallet.NewAuditEvent(ctx, c.workspaceID, at, aid, action, "key", keyID)
	ev.Details = details
	if err := p.audit.AppendAudit(ctx, ev); err != nil {
		p.log.ErrorContext(ctx, "proxy: audit", "err", err, "action", action, "key_id", keyID)
	}
}
