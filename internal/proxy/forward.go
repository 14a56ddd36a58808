package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/catalog"
	"github.com/apikeywallet/apiwallet/internal/routing"
)

// errClientGone ends a call whose client went away: there is no one to
// answer.
var errClientGone = errors.New("client gone")

// forward tries the planned keys in turn until one gets an answer to
// relay. A 429, a 5xx or a network error moves the call on to the next
// key when the request may be sent again; a 401/402/403 quarantines the
// key and moves on (the upstream did not act on a request it refused to
// authenticate). It leaves the answer in c.res, or returns the refusal.
func (p *Proxy) forward(c *call) error {
	n := len(c.plan)
	if c.fb != "" {
		n++
	}
	now := p.now()
	for i := 0; i < n; i++ {
		if i > 0 && !c.canRetry() {
			break // the streamed body is spent
		}
		keyID, secret, ok := p.attemptKey(c, i, now)
		if !ok {
			continue
		}
		if c.res != nil {
			// A retry: the earlier answer is not delivered.
			c.discard()
		}
		actx, cancel := context.WithCancel(c.ctx)
		t0 := time.Now()
		res, err := p.transport.RoundTrip(p.outbound(actx, c, secret))
		d := time.Since(t0)
		c.upstreamDur += d
		sm := p.metrics.svc(c)
		sm.upstream.Observe(d.Seconds())
		now = p.now()
		more := i+1 < n && c.canRetry()
		if err != nil {
			cancel()
			if done, err := p.failedAttempt(c, keyID, err, more); done {
				return err
			}
			continue
		}
		c.sent = true
		c.tried = append(c.tried, attempt{keyID: keyID, status: res.StatusCode})
		c.res, c.keyID, c.secret, c.cancelAttempt = res, keyID, secret, cancel
		c.res.Body = cancelBody{res.Body, cancel}
		if !p.judge(c, keyID, res, more, now) {
			break
		}
	}
	if c.res == nil {
		c.status, c.failed = 503, true
		p.record(c)
		return noKey(&c.svc, c.ks, c.tried, p.now())
	}
	return nil
}

// attemptKey returns the key of attempt i: a planned key, decrypted, or
// the operator's fallback key after them. A key that does not decrypt is
// never used: it is quarantined and the failure names it, not its secret.
func (p *Proxy) attemptKey(c *call, i int, now time.Time) (keyID string, secret []byte, ok bool) {
	if i >= len(c.plan) {
		return apiwallet.FallbackKeyID, []byte(c.fb), true
	}
	keyID = c.plan[i].ID
	secret, err := p.secret(c.ctx, c.caller.workspaceID, keyID)
	if err != nil {
		p.log.ErrorContext(c.ctx, "proxy: key does not decrypt", "key_id", keyID, "workspace_id", c.caller.workspaceID, "err", err)
		if p.router.Quarantine(keyID, "undecryptable", now) {
			p.auditKey(c.ctx, c.caller, keyID, "key.quarantine", map[string]string{"reason": "undecryptable"})
		}
		c.tried = append(c.tried, attempt{keyID: keyID, reason: "undecryptable"})
		return "", nil, false
	}
	return keyID, secret, true
}

// failedAttempt handles an attempt that got no answer. done reports that
// the call ends, with err to answer (errClientGone: nobody to answer).
func (p *Proxy) failedAttempt(c *call, keyID string, err error, more bool) (done bool, _ error) {
	if c.streamed != nil && c.streamed.failed() != nil {
		// The client's own body failed (too large, or cut off): not the
		// key's fault, and the client's error to hear.
		c.tried = append(c.tried, attempt{keyID: keyID, reason: "client_body"})
		c.keyID, c.status, c.failed = keyID, 413, true
		p.record(c)
		var mbe *http.MaxBytesError
		switch {
		case errors.As(c.streamed.failed(), &mbe):
			return true, p.tooLarge()
		case c.ctx.Err() == nil:
			return true, errBodyRead
		}
		return true, errClientGone
	}
	reached := !isDialError(err)
	c.sent = c.sent || reached
	if c.ctx.Err() != nil {
		// The client went away: not the key's fault. The call is recorded
		// as failed.
		c.tried = append(c.tried, attempt{keyID: keyID, reason: "client_gone"})
		c.keyID, c.status, c.failed = keyID, 0, true
		p.record(c)
		return true, errClientGone
	}
	p.metrics.svc(c).upErrors[upstreamError(err)].Inc()
	if keyID != apiwallet.FallbackKeyID {
		p.router.ReportFailure(keyID, 0, nil, p.now())
	}
	c.tried = append(c.tried, attempt{keyID: keyID, reason: "network_error"})
	if more && routing.Retryable(c.method, 0, c.buffered != nil, c.idem, err, reached) {
		return false, nil
	}
	c.keyID, c.status, c.failed = keyID, 502, true
	p.record(c)
	return true, noKey(&c.svc, c.ks, c.tried, p.now())
}

