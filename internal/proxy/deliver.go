package proxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/catalog"
	"github.com/apikeywallet/apiwallet/internal/routing"
)

// maxMaskedBody is the largest error body read whole so that an echo of
// the injected key can be masked in it.
const maxMaskedBody = 256 << 10

// deliver sends the upstream's answer to the client: status, headers and
// body unchanged but for hop-by-hop headers, Set-Cookie and any echo of
// the key, streaming as it arrives.
func (p *Proxy) deliver(w http.ResponseWriter, r *http.Request, c *caller, svc *catalog.Service, req *request,
	ks *routing.KeySet, strategy routing.Strategy, tried []attempt, res *http.Response, keyID string, secret []byte,
	start time.Time, upstreamDur time.Duration, bytesIn int64) {
	defer res.Body.Close()
	mask := string(secret)
	masked := maskOf(mask)
	h := w.Header()
	copyResponseHeaders(h, res.Header)
	if mask != "" {
		for k, vv := range h {
			for i, v := range vv {
				if strings.Contains(v, mask) {
					if i == 0 {
						vv = append([]string(nil), vv...)
						h[k] = vv
					}
					vv[i] = strings.ReplaceAll(v, mask, masked)
				}
			}
		}
	}
	overhead := p.now().Sub(start) - upstreamDur
	setHeaders(h, "X-Wallet-Key-Id", keyID,
		"X-Wallet-Attempts", strconv.Itoa(len(tried)),
		"X-Wallet-Strategy", string(strategy),
		"X-Wallet-Overhead-Ms", strconv.FormatFloat(float64(overhead.Microseconds())/1000, 'f', 3, 64))

	failed := res.StatusCode >= 500 || res.StatusCode == 429
	if keyID != "fallback" && res.StatusCode < 500 && res.StatusCode != 429 {
		p.used.add(svc, ks, keyID, p.now())
		p.touches.use(c.workspaceID, keyID)
	}

	// Error bodies are where upstreams echo a key: mask it in them. A
	// gzip-encoded one is decoded first (the client's transport asks for
	// gzip by itself, and the echo must be visible to be masked). Small
	// ones (the usual case) are read whole; larger ones are masked as they
	// stream.
	var ms *maskStream
	if res.StatusCode >= 400 && mask != "" {
		if gz, ok := gunzipped(res); ok {
			res.Body = gz
			res.ContentLength = -1
			h.Del("Content-Encoding")
			h.Del("Content-Length")
		}
		var b []byte
		var err error
		if res.ContentLength <= maxMaskedBody {
			b, err = io.ReadAll(io.LimitReader(res.Body, maxMaskedBody+1))
			if err == nil && len(b) <= maxMaskedBody {
				b = bytes.ReplaceAll(b, []byte(mask), []byte(masked))
				h.Set("Content-Length", strconv.Itoa(len(b)))
				w.WriteHeader(res.StatusCode)
				n, _ := w.Write(b)
				p.record(c, svc, ks, req, strategy, tried, keyID, res.StatusCode, failed, start, upstreamDur, bytesIn, int64(n))
				return
			}
		}
		// Too large to mask whole (or broken off): what was read goes
		// first, then the rest, masked on the way.
		res.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(b), res.Body), res.Body}
		res.ContentLength = -1
		h.Del("Content-Length")
		ms = &maskStream{mask: []byte(mask), masked: []byte(masked)}
	}

	w.WriteHeader(res.StatusCode)
	stream := res.ContentLength < 0 || strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream")
	rc := http.NewResponseController(w)
	if stream {
		_ = rc.Flush() // the client sees the headers at once
	}
	bp := p.bufs.Get().(*[]byte)
	buf := *bp
	var out int64
	// upstreamBroke is the upstream breaking off mid-body; the client
	// going away (a failed write, or a read cancelled with its context,
	// e.g. an SDK that hangs up at "data: [DONE]" before the upstream's
	// last chunk) is not the upstream's failure.
	var upstreamBroke bool
	for {
		n, err := res.Body.Read(buf)
		if n > 0 || (ms != nil && err == io.EOF) {
			chunk := buf[:n]
			if ms != nil {
				chunk = ms.next(chunk, err == io.EOF)
			}
			if _, werr := w.Write(chunk); werr != nil {
				break
			}
			out += int64(len(chunk))
			if stream {
				_ = rc.Flush()
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			upstreamBroke = r.Context().Err() == nil
			break
		}
	}
	p.bufs.Put(bp)
	p.record(c, svc, ks, req, strategy, tried, keyID, res.StatusCode, failed || upstreamBroke, start, upstreamDur, bytesIn, out)
	if upstreamBroke {
		// The client must see a broken stream, not a clean end of a half
		// answer. ErrAbortHandler makes net/http drop the connection
		// without finishing the chunked body.
		panic(http.ErrAbortHandler)
	}
}

