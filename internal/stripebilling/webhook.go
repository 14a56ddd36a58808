// Package stripebilling connects workspace plans to Stripe subscriptions:
// it verifies and applies Stripe's webhook events and creates Checkout
// Sessions, both through the official stripe-go SDK.
//
// # Webhook
//
// Every event is verified with webhook.ConstructEventWithOptions against
// STRIPE_WEBHOOK_SECRET (Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
// "<t>.<body>">), with a 300 s tolerance on t. Its id is then inserted into
// stripe_events in the transaction that applies it, so each event changes
// the wallet at most once, on any number of instances:
//
//   - the same signed request sent again (same id and same t: a replay)
//     is refused with 400 and changes nothing;
//   - a redelivery by Stripe (same id, signed anew) is acknowledged with
//     200 {"received":true,"duplicate":true} and changes nothing, so that
//     Stripe stops retrying an event it thinks was lost.
//
// Events are applied to the workspace named by the object's metadata
// workspace_id (set on every Checkout Session and its subscription), by a
// Checkout Session's client_reference_id, or by the Stripe customer or
// subscription already linked to a workspace:
//
//   - checkout.session.completed links the customer and subscription and,
//     once paid, moves the workspace to metadata.plan;
//   - customer.subscription.created/updated: active or trialing moves the
//     workspace to the plan of the subscription's price (its lookup_key, a
//     STRIPE_PRICE_<PLAN> price id, or metadata.plan); past_due marks it
//     past due; canceled, unpaid, incomplete_expired and paused move it to
//     free;
//   - customer.subscription.deleted moves it to free;
//   - invoice.payment_failed marks it past due (the plan stays) and raises
//     a payment_failed alert, once per invoice.
//
// Stripe does not deliver in order: an event older than the newest one
// applied to a workspace changes neither its plan nor its status, and the
// end of a subscription that another one replaced changes nothing. Every
// change is audited (billing.stripe_event, with the plan before and after).
package stripebilling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/apikeywallet/apiwallet"
)

// Store is what the service needs from storage.
type Store interface {
	apiwallet.StripeStore
	AppendAudit(ctx context.Context, ev *apiwallet.AuditEvent) error
	// FindPlanByID reads a plan (apiwallet.BillingStore). ENOTFOUND.
	FindPlanByID(ctx context.Context, id string) (*apiwallet.Plan, error)
}

// Alerts raises the payment_failed alert: Prepare before the event is
// stored (the alert is inserted in its transaction), Dispatch after.
type Alerts interface {
	Prepare(ctx context.Context, a *apiwallet.Alert) error
	Dispatch(a *apiwallet.Alert)
}

// Config is the Stripe configuration.
type Config struct {
	// WebhookSecret (STRIPE_WEBHOOK_SECRET, "whsec_…") verifies events;
	// without it the webhook is not served.
	WebhookSecret string
	// SecretKey (STRIPE_SECRET_KEY) creates Checkout Sessions; without it
	// plans are changed by administrators only.
	SecretKey string
	// APIBaseURL (STRIPE_API_BASE_URL) replaces https://api.stripe.com,
	// for stripe-mock in tests.
	APIBaseURL string
	// Prices maps a plan id to its Stripe price id (STRIPE_PRICE_<PLAN>);
	// a plan without one uses the price whose lookup_key is the plan id.
	Prices map[string]string
	// SuccessURL and CancelURL are where Checkout sends the customer
	// back to.
	SuccessURL string
	CancelURL  string
	// Tolerance bounds the age of a signature (default 300 s).
	Tolerance time.Duration
}

// Service applies webhook events and creates Checkout Sessions.
type Service struct {
	cfg    Config
	store  Store
	alerts Alerts
	log    *slog.Logger
	client *stripe.Client
	now    func() time.Time
}

// New returns a Service; alerts may be nil.
func New(cfg Config, store Store, alerts Alerts, log *slog.Logger) *Service {
	if cfg.Tolerance <= 0 {
		cfg.Tolerance = webhook.DefaultTolerance
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, store: store, alerts: alerts, log: log, now: time.Now}
	if cfg.SecretKey != "" {
		s.client = newClient(cfg.SecretKey, cfg.APIBaseURL)
	}
	return s
}

