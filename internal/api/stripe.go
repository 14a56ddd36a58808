package api

import (
	"errors"
	"io"
	"net/http"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/stripebilling"
)

// maxStripeEventBytes bounds a webhook body; Stripe's events are a few KiB.
const maxStripeEventBytes = 64 << 10

// stripeWebhook is POST /billing/stripe/webhook: a Stripe event, verified
// against STRIPE_WEBHOOK_SECRET with the Stripe-Signature header over the
// raw body (see internal/stripebilling). It answers 200
// {"received":true,...} once the event is applied or known, 400 for a bad,
// stale or replayed signature (changing nothing), and 503 without
// STRIPE_WEBHOOK_SECRET.
func (s *Server) stripeWebhook(w http.ResponseWriter, r *http.Request) error {
	if !s.Stripe.WebhookConfigured() {
		return stripebilling.ErrNotConfigured
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxStripeEventBytes))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return bodyTooLarge(maxStripeEventBytes)
		}
		return apiwallet.Errorf(apiwallet.EINVALID, "the request body could not be read")
	}
	res, err := s.Stripe.HandleWebhook(r.Context(), body, r.Header.Get("Stripe-Signature"))
	if err != nil {
		return err
	}
	out := struct {
		Received  bool   `json:"received"`
		Duplicate bool   `json:"duplicate,omitempty"`
		EventID   string `json:"eventId"`
		Type      string `json:"type"`
		Applied   bool   `json:"applied"`
		Ignored   string `json:"ignored,omitempty"`
		FromPlan  string `json:"fromPlan,omitempty"`
		ToPlan    string `json:"toPlan,omitempty"`
	}{Received: true, Duplicate: res.Duplicate, EventID: res.EventID, Type: res.Type, Ignored: res.Ignored}
	if o := res.Outcome; o != nil && !o.Duplicate {
		out.Applied, out.FromPlan, out.ToPlan = o.Applied, o.FromPlan, o.ToPlan
	}
	return writeJSON(w, http.StatusOK, out)
}

// createCheckout is POST /billing/checkout {plan}: a Stripe Checkout
// Session subscribing the acting workspace to plan (owner or admin). It
// answers 201 {id, url}; the plan changes when Stripe's webhook says the
// session completed. 503 without STRIPE_SECRET_KEY.
func (s *Server) createCheckout(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := p.require(apiwallet.WorkspaceAdmin, "change the workspace's plan"); err != nil {
		return err
	}
	var in struct {
		Plan string `json:"plan"`
	}
	if err := decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	if !s.Stripe.CheckoutConfigured() {
		return stripebilling.ErrCheckoutNotConfigured
	}
	cs, err := s.Stripe.Checkout(r.Context(), p.Membership, p.User, in.Plan)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, map[string]string{"id": cs.ID, "url": cs.URL})
}

// getSubscription is GET /billing/subscription: the acting workspace's
// link to Stripe, and whether self-service checkout is available.
func (s *Server) getSubscription(w http.ResponseWriter, r *http.Request, p *Principal) error {
	out := struct {
		Checkout           bool    `json:"checkoutAvailable"`
		CustomerID         *string `json:"customerId"`
		SubscriptionID     *string `json:"subscriptionId"`
		SubscriptionStatus *string `json:"subscriptionStatus"`
		PastDue            bool    `json:"pastDue"`
	}{Checkout: s.Stripe.CheckoutConfigured()}
	if s.Stripe != nil {
		b, err := s.Stripe.Billing(r.Context(), p.Membership.Workspace.ID)
		if err != nil {
			return err
		}
		if b != nil {
			out.CustomerID, out.SubscriptionID = nonEmpty(b.CustomerID), nonEmpty(b.SubscriptionID)
			out.SubscriptionStatus, out.PastDue = nonEmpty(b.SubscriptionStatus), b.PastDue
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
