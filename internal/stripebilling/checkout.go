package stripebilling

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/config"
)

// ErrCheckoutNotConfigured answers POST /billing/checkout without
// STRIPE_SECRET_KEY.
var ErrCheckoutNotConfigured = apiwallet.Errorf(apiwallet.EUNAVAILABLE,
	"plans are changed by an administrator: Stripe checkout is not configured (STRIPE_SECRET_KEY)")

// newClient returns stripe-go pointed at base (https://api.stripe.com
// when empty).
func newClient(key, base string) *stripe.Client {
	cfg := &stripe.BackendConfig{
		HTTPClient:        &http.Client{Timeout: 30 * time.Second},
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
		MaxNetworkRetries: stripe.Int64(2),
	}
	if base != "" {
		cfg.URL = stripe.String(strings.TrimRight(base, "/"))
	}
	return stripe.NewClient(key, stripe.WithBackends(stripe.NewBackendsWithConfig(cfg)))
}

// CheckoutSession is a created Stripe Checkout Session: send the customer
// to URL.
type CheckoutSession struct {
	ID  string
	URL string
}

// Checkout creates a Checkout Session that subscribes workspace m to plan,
// for actor (the API checks the role). The session and its subscription
// carry metadata workspace_id and plan, and the session's
// client_reference_id is the workspace id, so that the webhook finds the
// workspace. EINVALID (unknown, retired or free plan; no Stripe price),
// ECONFLICT (the workspace already has a live subscription), EUNAVAILABLE
// (Stripe not configured, or Stripe failed).
func (s *Service) Checkout(ctx context.Context, m *apiwallet.Membership, actor *apiwallet.User, plan string) (*CheckoutSession, error) {
	if !s.CheckoutConfigured() {
		return nil, ErrCheckoutNotConfigured
	}
	ws := m.Workspace.ID
	var v apiwallet.ValidationError
	id := normalizePlan(plan)
	switch {
	case strings.TrimSpace(plan) == "":
		v.Add("plan", "is required, such as \"professional\"")
	case id == "":
		v.Add("plan", "must be a plan id such as \"professional\"")
	case id == apiwallet.PlanFree:
		v.Add("plan", "free needs no checkout; cancel the subscription in Stripe to return to it")
	default:
		p, err := s.store.FindPlanByID(ctx, id)
		switch {
		case apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND:
			v.Add("plan", fmt.Sprintf("no plan has the id %q", id))
		case err != nil:
			return nil, err
		case !p.Active:
			v.Add("plan", fmt.Sprintf("plan %q is retired and takes no new workspaces", id))
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	b, err := s.store.FindStripeBilling(ctx, ws)
	if err != nil && apiwallet.ErrorCode(err) != apiwallet.ENOTFOUND {
		return nil, err
	}
	if b != nil && b.SubscriptionID != "" && liveSubscription(b.SubscriptionStatus) {
		return nil, apiwallet.Errorf(apiwallet.ECONFLICT,
			"the workspace already has a %s Stripe subscription (%s); change or cancel it in Stripe instead of subscribing twice",
			b.SubscriptionStatus, b.SubscriptionID)
	}
	price, err := s.price(ctx, id)
	if err != nil {
		return nil, err
	}
	meta := map[string]string{"workspace_id": ws, "plan": id}
	params := &stripe.CheckoutSessionCreateParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModeSubscription)),
		LineItems:         []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String(price), Quantity: stripe.Int64(1)}},
		ClientReferenceID: stripe.String(ws),
		Metadata:          meta,
		SubscriptionData:  &stripe.CheckoutSessionCreateSubscriptionDataParams{Metadata: meta},
		SuccessURL:        stripe.String(s.cfg.SuccessURL),
		CancelURL:         stripe.String(s.cfg.CancelURL),
	}
	if b != nil && b.CustomerID != "" {
		params.Customer = stripe.String(b.CustomerID)
	} else if actor != nil && actor.Email != "" {
		params.CustomerEmail = stripe.String(actor.Email)
	}
	cs, err := s.client.V1CheckoutSessions.Create(ctx, params)
	if err != nil {
		return nil, stripeFailed("create the checkout session", err)
	}
	if cs.ID == "" || cs.URL == "" {
		return nil, apiwallet.Errorf(apiwallet.EUNAVAILABLE, "Stripe returned a checkout session without an id or URL")
	}
	actorID := ""
	if actor != nil {
		actorID = actor.ID
	}
	ev := apiwallet.NewAuditEvent(ctx, ws, apiwallet.ActorUser, actorID, "billing.checkout", "workspace", ws)
	ev.Details = map[string]string{"plan": id, "checkout_session": cs.ID, "price": price}
	if err := s.store.AppendAudit(ctx, ev); err != nil {
		return nil, err
	}
	return &CheckoutSession{ID: cs.ID, URL: cs.URL}, nil
}

// liveSubscription reports whether a subscription in status still bills.
func liveSubscription(status string) bool {
	switch stripe.SubscriptionStatus(status) {
	case stripe.SubscriptionStatusActive, stripe.SubscriptionStatusTrialing, stripe.SubscriptionStatusPastDue:
		return true
	}
	return false
}

// price is the Stripe price of plan: STRIPE_PRICE_<PLAN>, else the active
// price whose lookup_key is the plan id.
func (s *Service) price(ctx context.Context, plan string) (string, error) {
	if p := s.cfg.Prices[plan]; p != "" {
		return p, nil
	}
	params := &stripe.PriceListParams{LookupKeys: []*string{stripe.String(plan)}, Active: stripe.Bool(true)}
	params.Limit = stripe.Int64(1)
	for p, err := range s.client.V1Prices.List(ctx, params) {
		if err != nil {
			return "", stripeFailed("look up the plan's price", err)
		}
		if p != nil && p.ID != "" {
			return p.ID, nil
		}
		break
	}
	return "", &apiwallet.Error{Code: apiwallet.EINVALID, Message: "the request has invalid fields",
		Fields: []apiwallet.FieldError{{Field: "plan", Detail: fmt.Sprintf(
			"plan %q has no Stripe price: set STRIPE_PRICE_%s or give a Stripe price the lookup key %q",
			plan, strings.ToUpper(strings.ReplaceAll(plan, "-", "_")), plan)}}}
}

// stripeFailed turns a stripe-go error into EUNAVAILABLE with Stripe's
// message (which never holds the secret key).
func stripeFailed(doing string, err error) error {
	var se *stripe.Error
	if errors.As(err, &se) {
		return apiwallet.Errorf(apiwallet.EUNAVAILABLE, "Stripe could not %s: %s (HTTP %d)", doing, se.Msg, se.HTTPStatusCode)
	}
	return apiwallet.Errorf(apiwallet.EUNAVAILABLE, "Stripe could not %s: it did not answer", doing)
}

// Billing returns a workspace's Stripe link, or nil when it has none.
func (s *Service) Billing(ctx context.Context, workspaceID string) (*apiwallet.StripeBilling, error) {
	b, err := s.store.FindStripeBilling(ctx, workspaceID)
	if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND {
		return nil, nil
	}
	return b, err
}

// ConfigFrom is the Stripe part of the wallet's configuration.
func ConfigFrom(c *config.Config) Config {
	return Config{WebhookSecret: c.StripeWebhookSecret, SecretKey: c.StripeSecretKey, APIBaseURL: c.StripeAPIBaseURL,
		Prices: c.StripePrices, SuccessURL: c.StripeSuccessURL, CancelURL: c.StripeCancelURL}
}
