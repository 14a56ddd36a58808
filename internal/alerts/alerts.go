// Package alerts raises a workspace's quota and key alerts, each exactly
// once across any number of wallet instances, and delivers each to the
// workspace's webhook, signed and retried.
//
// # Raising
//
// A crossing is named by (workspace, kind, subject, period, threshold):
// "plan_quota/plan/2026-05/80" is the workspace's calls this month reaching
// 80% of its plan's included calls. The alerts table has a unique key on
// exactly those columns and every raise is an INSERT ... ON CONFLICT DO
// NOTHING, so of any number of instances (or goroutines) that see the same
// crossing, the database lets exactly one row in, and only the caller whose
// row went in delivers it. Crossings are found by Check and CheckKey, which
// the quota code or any periodic job may call with the counts it has, and
// by the background Evaluator, which reads usage every 30 s by default and
// needs no wiring into the request path. KeyQuarantined raises an alert
// when the proxy takes a key out of rotation.
//
// # Delivery and signature
//
// When the workspace has a webhook URL (PUT /alerts/settings), the alert's
// JSON (see Payload) is POSTed to it with these headers:
//
//	Content-Type: application/json
//	X-Wallet-Alert-Id: alr_…            (the same on every attempt)
//	X-Wallet-Delivery-Attempt: 1..5
//	X-Wallet-Signature: t=1767225600,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
//
// The signature works like Stripe's Stripe-Signature: t is the Unix time
// of the attempt and v1 the lower-case hex HMAC-SHA256, keyed with the
// webhook secret (the whole string, "whsec_…"), of the string
// "<t>.<body>" — the decimal timestamp, a full stop, and the raw request
// body, byte for byte. To verify, a receiver splits the header on ",",
// recomputes the HMAC over its own t and the raw body, compares it in
// constant time with each v1 value, and rejects a t more than a few
// minutes old (Verify does all of this). The secret is generated and shown
// once when the webhook is configured without one.
//
// A delivery is retried with exponential backoff (5 attempts by default:
// after 2 s, 4 s, 8 s and 16 s) until the receiver answers 2xx.
// Redirects are not followed and count as failures. Each attempt is
// claimed in the database first, so no two instances ever send the same
// alert at once, and once an attempt got a 2xx there is no other. If an
// instance dies mid-delivery another one resumes it after its lease; in
// that case only (a receiver that got the POST but whose 2xx was never
// recorded) can the same alert arrive twice, with the same X-Wallet-Alert-Id,
// by which a receiver deduplicates.
//
// Webhook URLs must be http(s) and, unless ALERT_WEBHOOK_ALLOW_PRIVATE is
// true, may not reach a loopback, private, link-local or otherwise
// internal address: this is checked when the URL is set and again on
// every connection (so DNS that changes its answer does not get around it).
package alerts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// Store is what the service needs from storage.
type Store interface {
	apiwallet.AlertStore
}

// Sealer seals and opens the webhook signing secret under the workspace's
// data key (internal/vault.Service).
type Sealer interface {
	SealSecret(ctx context.Context, workspaceID, name string, plain []byte) ([]byte, error)
	OpenSecret(ctx context.Context, workspaceID, name string, sealed []byte) ([]byte, error)
}

// secretName binds the sealed webhook secret to its purpose.
const secretName = "alert-webhook-secret"

// Options tune the service.
type Options struct {
	// AllowPrivate lets webhook URLs reach loopback and private addresses
	// (ALERT_WEBHOOK_ALLOW_PRIVATE; tests).
	AllowPrivate bool
	// MaxAttempts bounds deliveries of one alert (default 5).
	MaxAttempts int
	// Backoff is the wait after the first failed attempt, doubled after
	// each further one (default 2 s) up to MaxBackoff (default 5 min).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Timeout bounds one attempt (default 10 s).
	Timeout time.Duration
	// Transport replaces the SSRF-guarded transport (tests).
	Transport http.RoundTripper
	Now       func() time.Time
}

// Service raises alerts and delivers them.
type Service struct {
	store  Store
	sealer Sealer
	log    *slog.Logger
	opts   Options
	client *http.Client

	mu      sync.Mutex
	closed  bool
	stop    chan struct{}
	wg      sync.WaitGroup
	sending map[string]bool // alert ids this instance is delivering

	// known holds crossings stored already (by any instance), and
	// cached each workspace's thresholds, so that Check called on every
	// request costs no database round trip once a crossing is raised.
	cacheMu sync.Mutex
	known   map[string]struct{}
	cached  map[string]cachedThresholds
}