// maskStream masks a secret in a body that arrives in pieces. It holds back
// the last len(mask)-1 bytes of each piece: an occurrence that begins there
// is completed by the next piece and replaced then.
type maskStream struct {
	mask, masked []byte
	carry        []byte
}

func (m *maskStream) next(p []byte, final bool) []byte {
	data := bytes.ReplaceAll(append(m.carry, p...), m.mask, m.masked)
	if final {
		m.carry = nil
		return data
	}
	cut := max(len(data)-(len(m.mask)-1), 0)
	m.carry = append(m.carry[:0:0], data[cut:]...)
	return data[:cut]
}

// gunzipped returns a gzip-encoded response's body decoded.
func gunzipped(res *http.Response) (io.ReadCloser, bool) {
	switch strings.ToLower(strings.TrimSpace(res.Header.Get("Content-Encoding"))) {
	case "gzip", "x-gzip":
	default:
		return nil, false
	}
	rec := &recorder{r: res.Body, on: true}
	zr, err := gzip.NewReader(rec)
	if err != nil {
		// Not gzip after all: pass on what was read and the rest as is.
		res.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(rec.buf), res.Body), res.Body}
		return nil, false
	}
	rec.on, rec.buf = false, nil
	return struct {
		io.Reader
		io.Closer
	}{zr, res.Body}, true
}

// recorder keeps what is read through it while on.
type recorder struct {
	r   io.Reader
	buf []byte
	on  bool
}

func (x *recorder) Read(p []byte) (int, error) {
	n, err := x.r.Read(p)
	if x.on {
		x.buf = append(x.buf, p[:n]...)
	}
	return n, err
}

// maskOf is the masked form of a secret for echoes: its prefix and last
// four characters at most.
func maskOf(secret string) string {
	if len(secret) <= 8 {
		return "…"
	}
	return "…" + secret[len(secret)-4:]
}

// record hands one usage record to the recorder.
func (p *Proxy) record(c *caller, svc *catalog.Service, ks *routing.KeySet, req *request, strategy routing.Strategy, tried []attempt,
	keyID string, status int, failed bool, start time.Time, upstream time.Duration, in, out int64) {
	if p.recorder == nil {
		return
	}
	total := p.now().Sub(start)
	u := apiwallet.Usage{
		WorkspaceID: c.workspaceID, Service: svc.Name, KeyID: keyID, UserID: c.userID,
		Method: req.method, Status: status, Failed: failed, Attempts: len(tried), Unreached: !req.sent,
		Strategy: string(strategy), Premium: req.sent && (strategy != routing.StrategyPriority || len(tried) > 1),
		LatencyMicros: total.Microseconds(), OverheadMicros: (total - upstream).Microseconds(),
		BytesIn: in, BytesOut: out, CreatedAt: p.now().UTC(),
	}
	if c.token != nil {
		u.TokenID = c.token.ID
	}
	var b strings.Builder
	for i, a := range tried {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(a.keyID)
		b.WriteByte(':')
		if a.status != 0 {
			b.WriteString(strconv.Itoa(a.status))
		} else {
			b.WriteString(a.reason)
		}
	}
	u.Attempted = b.String()
	if !failed && keyID != "" {
		if ks.Tier(keyID) == routing.TierFree {
			u.SavedMicros = svc.PriceMicros
		} else {
			u.CostMicros = svc.PriceMicros
		}
	}
	p.recorder.Record(u)
}