// WebhookConfigured reports whether STRIPE_WEBHOOK_SECRET is set.
func (s *Service) WebhookConfigured() bool { return s != nil && s.cfg.WebhookSecret != "" }

// CheckoutConfigured reports whether STRIPE_SECRET_KEY is set.
func (s *Service) CheckoutConfigured() bool { return s != nil && s.client != nil }

// Result is what a webhook delivery did.
type Result struct {
	EventID   string
	Type      string
	Duplicate bool
	// Ignored says why an event changed nothing, when it did not.
	Ignored string
	Outcome *apiwallet.StripeOutcome
}

// ErrNotConfigured answers the webhook without STRIPE_WEBHOOK_SECRET.
var ErrNotConfigured = apiwallet.Errorf(apiwallet.EUNAVAILABLE, "Stripe is not configured: set STRIPE_WEBHOOK_SECRET")

// HandleWebhook verifies payload against the Stripe-Signature header and
// applies it. A bad, stale or missing signature, a body that does not
// parse, and a replayed request are EINVALID and change nothing.
func (s *Service) HandleWebhook(ctx context.Context, payload []byte, signature string) (*Result, error) {
	if !s.WebhookConfigured() {
		return nil, ErrNotConfigured
	}
	e, err := webhook.ConstructEventWithOptions(payload, signature, s.cfg.WebhookSecret,
		webhook.ConstructEventOptions{Tolerance: s.cfg.Tolerance, IgnoreAPIVersionMismatch: true})
	if err != nil {
		return nil, apiwallet.Errorf(apiwallet.EINVALID, "the Stripe event was refused: %s", signatureProblem(err))
	}
	if e.ID == "" || e.Type == "" {
		return nil, apiwallet.Errorf(apiwallet.EINVALID, "the Stripe event has no id or type")
	}
	res := &Result{EventID: e.ID, Type: string(e.Type)}
	rec := &apiwallet.StripeEvent{ID: e.ID, Type: string(e.Type), Created: time.Unix(e.Created, 0).UTC(),
		SignedAt: signedAt(signature)}
	change, ignored, err := s.change(ctx, &e)
	if err != nil {
		return nil, err
	}
	res.Ignored = ignored
	if change != nil && change.Alert != nil && s.alerts != nil {
		if err := s.alerts.Prepare(ctx, change.Alert); err != nil {
			return nil, err
		}
	}
	ev := apiwallet.NewAuditEvent(ctx, "", apiwallet.ActorSystem, "stripe", "billing.stripe_event", "workspace", "")
	out, err := s.store.RecordStripeEvent(ctx, rec, change, ev)
	if err != nil {
		return nil, err
	}
	res.Outcome = out
	if out.Replayed {
		return nil, apiwallet.Errorf(apiwallet.EINVALID, "event %s was already received with this very signature: a replayed request changes nothing", e.ID)
	}
	res.Duplicate = out.Duplicate
	if out.AlertCreated && s.alerts != nil {
		s.alerts.Dispatch(change.Alert)
	}
	log := s.log.With("stripe_event", e.ID, "type", e.Type, "workspace_id", rec.WorkspaceID)
	switch {
	case out.Duplicate:
		log.InfoContext(ctx, "stripe: duplicate event ignored")
	case out.Applied:
		log.InfoContext(ctx, "stripe: event applied", "plan_from", out.FromPlan, "plan_to", out.ToPlan, "stale", out.Stale)
	default:
		if res.Ignored == "" {
			res.Ignored = "nothing to change"
			if out.Stale {
				res.Ignored = "superseded by a newer event"
			}
		}
		log.InfoContext(ctx, "stripe: event changed nothing", "reason", res.Ignored)
	}
	return res, nil
}

// signatureProblem says what was wrong with a signature, without echoing
// anything the sender controls.
func signatureProblem(err error) string {
	switch {
	case errors.Is(err, webhook.ErrNotSigned):
		return "the Stripe-Signature header is missing"
	case errors.Is(err, webhook.ErrInvalidHeader):
		return "the Stripe-Signature header is malformed"
	case errors.Is(err, webhook.ErrTooOld):
		return "the signature timestamp is outside the tolerance (a stale or replayed request)"
	case errors.Is(err, webhook.ErrNoValidSignature):
		return "no signature matches the payload and the webhook secret"
	default:
		return "the payload is not a Stripe event"
	}
}