type cachedThresholds struct {
	thresholds []int
	expires    time.Time
}

// Cache bounds: thresholds are re-read after thresholdsTTL (a change on
// another instance applies here within it); the set of known crossings
// starts over past maxKnown entries.
const (
	thresholdsTTL = 30 * time.Second
	maxKnown      = 100_000
	maxCached     = 10_000
)

// New returns a Service. sealer may be nil only in tests: the webhook
// secret is then stored unsealed.
func New(store Store, sealer Sealer, log *slog.Logger, o Options) *Service {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = 2 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rt := o.Transport
	if rt == nil {
		rt = guardedTransport(o.AllowPrivate)
	}
	return &Service{
		store: store, sealer: sealer, log: log, opts: o, stop: make(chan struct{}), sending: map[string]bool{},
		known: map[string]struct{}{}, cached: map[string]cachedThresholds{},
		client: &http.Client{
			Transport: rt,
			Timeout:   o.Timeout,
			// A redirect could lead anywhere; the receiver must answer
			// at the URL it gave.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// Close stops retries (another instance, or this one after a restart,
// resumes them) and waits for attempts in flight.
func (s *Service) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.stop)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Settings is a workspace's alert configuration as the API shows it: the
// secret itself never leaves except once, when generated.
type Settings struct {
	Thresholds []int
	WebhookURL string
	HasSecret  bool
	UpdatedAt  time.Time // zero: the defaults
}

// Settings returns a workspace's settings, or the defaults.
func (s *Service) Settings(ctx context.Context, workspaceID string) (*Settings, error) {
	st, err := s.store.FindAlertSettings(ctx, workspaceID)
	if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND {
		return &Settings{Thresholds: slices.Clone(apiwallet.DefaultAlertThresholds)}, nil
	} else if err != nil {
		return nil, err
	}
	return &Settings{Thresholds: st.Thresholds, WebhookURL: st.WebhookURL, HasSecret: len(st.WebhookSecret) > 0,
		UpdatedAt: st.UpdatedAt}, nil
}

// thresholds returns a workspace's thresholds, cached for thresholdsTTL.
func (s *Service) thresholds(ctx context.Context, workspaceID string) ([]int, error) {
	now := s.opts.Now()
	s.cacheMu.Lock()
	c, ok := s.cached[workspaceID]
	s.cacheMu.Unlock()
	if ok && now.Before(c.expires) {
		return c.thresholds, nil
	}
	st, err := s.Settings(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	s.cacheMu.Lock()
	if len(s.cached) >= maxCached {
		clear(s.cached)
	}
	s.cached[workspaceID] = cachedThresholds{thresholds: st.Thresholds, expires: now.Add(thresholdsTTL)}
	s.cacheMu.Unlock()
	return st.Thresholds, nil
}

// crossingKey names a crossing as the alerts table's unique key does.
func crossingKey(a *apiwallet.Alert) string {
	return fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%d", a.WorkspaceID, a.Kind, a.Subject, a.Period, a.Threshold)
}

// isKnown reports whether the crossing is stored already; markKnown
// records that it is.
func (s *Service) isKnown(a *apiwallet.Alert) bool {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	_, ok := s.known[crossingKey(a)]
	return ok
}

func (s *Service) markKnown(a *apiwallet.Alert) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	if len(s.known) >= maxKnown {
		clear(s.known)
	}
	s.known[crossingKey(a)] = struct{}{}
}

// SettingsInput is PUT /alerts/settings. Nil fields take their defaults:
// thresholds 80 and 100; no webhook. WebhookSecret nil with a webhook URL
// keeps the current secret, or generates one (returned once) if there is
// none; to rotate it, send a new one.
type SettingsInput struct {
	Thresholds    []int
	WebhookURL    *string
	WebhookSecret *string
}

// Secret lengths.
const (
	minSecretLen = 16
	maxSecretLen = 200
)

// PutSettings validates in, replaces the workspace's settings and records
// ev. It returns the settings and, when it generated the webhook secret,
// that secret: the only time it is shown. EINVALID.
func (s *Service) PutSettings(ctx context.Context, workspaceID string, in SettingsInput, ev *apiwallet.AuditEvent) (*Settings, string, error) {
	var v apiwallet.ValidationError
	thresholds := slices.Clone(apiwallet.DefaultAlertThresholds)
	if in.Thresholds != nil {
		thresholds = slices.Clone(in.Thresholds)
		slices.Sort(thresholds)
		switch {
		case len(thresholds) == 0:
			v.Add("thresholds", "must list at least one percentage, such as [80, 100]")
		case len(thresholds) > apiwallet.MaxAlertThresholds:
			v.Add("thresholds", fmt.Sprintf("may list at most %d percentages", apiwallet.MaxAlertThresholds))
		case thresholds[0] < 1 || thresholds[len(thresholds)-1] > 1000:
			v.Add("thresholds", "each must be a whole percentage from 1 to 1000")
		case len(slices.Compact(slices.Clone(thresholds))) != len(thresholds):
			v.Add("thresholds", "must not repeat a percentage")
		}
	}
	url := ""
	if in.WebhookURL != nil {
		url = strings.TrimSpace(*in.WebhookURL)
	}
	if url != "" {
		if err := ValidateWebhookURL(ctx, url, s.opts.AllowPrivate); err != "" {
			v.Add("webhookUrl", err)
		}
	}
	if in.WebhookSecret != nil {
		switch n := len(*in.WebhookSecret); {
		case url == "":
			v.Add("webhookSecret", "is only allowed with a webhookUrl")
		case n < minSecretLen || n > maxSecretLen:
			v.Add("webhookSecret", fmt.Sprintf("must be %d to %d characters", minSecretLen, maxSecretLen))
		}
	}
	if err := v.Err(); err != nil {
		return nil, "", err
	}

	st := &apiwallet.AlertSettings{WorkspaceID: workspaceID, Thresholds: thresholds, WebhookURL: url}
	generated := ""
	if url != "" {
		var plain string
		switch {
		case in.WebhookSecret != nil:
			plain = *in.WebhookSecret
		default:
			cur, err := s.store.FindAlertSettings(ctx, workspaceID)
			if err != nil && apiwallet.ErrorCode(err) != apiwallet.ENOTFOUND {
				return nil, "", err
			}
			if cur != nil && len(cur.WebhookSecret) > 0 {
				st.WebhookSecret = cur.WebhookSecret
			} else {
				plain = NewSecret()
				generated = plain
			}
		}
		if plain != "" {
			sealed, err := s.seal(ctx, workspaceID, plain)
			if err != nil {
				return nil, "", err
			}
			st.WebhookSecret = sealed
		}
	}
	if ev != nil {
		ev.Details = map[string]string{"thresholds": fmt.Sprint(thresholds), "webhook": fmt.Sprint(url != ""),
			"secret_changed": fmt.Sprint(in.WebhookSecret != nil || generated != "")}
	}
	if err := s.store.PutAlertSettings(ctx, st, ev); err != nil {
		return nil, "", err
	}
	s.cacheMu.Lock()
	delete(s.cached, workspaceID)
	s.cacheMu.Unlock()
	return &Settings{Thresholds: st.Thresholds, WebhookURL: st.WebhookURL, HasSecret: len(st.WebhookSecret) > 0,
		UpdatedAt: st.UpdatedAt}, generated, nil
}

// NewSecret returns a new webhook signing secret: "whsec_" and 32 random
// bytes in hex.
func NewSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "whsec_" + hex.EncodeToString(b[:])
}

func (s *Service) seal(ctx context.Context, workspaceID, plain string) ([]byte, error) {
	if s.sealer == nil {
		return []byte(plain), nil
	}
	return s.sealer.SealSecret(ctx, workspaceID, secretName, []byte(plain))
}

func (s *Service) open(ctx context.Context, workspaceID string, sealed []byte) ([]byte, error) {
	if s.sealer == nil {
		return slices.Clone(sealed), nil
	}
	return s.sealer.OpenSecret(ctx, workspaceID, secretName, sealed)
}

// List returns a workspace's alerts, newest first.
func (s *Service) List(ctx context.Context, f apiwallet.AlertFilter) ([]*apiwallet.Alert, error) {
	return s.store.FindAlerts(ctx, f)
}

// Check raises the plan-quota alerts that used calls out of included (in
// the period named period, such as "2026-05") have crossed, and returns
// those this call raised: each threshold fires once per workspace and
// period, whoever calls. included <= 0 (no quota) raises nothing.
func (s *Service) Check(ctx context.Context, workspaceID string, used, included int64, period string) ([]*apiwallet.Alert, error) {
	return s.check(ctx, workspaceID, apiwallet.AlertPlanQuota, "plan", used, included, period, nil)
}

// CheckKey is Check for one key's quota (metadata.quota) in its period.
func (s *Service) CheckKey(ctx context.Context, workspaceID, keyID string, used, quota int64, period string) ([]*apiwallet.Alert, error) {
	return s.check(ctx, workspaceID, apiwallet.AlertKeyQuota, keyID, used, quota, period, nil)
}

func (s *Service) check(ctx context.Context, workspaceID, kind, subject string, used, limit int64, period string,
	details map[string]string) ([]*apiwallet.Alert, error) {
	if limit <= 0 || used <= 0 || workspaceID == "" {
		return nil, nil
	}
	thresholds, err := s.thresholds(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	var raised []*apiwallet.Alert
	for _, t := range thresholds {
		// used/limit >= t/100, in integers.
		if used*100 < limit*int64(t) {
			continue
		}
		a := &apiwallet.Alert{WorkspaceID: workspaceID, Kind: kind, Subject: subject, Period: period, Threshold: t,
			Used: used, Limit: limit, Message: quotaMessage(kind, subject, t, used, limit, period), Details: details}
		ok, err := s.Raise(ctx, a)
		if err != nil {
			return raised, err
		}
		if ok {
			raised = append(raised, a)
		}
	}
	return raised, nil
}

func quotaMessage(kind, subject string, t int, used, limit int64, period string) string {
	what := "the plan's included calls"
	if kind == apiwallet.AlertKeyQuota {
		what = "the quota of key " + subject
	}
	return fmt.Sprintf("%d%% of %s reached in %s: %d of %d calls used", t, what, period, used, limit)
}

// KeyQuarantined raises a key_quarantined alert: the proxy took keyID out
// of rotation because the upstream refused it. At most one per key and UTC
// day, across instances. It never fails the caller: errors are logged.
func (s *Service) KeyQuarantined(ctx context.Context, workspaceID, keyID, reason string) {
	a := &apiwallet.Alert{WorkspaceID: workspaceID, Kind: apiwallet.AlertKeyQuarantined, Subject: keyID,
		Period:  s.opts.Now().UTC().Format(time.DateOnly),
		Message: fmt.Sprintf("key %s was taken out of rotation: the upstream refused it (%s)", keyID, reason),
		Details: map[string]string{"reason": reason}}
	if _, err := s.Raise(context.WithoutCancel(ctx), a); err != nil {
		s.log.WarnContext(ctx, "alerts: key quarantined alert not raised", "key_id", keyID, "err", err)
	}
}

// Raise records a unless the same crossing was raised before, and, if this
// call raised it, delivers it to the workspace's webhook in the
// background. It reports whether this call raised it.
func (s *Service) Raise(ctx context.Context, a *apiwallet.Alert) (bool, error) {
	if s.isKnown(a) {
		return false, nil
	}
	if err := s.Prepare(ctx, a); err != nil {
		return false, err
	}
	ev := apiwallet.NewAuditEvent(ctx, a.WorkspaceID, apiwallet.ActorSystem, "alerts", "alert.raise", "alert", "")
	ev.Details = map[string]string{"kind": a.Kind, "subject": a.Subject, "period": a.Period,
		"threshold": fmt.Sprint(a.Threshold)}
	ok, err := s.store.CreateAlert(ctx, a, ev)
	if err != nil {
		return false, err
	}
	s.markKnown(a)
	if !ok {
		return false, nil
	}
	s.log.InfoContext(ctx, "alert raised", "alert_id", a.ID, "workspace_id", a.WorkspaceID, "kind", a.Kind,
		"subject", a.Subject, "period", a.Period, "threshold", a.Threshold, "delivery", a.Delivery.State)
	s.Dispatch(a)
	return true, nil
}

// Prepare sets a's delivery state from the workspace's settings before a
// is stored by someone else (the Stripe webhook raises its alert in the
// transaction that applies the event); call Dispatch once it is stored.
func (s *Service) Prepare(ctx context.Context, a *apiwallet.Alert) error {
	st, err := s.store.FindAlertSettings(ctx, a.WorkspaceID)
	if err != nil && apiwallet.ErrorCode(err) != apiwallet.ENOTFOUND {
		return err
	}
	a.Delivery = apiwallet.AlertDelivery{State: apiwallet.DeliveryNone}
	if st != nil && st.WebhookURL != "" {
		a.Delivery.State = apiwallet.DeliveryPending
	}
	return nil
}
