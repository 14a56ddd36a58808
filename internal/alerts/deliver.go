package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// SignatureHeader carries the signature of a webhook POST.
const SignatureHeader = "X-Wallet-Signature"

// Payload is an alert's JSON: the body of the webhook POST and an item of
// GET /alerts (which adds the delivery state).
type Payload struct {
	ID          string            `json:"id"`
	Type        string            `json:"type"` // "alert"
	WorkspaceID string            `json:"workspaceId"`
	Kind        string            `json:"kind"`
	Subject     string            `json:"subject"`
	Period      string            `json:"period"`
	Threshold   int               `json:"threshold"`
	Used        int64             `json:"used"`
	Limit       int64             `json:"limit"`
	Message     string            `json:"message"`
	Details     map[string]string `json:"details"`
	CreatedAt   time.Time         `json:"createdAt"`
}

// NewPayload returns a's JSON form.
func NewPayload(a *apiwallet.Alert) Payload {
	d := a.Details
	if d == nil {
		d = map[string]string{}
	}
	return Payload{ID: a.ID, Type: "alert", WorkspaceID: a.WorkspaceID, Kind: a.Kind, Subject: a.Subject,
		Period: a.Period, Threshold: a.Threshold, Used: a.Used, Limit: a.Limit, Message: a.Message,
		Details: d, CreatedAt: a.CreatedAt}
}

// Sign returns the X-Wallet-Signature value for body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>".
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Signature verification errors.
var (
	ErrNoSignature  = errors.New("alerts: no valid X-Wallet-Signature header")
	ErrBadSignature = errors.New("alerts: signature does not match")
	ErrTooOld       = errors.New("alerts: signature timestamp outside the tolerance")
)

// Verify checks an X-Wallet-Signature header against the raw body and the
// webhook secret, accepting timestamps within tolerance of now (either
// way). It is what a receiver written in Go would do; in any language: take
// t and every v1 from the header, compute hex(HMAC-SHA256(secret,
// t + "." + body)), compare in constant time.
func Verify(header string, body, secret []byte, tolerance time.Duration, now time.Time) error {
	var (
		ts   string
		sigs [][]byte
	)
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrNoSignature
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrNoSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrTooOld
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return ErrBadSignature
}

// Dispatch delivers a stored alert in the background if it is pending.
// Any number of calls, here or on other instances, send it at most once
// at a time: each attempt is claimed in the database first.
func (s *Service) Dispatch(a *apiwallet.Alert) {
	if a == nil || a.Delivery.State != apiwallet.DeliveryPending {
		return
	}
	s.mu.Lock()
	if s.closed || s.sending[a.ID] {
		s.mu.Unlock()
		return
	}
	s.sending[a.ID] = true
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer func() {
			s.mu.Lock()
			delete(s.sending, a.ID)
			s.mu.Unlock()
			s.wg.Done()
		}()
		s.deliver(a.ID)
	}()
}

// ResumeDeliveries dispatches every pending alert whose next attempt is
// due: those an instance that stopped was retrying. The Evaluator calls it
// on every round.
func (s *Service) ResumeDeliveries(ctx context.Context) error {
	due, err := s.store.FindDueAlertDeliveries(ctx, s.opts.Now(), 100)
	if err != nil {
		return err
	}
	for _, a := range due {
		s.Dispatch(a)
	}
	return nil
}

// leaseMargin is added to the attempt timeout for the claim's lease.
const leaseMargin = 5 * time.Second

// deliver runs the attempts of one alert until one succeeds, they run
// out, another instance holds the claim, or the service closes.
func (s *Service) deliver(id string) {
	ctx := context.Background()
	a, err := s.store.FindAlertByID(ctx, id)
	if err != nil {
		s.log.Warn("alerts: delivery: alert not found", "alert_id", id, "err", err)
		return
	}
	body, _ := json.Marshal(NewPayload(a))
	for {
		now := s.opts.Now()
		n, ok, err := s.store.ClaimAlertDelivery(ctx, id, now, now.Add(s.opts.Timeout+leaseMargin), s.opts.MaxAttempts)
		if err != nil {
			s.log.Warn("alerts: delivery: claim", "alert_id", id, "err", err)
			return
		}
		if !ok {
			return // delivered, given up, not yet due, or another sender has it
		}
		status, err := s.attempt(ctx, a, body, n)
		d := apiwallet.AlertDelivery{Attempts: n, LastStatus: status}
		var wait time.Duration
		switch {
		case err == nil:
			d.State, d.DeliveredAt = apiwallet.DeliveryDelivered, s.opts.Now()
		case errors.Is(err, errNoWebhook) || n >= s.opts.MaxAttempts:
			d.State, d.LastError = apiwallet.DeliveryFailed, err.Error()
		default:
			wait = s.backoff(n)
			d.State, d.LastError, d.NextAt = apiwallet.DeliveryPending, err.Error(), s.opts.Now().Add(wait)
		}
		if rerr := s.store.RecordAlertDelivery(ctx, id, d); rerr != nil {
			s.log.Warn("alerts: delivery: record", "alert_id", id, "err", rerr)
			return
		}
		log := s.log.With("alert_id", id, "workspace_id", a.WorkspaceID, "attempt", n, "status", status)
		switch d.State {
		case apiwallet.DeliveryDelivered:
			log.Info("alert delivered")
			return
		case apiwallet.DeliveryFailed:
			log.Warn("alert delivery failed for good", "err", err)
			return
		}
		log.Info("alert delivery failed; will retry", "err", err, "retry_in", wait.String())
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.stop:
			t.Stop()
			return
		}
	}
}