// refuse writes a wallet refusal. Errors that are not refusals are
// internal: logged, and shown as a 500 without detail.
func (p *Proxy) refuse(w http.ResponseWriter, r *http.Request, svc *catalog.Service, err error) {
	var rf *refusal
	if !errors.As(err, &rf) {
		switch apiwallet.ErrorCode(err) {
		case apiwallet.ENOTFOUND:
			rf = &refusal{status: 404, code: "not_found", slug: "not-found", msg: apiwallet.ErrorMessage(err)}
		case apiwallet.EUNAUTHORIZED:
			rf = errBadCredential
		default:
			p.log.ErrorContext(r.Context(), "proxy: internal error", "err", err, "path", r.URL.Path)
			rf = &refusal{status: 500, code: "internal_error", slug: "internal", msg: "internal error"}
		}
	}
	body := map[string]any{
		"type": apiwallet.ProblemBase + rf.slug, "title": http.StatusText(rf.status), "status": rf.status,
		"detail": rf.msg, "instance": r.URL.Path, "code": rf.code,
	}
	if rid := w.Header().Get("X-Request-Id"); rid != "" {
		body["requestId"] = rid
	}
	for k, v := range rf.extra {
		body[k] = v
	}
	if svc != nil {
		if m, ok := svc.ErrorMember(rf.status, rf.code, rf.msg); ok {
			body["error"] = m
		}
	}
	if rf.retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(rf.retry))
	}
	if rf.status == 401 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="apiwallet"`)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(rf.status)
	_ = json.NewEncoder(w).Encode(body)
}

// noKey refuses a call no key could serve, saying which keys were tried or
// skipped and why (ids and reasons, never secrets).
func (p *Proxy) noKey(w http.ResponseWriter, r *http.Request, svc *catalog.Service, ks *routing.KeySet, tried []attempt, now time.Time) {
	type triedJSON struct {
		KeyID  string `json:"keyId"`
		Status int    `json:"status,omitempty"`
		Reason string `json:"reason,omitempty"`
	}
	out := []triedJSON{}
	for _, a := range tried {
		out = append(out, triedJSON{KeyID: a.keyID, Status: a.status, Reason: a.reason})
	}
	skipped := ks.Explain(now, 20)
	status, msg := http.StatusServiceUnavailable, fmt.Sprintf("no usable %s key in this workspace", svc.Name)
	if len(tried) > 0 {
		status, msg = http.StatusBadGateway, fmt.Sprintf("every %s key tried failed", svc.Name)
	} else if ks.Len() == 0 && len(skipped) == 0 {
		msg = fmt.Sprintf("this workspace has no enabled %s key: add one with POST /keys", svc.Name)
	}
	retry := 0
	for _, s := range skipped {
		if !s.Until.IsZero() {
			secs := int(s.Until.Sub(now).Seconds()) + 1
			if retry == 0 || secs < retry {
				retry = secs
			}
		}
	}
	p.refuse(w, r, svc, &refusal{status: status, code: "no_usable_key", slug: "no-usable-key", msg: msg, retry: retry,
		extra: map[string]any{"tried": out, "skipped": skipped}})
}

// keySet returns the cached key set, loading it on a miss. Concurrent
// misses share one load: after an invalidation every in-flight call needs
// the set at once, and a workspace may hold 100,000 keys.
//
// A set that is merely getting old is refreshed in the background while
// calls go on with it: loading 100,000 keys takes a good part of a second,
// and at expiry every call for the workspace would wait for it. Only an
// invalidation (an epoch bump) makes calls wait for a load. A refresh
// usually finds the keys unchanged and keeps the set (refreshKeySet).
func (p *Proxy) keySet(ctx context.Context, workspaceID string, svc *catalog.Service) (*routing.KeySet, error) {
	ck := workspaceID + "\x00" + svc.Name
	if e, ok, aging := p.keysets.lookup(ck, p.now().UnixNano()); ok {
		if aging {
			p.loads.DoChan("ksr\x00"+ck, func() (any, error) {
				e, err := p.refreshKeySet(context.WithoutCancel(ctx), ck, workspaceID, svc, e)
				if err != nil {
					// Calls go on with the cached set; the next one retries.
					p.log.Warn("proxy: reload key set", "workspace_id", workspaceID, "service", svc.Name, "err", err)
				}
				return e, err
			})
		}
		return e.ks, nil
	}
	v, err, _ := p.loads.Do("ks\x00"+ck, func() (any, error) {
		if e, ok := p.keysets.get(ck, p.now().UnixNano()); ok {
			return e, nil
		}
		// An expired set may still be current: a workspace idle for a
		// while should not read 100,000 keys to find they did not change.
		if e, ok := p.keysets.stale(ck); ok {
			return p.refreshKeySet(context.WithoutCancel(ctx), ck, workspaceID, svc, e)
		}
		return p.loadKeySet(context.WithoutCancel(ctx), ck, workspaceID, svc)
	})
	if err != nil {
		return nil, err
	}
	return v.(*keySetEntry).ks, nil
}

// keySetEntry is a cached key set and what it was built from, so that a
// reload can tell it is still current and keep it, with its live counts.
type keySetEntry struct {
	ks      *routing.KeySet
	epoch   uint64 // the generation it was cached at
	version int64  // the store's KeySetVersion read before the keys; 0: unknown
	period  int64  // start of the quota period of its used counts, Unix seconds
	// The service's terms the candidates were priced with; an edit of the
	// catalog changes them.
	price, quota int64
}

// current reports whether e still holds for svc at now, keys aside.
func (e *keySetEntry) current(svc *catalog.Service, epoch uint64, now time.Time) bool {
	return e.version > 0 && e.epoch == epoch && e.price == svc.PriceMicros && e.quota == svc.FreeQuota &&
		e.period == periodStart(svc.FreePeriod, now).Unix()
}

// refreshKeySet renews cur if the workspace's keys for svc did not change
// since it was loaded, which one single-row read tells, and otherwise
// loads the set again. Reading the keys of a large workspace costs a good
// part of a second and builds a second set beside the first; most reloads
// find nothing changed.
//
// The epoch is read before the version: revocations and rotations bump it
// after they commit, so either the version read sees their change or the
// entry is put under an older epoch and is stale at once.
func (p *Proxy) refreshKeySet(ctx context.Context, ck, workspaceID string, svc *catalog.Service, cur *keySetEntry) (*keySetEntry, error) {
	now := p.now()
	epoch := p.epoch.Load()
	if cur.current(svc, epoch, now) {
		v, err := p.keys.KeySetVersion(ctx, workspaceID, svc.Name)
		if err != nil {
			return nil, err
		}
		if v == cur.version {
			p.keysets.put(ck, cur, epoch, now.UnixNano())
			return cur, nil
		}
		return p.buildKeySet(ctx, ck, workspaceID, svc, now, epoch, v)
	}
	return p.loadKeySet(ctx, ck, workspaceID, svc)
}

// loadKeySet reads a workspace's keys for svc and caches their set.
func (p *Proxy) loadKeySet(ctx context.Context, ck, workspaceID string, svc *catalog.Service) (*keySetEntry, error) {
	now := p.now()
	epoch := p.epoch.Load()
	version, err := p.keys.KeySetVersion(ctx, workspaceID, svc.Name)
	if err != nil {
		return nil, err
	}
	return p.buildKeySet(ctx, ck, workspaceID, svc, now, epoch, version)
}

// buildKeySet reads the keys and caches their set under epoch and
// version, both read before the keys so that a change made meanwhile
// shows as a newer version or epoch at the next refresh.
func (p *Proxy) buildKeySet(ctx context.Context, ck, workspaceID string, svc *catalog.Service, now time.Time,
	epoch uint64, version int64) (*keySetEntry, error) {
	var cands []routing.Candidate
	enabled := true
	f := apiwallet.KeyFilter{WorkspaceID: workspaceID, Service: svc.Name, Enabled: &enabled, Limit: 500}
	for {
		keys, err := p.keys.FindKeys(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			c := routing.Candidate{ID: k.ID, Tier: string(k.Tier), Priority: k.Priority, Enabled: k.Enabled}
			if k.Tier != apiwallet.TierFree {
				c.PriceMicros = svc.PriceMicros
			}
			switch {
			case k.Metadata.Quota != nil:
				c.Quota = *k.Metadata.Quota
			case k.Tier == apiwallet.TierFree:
				c.Quota = svc.FreeQuota
			}
			cands = append(cands, c)
		}
		if len(keys) < f.Limit {
			break
		}
		f.After = keys[len(keys)-1].ID
	}
	if err := p.used.fill(ctx, p.counter, workspaceID, svc, cands, now); err != nil {
		return nil, err
	}
	e := &keySetEntry{
		ks: p.router.NewKeySet(cands), epoch: epoch, version: version,
		period: periodStart(svc.FreePeriod, now).Unix(), price: svc.PriceMicros, quota: svc.FreeQuota,
	}
	p.keysets.put(ck, e, epoch, now.UnixNano())
	return e, nil
}

// secret returns a key's plaintext, from the cache when it can.
func (p *Proxy) secret(ctx context.Context, workspaceID, keyID string) ([]byte, error) {
	ck := workspaceID + "\x00" + keyID
	now := p.now().UnixNano()
	if s, ok := p.secrets.get(ck, now); ok {
		return s, nil
	}
	v, err, _ := p.loads.Do("sec\x00"+ck, func() (any, error) {
		epoch := p.epoch.Load()
		s, err := p.keys.Reveal(context.WithoutCancel(ctx), workspaceID, keyID)
		if err != nil {
			return nil, err
		}
		p.secrets.put(ck, s, epoch, now)
		return s, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
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

// periodStart is the start (UTC) of the quota period containing now.
func periodStart(period string, now time.Time) time.Time {
	now = now.UTC()
	switch period {
	case catalog.PeriodHour:
		return now.Truncate(time.Hour)
	case catalog.PeriodDay:
		return time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	default:
		return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
}

// usedCounters count each key's calls in its current quota period in this
// process, on top of what the usage records held when the key was first
// seen, so per-key quotas hold across key-set reloads and restarts. They
// are lock-free: add runs on every proxied call.
type usedCounters struct {
	m sync.Map // key id → *usedCounter
}

type usedCounter struct {
	mu     sync.Mutex // guards a period change only
	period atomic.Int64
	n      atomic.Int64
}

// count returns keyID's counter for period, starting it at base when the
// key is new or its period has changed.
func (u *usedCounters) count(keyID string, period time.Time, base func() int64) *usedCounter {
	ps := period.Unix()
	v, ok := u.m.Load(keyID)
	if !ok {
		c := &usedCounter{}
		c.period.Store(ps)
		c.n.Store(base())
		v, _ = u.m.LoadOrStore(keyID, c)
	}
	c := v.(*usedCounter)
	if c.period.Load() != ps {
		c.mu.Lock()
		if c.period.Load() != ps {
			c.n.Store(base())
			c.period.Store(ps)
		}
		c.mu.Unlock()
	}
	return c
}

func (u *usedCounters) fill(ctx context.Context, counter UsageCounter, workspaceID string, svc *catalog.Service,
	cands []routing.Candidate, now time.Time) error {
	period := periodStart(svc.FreePeriod, now)
	var counts map[string]int64
	for i := range cands {
		if v, ok := u.m.Load(cands[i].ID); ok && v.(*usedCounter).period.Load() == period.Unix() {
			cands[i].Used = v.(*usedCounter).n.Load()
			continue
		}
		if cands[i].Quota <= 0 {
			continue
		}
		if counts == nil && counter != nil {
			var err error
			if counts, err = counter.KeyUsageSince(ctx, workspaceID, svc.Name, period); err != nil {
				return err
			}
		}
		n := counts[cands[i].ID]
		cands[i].Used = u.count(cands[i].ID, period, func() int64 { return n }).n.Load()
	}
	return nil
}

func (u *usedCounters) add(svc *catalog.Service, ks *routing.KeySet, keyID string, now time.Time) {
	u.count(keyID, periodStart(svc.FreePeriod, now), func() int64 { return 0 }).n.Add(1)
	ks.AddUsed(keyID, 1)
}

// toucher records key use off the hot path: each key's last-used time and
// one audit event per key and minute with the number of calls.
type toucher struct {
	p    *Proxy
	uses sync.Map // [2]string{workspace, key} → *atomic.Int64 calls since the last flush
	stop chan struct{}
	done chan struct{}
}

func newToucher(p *Proxy) *toucher {
	t := &toucher{p: p, stop: make(chan struct{}), done: make(chan struct{})}
	go t.loop()
	return t
}

func (t *toucher) use(workspaceID, keyID string) {
	k := [2]string{workspaceID, keyID}
	v, ok := t.uses.Load(k)
	if !ok {
		v, _ = t.uses.LoadOrStore(k, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

func (t *toucher) loop() {
	defer close(t.done)
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			t.flush()
		case <-t.stop:
			t.flush()
			return
		}
	}
}

func (t *toucher) flush() {
	uses := map[[2]string]int64{}
	t.uses.Range(func(k, v any) bool {
		if n := v.(*atomic.Int64).Swap(0); n > 0 {
			uses[k.([2]string)] = n
		} else {
			t.uses.Delete(k) // idle for a whole minute
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := t.p.now()
	for k, n := range uses {
		if err := t.p.keys.TouchKey(ctx, k[0], k[1], now); err != nil && apiwallet.ErrorCode(err) != apiwallet.ENOTFOUND {
			t.p.log.Warn("proxy: touch key", "key_id", k[1], "err", err)
		}
		if t.p.audit != nil {
			ev := apiwallet.NewAuditEvent(ctx, k[0], apiwallet.ActorSystem, "proxy", "key.use", "key", k[1])
			ev.Details = map[string]string{"calls": strconv.FormatInt(n, 10)}
			if err := t.p.audit.AppendAudit(ctx, ev); err != nil {
				t.p.log.Warn("proxy: audit key use", "key_id", k[1], "err", err)
			}
		}
	}
}

func (t *toucher) close() {
	select {
	case <-t.stop:
	default:
		close(t.stop)
	}
	<-t.done
}