// judge reports an answer to the router and whether the call should move
// on to the next key.
func (p *Proxy) judge(c *call, keyID string, res *http.Response, more bool, now time.Time) (next bool) {
	st := res.StatusCode
	own := keyID != apiwallet.FallbackKeyID
	switch {
	case st == 429 || st >= 500:
		if st == 429 {
			p.metrics.svc(c).upErrors[up429].Inc()
		} else {
			p.metrics.svc(c).upErrors[up5xx].Inc()
		}
		if own {
			p.router.ReportFailure(keyID, st, res.Header, now)
		}
		return more && routing.Retryable(c.method, st, c.buffered != nil, c.idem, nil, true)
	case st == 401 || st == 402 || st == 403:
		if own {
			v := p.router.ReportFailure(keyID, st, res.Header, now)
			if v.NewlyQuarantined {
				p.log.WarnContext(c.ctx, "proxy: upstream refused a key; quarantined", "key_id", keyID,
					"service", c.svc.Name, "status", st, "reason", string(v.Reason))
				p.auditKey(c.ctx, c.caller, keyID, "key.quarantine", map[string]string{"reason": string(v.Reason), "status": strconv.Itoa(st)})
				if p.alerts != nil {
					p.alerts.KeyQuarantined(c.ctx, c.caller.workspaceID, keyID, string(v.Reason))
				}
			}
		}
		return more
	default:
		if own {
			p.router.ReportSuccess(keyID, res.Header, now)
		}
		return false
	}
}

// discard drops an answer that will not be relayed.
func (c *call) discard() {
	c.res.Body.Close()
	c.res = nil
}

// cancelBody ends its attempt's context when the body is closed, which
// releases the upstream connection (or drops it, mid-body).
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// outbound builds the upstream request: the service's base URL and path,
// the client's forwardable headers, and the key.
func (p *Proxy) outbound(ctx context.Context, c *call, secret []byte) *http.Request {
	base := c.svc.URL()
	u := &url.URL{Scheme: base.Scheme, Host: base.Host}
	u.Path = strings.TrimSuffix(base.Path, "/") + mustUnescape(c.escPath)
	u.RawPath = strings.TrimSuffix(base.EscapedPath(), "/") + c.escPath
	u.RawQuery = c.rawQuery
	if c.inQuery {
		u.RawQuery = dropQueryValue(u.RawQuery, c.credential)
	}
	out := (&http.Request{
		Method:     c.method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header, len(c.header)+2),
		Host:       base.Host,
	}).WithContext(ctx)
	extra := ""
	if c.svc.Auth.Kind == catalog.AuthHeader {
		extra = c.svc.Auth.Name
	}
	copyRequestHeaders(out.Header, c.header, extra)
	if up := upgradeType(c.header); up != "" {
		// A protocol upgrade (WebSocket) is asked of the upstream too.
		out.Header["Connection"] = []string{"Upgrade"}
		out.Header["Upgrade"] = []string{up}
	}
	switch {
	case c.buffered != nil:
		out.ContentLength = int64(len(c.buffered))
		b := c.buffered
		out.Body = io.NopCloser(bytes.NewReader(b))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	case c.streamed != nil:
		out.Body = io.NopCloser(c.streamed)
		out.ContentLength = c.length
	}
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = noUserAgent
	}
	c.svc.Inject(out, string(secret))
	return out
}

// noUserAgent keeps the Transport from adding its default User-Agent.
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