// signedAt is the t of a Stripe-Signature header that verified (the last
// one, as stripe-go reads it).
func signedAt(header string) time.Time {
	var t time.Time
	for _, part := range strings.Split(header, ",") {
		if v, ok := strings.CutPrefix(part, "t="); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				t = time.Unix(n, 0).UTC()
			}
		}
	}
	return t
}

// change maps an event to what it does, resolving its workspace. An event
// the wallet does not act on gives a nil change and the reason.
func (s *Service) change(ctx context.Context, e *stripe.Event) (*apiwallet.StripeChange, string, error) {
	if e.Data == nil || len(e.Data.Raw) == 0 {
		return nil, "the event has no object", nil
	}
	switch e.Type {
	case stripe.EventTypeCheckoutSessionCompleted:
		var cs stripe.CheckoutSession
		if err := json.Unmarshal(e.Data.Raw, &cs); err != nil {
			return nil, "", apiwallet.Errorf(apiwallet.EINVALID, "the checkout session does not parse")
		}
		return s.checkoutCompleted(ctx, &cs)
	case stripe.EventTypeCustomerSubscriptionCreated, stripe.EventTypeCustomerSubscriptionUpdated,
		stripe.EventTypeCustomerSubscriptionDeleted:
		var sub stripe.Subscription
		if err := json.Unmarshal(e.Data.Raw, &sub); err != nil {
			return nil, "", apiwallet.Errorf(apiwallet.EINVALID, "the subscription does not parse")
		}
		return s.subscriptionChanged(ctx, &sub, e.Type == stripe.EventTypeCustomerSubscriptionDeleted)
	case stripe.EventTypeInvoicePaymentFailed:
		var inv stripe.Invoice
		if err := json.Unmarshal(e.Data.Raw, &inv); err != nil {
			return nil, "", apiwallet.Errorf(apiwallet.EINVALID, "the invoice does not parse")
		}
		return s.paymentFailed(ctx, &inv)
	default:
		return nil, "the wallet does not act on " + string(e.Type), nil
	}
}

func customerID(c *stripe.Customer) string {
	if c == nil {
		return ""
	}
	return c.ID
}

// workspace resolves the workspace an object belongs to: named in its
// metadata (or checkout's client_reference_id), else the workspace linked
// to its customer, else to its subscription.
func (s *Service) workspace(ctx context.Context, named, customer, subscription string) (string, error) {
	if named != "" {
		return named, nil
	}
	for _, q := range [][2]string{{customer, ""}, {"", subscription}} {
		if q[0] == "" && q[1] == "" {
			continue
		}
		id, err := s.store.FindWorkspaceIDByStripeCustomer(ctx, q[0], q[1])
		if err == nil {
			return id, nil
		} else if apiwallet.ErrorCode(err) != apiwallet.ENOTFOUND {
			return "", err
		}
	}
	return "", nil
}

const noWorkspace = "no workspace is named by the event or linked to its customer"

func (s *Service) checkoutCompleted(ctx context.Context, cs *stripe.CheckoutSession) (*apiwallet.StripeChange, string, error) {
	named := cs.Metadata["workspace_id"]
	if named == "" {
		named = cs.ClientReferenceID
	}
	sub := ""
	if cs.Subscription != nil {
		sub = cs.Subscription.ID
	}
	ws, err := s.workspace(ctx, named, customerID(cs.Customer), sub)
	if err != nil || ws == "" {
		return nil, noWorkspace, err
	}
	c := &apiwallet.StripeChange{WorkspaceID: ws, CustomerID: customerID(cs.Customer), SubscriptionID: sub}
	// An asynchronous payment method completes the session unpaid: the
	// plan follows once the subscription becomes active.
	if cs.Mode == stripe.CheckoutSessionModeSubscription && cs.PaymentStatus != stripe.CheckoutSessionPaymentStatusUnpaid {
		c.Plan = normalizePlan(cs.Metadata["plan"])
		if c.Plan != "" {
			f := false
			c.PastDue = &f
		}
	}
	return c, "", nil
}

