package apiwallet

import (
	"context"
	"time"
)

// StripeEvent is a Stripe webhook event whose signature checked out, as
// the wallet records it: every event id is recorded once, so a replay or a
// redelivery changes nothing.
type StripeEvent struct {
	ID   string // evt_…
	Type string
	// Created is when Stripe created the event; SignedAt the timestamp of
	// the Stripe-Signature it came with. Stripe signs each delivery anew,
	// so a redelivery has a later SignedAt while a replay of a captured
	// request has the same one.
	Created  time.Time
	SignedAt time.Time
	// WorkspaceID is the workspace the event was resolved to; "" when none.
	WorkspaceID string
}

// StripeChange is what an event does to its workspace. Empty fields change
// nothing.
type StripeChange struct {
	WorkspaceID        string
	CustomerID         string
	SubscriptionID     string
	SubscriptionStatus string
	// Plan, when set, becomes the workspace's plan.
	Plan string
	// PastDue, when set, marks or clears the workspace as past due.
	PastDue *bool
	// IfSubscription, when set, makes the plan, status and past-due parts
	// apply only while the workspace's subscription is this one (or it
	// has none): the end of a subscription that was replaced changes
	// nothing.
	IfSubscription string
	// Alert, when set, is raised in the same transaction (see
	// AlertStore.CreateAlert).
	Alert *Alert
}

// StripeOutcome is what recording an event did.
type StripeOutcome struct {
	// Duplicate: the event id was recorded before; nothing changed.
	Duplicate bool
	// Replayed: a duplicate with the very signature timestamp of the
	// recorded one, i.e. the same signed request sent again.
	Replayed bool
	// Stale: the event is older than one already applied to the
	// workspace (Stripe does not deliver in order); it is recorded but
	// changes nothing.
	Stale bool
	// Applied: the change was made (and audited).
	Applied      bool
	FromPlan     string
	ToPlan       string
	AlertCreated bool
}

// StripeBilling is a workspace's link to Stripe.
type StripeBilling struct {
	WorkspaceID        string
	CustomerID         string
	SubscriptionID     string
	SubscriptionStatus string
	PastDue            bool
	// LastEventAt is the creation time of the newest event applied.
	LastEventAt time.Time
	UpdatedAt   time.Time
}

// StripeStore persists Stripe events and each workspace's Stripe link.
type StripeStore interface {
	// RecordStripeEvent records e and, unless its id is recorded already
	// or it is older than the last event applied to the workspace,
	// applies c (when not nil) to the workspace, recording ev with the
	// change, all in one transaction. A change naming a workspace that
	// does not exist records the event only.
	RecordStripeEvent(ctx context.Context, e *StripeEvent, c *StripeChange, ev *AuditEvent) (*StripeOutcome, error)
	// FindStripeBilling returns a workspace's Stripe link. ENOTFOUND.
	FindStripeBilling(ctx context.Context, workspaceID string) (*StripeBilling, error)
	// FindWorkspaceIDByStripeCustomer returns the workspace linked to a
	// Stripe customer, or to a subscription when customerID is "".
	// ENOTFOUND.
	FindWorkspaceIDByStripeCustomer(ctx context.Context, customerID, subscriptionID string) (string, error)
}