// backoff is the wait after failed attempt n (from 1).
func (s *Service) backoff(n int) time.Duration {
	d := s.opts.Backoff
	for i := 1; i < n && d < s.opts.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.opts.MaxBackoff)
}

var errNoWebhook = errors.New("the workspace has no webhook any more")

// attempt POSTs body once, signed, to the workspace's current webhook URL.
func (s *Service) attempt(ctx context.Context, a *apiwallet.Alert, body []byte, n int) (int, error) {
	st, err := s.store.FindAlertSettings(ctx, a.WorkspaceID)
	if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND || (err == nil && (st.WebhookURL == "" || len(st.WebhookSecret) == 0)) {
		return 0, errNoWebhook
	} else if err != nil {
		return 0, err
	}
	secret, err := s.open(ctx, a.WorkspaceID, st.WebhookSecret)
	if err != nil {
		return 0, fmt.Errorf("open the webhook secret: %w", err)
	}
	sig := Sign(secret, s.opts.Now(), body)
	clear(secret)
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, st.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "apiwallet-alerts/1")
	req.Header.Set("X-Wallet-Alert-Id", a.ID)
	req.Header.Set("X-Wallet-Delivery-Attempt", strconv.Itoa(n))
	req.Header.Set(SignatureHeader, sig)
	res, err := s.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("POST %s: %w", redact(st.WebhookURL), unwrapURLError(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return res.StatusCode, fmt.Errorf("the receiver answered %d", res.StatusCode)
	}
	return res.StatusCode, nil
}

// redact drops the path and query of a URL for logs: webhook URLs often
// carry a token there.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the webhook"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// errBlocked is refused at dial time.
var errBlocked = errors.New("the webhook address is loopback, private or internal")

// guardedTransport refuses to connect to internal addresses unless
// allowPrivate: the check runs on the address actually dialled, after DNS,
// so a name that resolves differently later cannot get around it. It
// ignores HTTP(S)_PROXY, which would dial somewhere else.
func guardedTransport(allowPrivate bool) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if !allowPrivate {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip, err := netip.ParseAddr(host)
			if err != nil || blocked(ip) {
				return errBlocked
			}
			return nil
		}
	}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
	}
}

// internalPrefixes are blocked beyond what netip's predicates cover.
var internalPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64 (could reach IPv4 internals)
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
}

// blocked reports whether ip is an address a webhook may not reach.
func blocked(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() {
		return true
	}
	if ip.Is4() && ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return true
	}
	for _, p := range internalPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ValidateWebhookURL checks a webhook URL and returns what is wrong with
// it, or "": an absolute http(s) URL without credentials or fragment
// whose host, unless allowPrivate, is no internal address and resolves to
// none.
func ValidateWebhookURL(ctx context.Context, raw string, allowPrivate bool) string {
	if len(raw) > apiwallet.MaxWebhookURLLen {
		return fmt.Sprintf("must be at most %d characters", apiwallet.MaxWebhookURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return "must be an absolute http:// or https:// URL"
	}
	if u.User != nil {
		return "must not contain credentials; put a token in the path or rely on the signature"
	}
	if u.Fragment != "" {
		return "must not contain a #fragment"
	}
	if allowPrivate {
		return ""
	}
	host := u.Hostname()
	refuse := "must not point to a loopback, private or internal address"
	if ip, err := netip.ParseAddr(host); err == nil {
		if blocked(ip) {
			return refuse
		}
		return ""
	}
	lower := strings.ToLower(strings.TrimSuffix(host, "."))
	if lower == "localhost" || strings.HasSuffix(lower, ".localhost") || strings.HasSuffix(lower, ".internal") ||
		strings.HasSuffix(lower, ".local") || !strings.Contains(lower, ".") {
		return refuse
	}
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return "has a host name that does not resolve"
	}
	for _, ip := range ips {
		if blocked(ip) {
			return refuse
		}
	}
	return ""
}