func (s *Service) subscriptionChanged(ctx context.Context, sub *stripe.Subscription, deleted bool) (*apiwallet.StripeChange, string, error) {
	ws, err := s.workspace(ctx, sub.Metadata["workspace_id"], customerID(sub.Customer), sub.ID)
	if err != nil || ws == "" {
		return nil, noWorkspace, err
	}
	c := &apiwallet.StripeChange{WorkspaceID: ws, CustomerID: customerID(sub.Customer), SubscriptionID: sub.ID,
		SubscriptionStatus: string(sub.Status)}
	f, t := false, true
	switch {
	case deleted:
		c.SubscriptionStatus = string(stripe.SubscriptionStatusCanceled)
		c.Plan, c.PastDue, c.IfSubscription = apiwallet.PlanFree, &f, sub.ID
	case sub.Status == stripe.SubscriptionStatusActive || sub.Status == stripe.SubscriptionStatusTrialing:
		c.Plan, c.PastDue = s.planOf(sub), &f
	case sub.Status == stripe.SubscriptionStatusPastDue:
		c.PastDue = &t
	case sub.Status == stripe.SubscriptionStatusCanceled || sub.Status == stripe.SubscriptionStatusUnpaid ||
		sub.Status == stripe.SubscriptionStatusIncompleteExpired || sub.Status == stripe.SubscriptionStatusPaused:
		c.Plan, c.PastDue, c.IfSubscription = apiwallet.PlanFree, &f, sub.ID
	}
	return c, "", nil
}

// planOf is the plan a subscription pays for: its price's lookup_key, the
// plan whose STRIPE_PRICE_<PLAN> is its price, or its metadata.plan.
func (s *Service) planOf(sub *stripe.Subscription) string {
	if sub.Items != nil {
		for _, it := range sub.Items.Data {
			if it == nil || it.Price == nil {
				continue
			}
			if p := normalizePlan(it.Price.LookupKey); p != "" {
				return p
			}
			for plan, price := range s.cfg.Prices {
				if price == it.Price.ID {
					return plan
				}
			}
		}
	}
	return normalizePlan(sub.Metadata["plan"])
}

func (s *Service) paymentFailed(ctx context.Context, inv *stripe.Invoice) (*apiwallet.StripeChange, string, error) {
	named, sub := "", ""
	if inv.Parent != nil && inv.Parent.SubscriptionDetails != nil {
		named = inv.Parent.SubscriptionDetails.Metadata["workspace_id"]
		if inv.Parent.SubscriptionDetails.Subscription != nil {
			sub = inv.Parent.SubscriptionDetails.Subscription.ID
		}
	}
	if named == "" {
		named = inv.Metadata["workspace_id"]
	}
	ws, err := s.workspace(ctx, named, customerID(inv.Customer), sub)
	if err != nil || ws == "" {
		return nil, noWorkspace, err
	}
	t := true
	subject := inv.ID
	if subject == "" {
		subject = "unknown-invoice"
	}
	details := map[string]string{"invoice": inv.ID, "attempt_count": strconv.FormatInt(inv.AttemptCount, 10),
		"amount_due": strconv.FormatInt(inv.AmountDue, 10), "currency": string(inv.Currency)}
	if inv.NextPaymentAttempt > 0 {
		details["next_payment_attempt"] = time.Unix(inv.NextPaymentAttempt, 0).UTC().Format(time.RFC3339)
	}
	msg := fmt.Sprintf("Stripe could not collect invoice %s (attempt %d); the workspace is past due and keeps its plan while Stripe retries",
		inv.ID, inv.AttemptCount)
	return &apiwallet.StripeChange{WorkspaceID: ws, CustomerID: customerID(inv.Customer), PastDue: &t,
		Alert: &apiwallet.Alert{WorkspaceID: ws, Kind: apiwallet.AlertPaymentFailed, Subject: subject,
			Message: msg, Details: details}}, "", nil
}

// normalizePlan is a plan id from Stripe data, or "".
func normalizePlan(p string) string {
	p = strings.ToLower(strings.TrimSpace(p))
	if p == "" || len(p) > 40 {
		return ""
	}
	for _, r := range p {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' && r != '_' {
			return ""
		}
	}
	return p
}
