package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"time"

	"github.com/apikeywallet/apiwallet"
)

var _ apiwallet.StripeStore = (*DB)(nil)

// Outcomes recorded with each Stripe event.
const (
	stripeApplied   = "applied"
	stripeUnchanged = "unchanged"
	stripeStale     = "stale"
	stripeIgnored   = "ignored"
	stripeNoWS      = "unknown_workspace"
)

const stripeBillingColumns = `workspace_id, customer_id, subscription_id, subscription_status, past_due,
	last_event_at, updated_at`

func scanStripeBilling(s scanner) (*apiwallet.StripeBilling, error) {
	var (
		b             apiwallet.StripeBilling
		last, updated int64
	)
	if err := s.Scan(&b.WorkspaceID, &b.CustomerID, &b.SubscriptionID, &b.SubscriptionStatus, &b.PastDue,
		&last, &updated); err != nil {
		return nil, err
	}
	if last > 0 {
		b.LastEventAt = fromMicros(last)
	}
	b.UpdatedAt = fromMicros(updated)
	return &b, nil
}

// RecordStripeEvent implements apiwallet.StripeStore. The event id goes in
// first, with INSERT ... ON CONFLICT (id) DO NOTHING, in the transaction
// that applies the change: two deliveries of one event racing each other
// (on one instance or several) apply it once, and a change that fails
// leaves no record, so Stripe's next delivery tries again.
func (db *DB) RecordStripeEvent(ctx context.Context, e *apiwallet.StripeEvent, c *apiwallet.StripeChange,
	ev *apiwallet.AuditEvent) (out *apiwallet.StripeOutcome, err error) {
	defer apiwallet.Wrap(&err, "RecordStripeEvent(%s)", e.ID)
	if e.ID == "" {
		return nil, apiwallet.Errorf(apiwallet.EINVALID, "the event has no id")
	}
	if c != nil && e.WorkspaceID == "" {
		e.WorkspaceID = c.WorkspaceID
	}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		out = &apiwallet.StripeOutcome{}
		var id string
		err := tx.QueryRowContext(ctx, `INSERT INTO stripe_events (id, type, workspace_id, created, signed_at,
				received_at, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING RETURNING id`,
			e.ID, e.Type, e.WorkspaceID, micros(e.Created), micros(e.SignedAt), db.now(), stripeIgnored).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			out.Duplicate = true
			var signed int64
			if err := tx.QueryRowContext(ctx, `SELECT signed_at FROM stripe_events WHERE id = $1`, e.ID).
				Scan(&signed); err != nil {
				return err
			}
			out.Replayed = signed == micros(e.SignedAt)
			return nil
		} else if err != nil {
			return err
		}
		if c == nil || c.WorkspaceID == "" {
			return nil
		}
		outcome, err := db.applyStripeChange(ctx, tx, e, c, ev, out)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE stripe_events SET outcome = $1 WHERE id = $2`, outcome, e.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// applyStripeChange applies c inside tx and returns the outcome to record.
// An event older than the newest one applied to the workspace (Stripe does
// not deliver in order) changes neither plan nor status; it still links
// the customer if the workspace has none and still raises its alert: a
// payment that failed did fail.
func (db *DB) applyStripeChange(ctx context.Context, tx *sql.Tx, e *apiwallet.StripeEvent, c *apiwallet.StripeChange,
	ev *apiwallet.AuditEvent, out *apiwallet.StripeOutcome) (string, error) {
	ws, err := lockWorkspace(ctx, tx, c.WorkspaceID)
	if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND {
		return stripeNoWS, nil
	} else if err != nil {
		return "", err
	}
	cur, err := scanStripeBilling(tx.QueryRowContext(ctx, `SELECT `+stripeBillingColumns+`
		FROM stripe_billing WHERE workspace_id = $1`, ws.ID))
	exists := err == nil
	if errors.Is(err, sql.ErrNoRows) {
		cur = &apiwallet.StripeBilling{WorkspaceID: ws.ID}
	} else if err != nil {
		return "", err
	}
	created := micros(e.Created)
	details := map[string]string{"stripe_event": e.ID, "stripe_event_type": e.Type}
	// stale: older than the newest event applied. An event about a
	// subscription that is not the workspace's current one (the end of a
	// subscription replaced by a new one) is superseded the same way.
	stale := exists && !cur.LastEventAt.IsZero() && created < micros(cur.LastEventAt)
	if c.IfSubscription != "" && cur.SubscriptionID != "" && cur.SubscriptionID != c.IfSubscription {
		stale = true
		details["other_subscription"] = c.IfSubscription
	}
	next := *cur
	changed := false
	set := func(field *string, v, name string, always bool) {
		if v != "" && v != *field && (always || !stale || *field == "") {
			details[name+"_from"], details[name] = *field, v
			*field = v
			changed = true
		}
	}
	set(&next.CustomerID, c.CustomerID, "customer", false)
	set(&next.SubscriptionID, c.SubscriptionID, "subscription", false)
	plan := ws.Plan
	if !stale {
		set(&next.SubscriptionStatus, c.SubscriptionStatus, "subscription_status", true)
		if c.PastDue != nil && *c.PastDue != next.PastDue {
			next.PastDue = *c.PastDue
			details["past_due"] = strconv.FormatBool(next.PastDue)
			changed = true
		}
		if c.Plan != "" && c.Plan != ws.Plan {
			ok, err := planAvailable(ctx, tx, c.Plan)
			if err != nil {
				return "", err
			}
			if ok {
				plan = c.Plan
				details["plan_from"], details["plan_to"] = ws.Plan, c.Plan
				changed = true
			} else {
				// Refusing the event would only make Stripe send it
				// again for days; it is recorded, and audited if it
				// changes anything else.
				details["plan_refused"] = c.Plan
			}
		}
		if created > micros0(cur.LastEventAt) {
			next.LastEventAt = e.Created
		}
	} else if c.Plan != "" || c.SubscriptionStatus != "" || c.PastDue != nil {
		out.Stale = true
		details["stale"] = "true"
	}
	if c.Alert != nil {
		c.Alert.WorkspaceID = ws.ID
		created, err := db.createAlert(ctx, tx, c.Alert)
		if err != nil {
			return "", err
		}
		if created {
			out.AlertCreated = true
			details["alert"] = c.Alert.ID
			changed = true
		}
	}
	if !changed {
		if out.Stale {
			return stripeStale, nil
		}
		return stripeUnchanged, nil
	}
	now := db.now()
	if _, err := tx.ExecContext(ctx, `INSERT INTO stripe_billing (`+stripeBillingColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (workspace_id) DO UPDATE SET customer_id = excluded.customer_id,
			subscription_id = excluded.subscription_id, subscription_status = excluded.subscription_status,
			past_due = excluded.past_due, last_event_at = excluded.last_event_at, updated_at = excluded.updated_at`,
		ws.ID, next.CustomerID, next.SubscriptionID, next.SubscriptionStatus, next.PastDue,
		micros0(next.LastEventAt), now); err != nil {
		return "", err
	}
	if plan != ws.Plan {
		if err := db.setPlanFromStripe(ctx, tx, ws.ID, ws.Plan, plan, e.ID); err != nil {
			return "", err
		}
		out.FromPlan, out.ToPlan = ws.Plan, plan
	}
	if ev != nil {
		ev.WorkspaceID, ev.TargetType, ev.TargetID = ws.ID, "workspace", ws.ID
		if ev.Details == nil {
			ev.Details = map[string]string{}
		}
		for k, v := range details {
			ev.Details[k] = v
		}
	}
	if err := db.appendAudit(ctx, tx, ev); err != nil {
		return "", err
	}
	out.Applied = true
	if out.Stale {
		return stripeStale, nil
	}
	return stripeApplied, nil
}

// planAvailable reports whether plan exists and takes workspaces.
func planAvailable(ctx context.Context, tx *sql.Tx, plan string) (bool, error) {
	var active bool
	err := tx.QueryRowContext(ctx, `SELECT active FROM plans WHERE id = $1`, plan).Scan(&active)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return active, err
}

// setPlanFromStripe changes a workspace's plan inside tx and records the
// change as ChangeWorkspacePlan does, with the Stripe event as its actor.
func (db *DB) setPlanFromStripe(ctx context.Context, tx *sql.Tx, workspaceID, from, to, eventID string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE workspaces SET plan = $1 WHERE id = $2`, to, workspaceID); err != nil {
		return err
	}
	db.markChanged(tx) // as in setWorkspacePlan
	return db.recordPlanChange(ctx, tx, workspaceID, from, to, apiwallet.PlanSourceStripe, eventID)
}

// micros0 is micros with the zero time as 0.
func micros0(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return micros(t)
}

// FindStripeBilling implements apiwallet.StripeStore.
func (db *DB) FindStripeBilling(ctx context.Context, workspaceID string) (*apiwallet.StripeBilling, error) {
	b, err := scanStripeBilling(db.db.QueryRowContext(ctx, `SELECT `+stripeBillingColumns+`
		FROM stripe_billing WHERE workspace_id = $1`, workspaceID))
	if err != nil {
		return nil, notFound(err, "Stripe billing")
	}
	return b, nil
}

// FindWorkspaceIDByStripeCustomer implements apiwallet.StripeStore. A
// customer linked to several workspaces (which checkout does not create)
// resolves to the one linked most recently.
func (db *DB) FindWorkspaceIDByStripeCustomer(ctx context.Context, customerID, subscriptionID string) (string, error) {
	q, arg := `SELECT workspace_id FROM stripe_billing WHERE customer_id = $1 ORDER BY updated_at DESC LIMIT 1`, customerID
	if customerID == "" {
		q, arg = `SELECT workspace_id FROM stripe_billing WHERE subscription_id = $1 ORDER BY updated_at DESC LIMIT 1`, subscriptionID
	}
	if arg == "" {
		return "", apiwallet.Errorf(apiwallet.ENOTFOUND, "workspace not found")
	}
	var id string
	if err := db.db.QueryRowContext(ctx, q, arg).Scan(&id); err != nil {
		return "", notFound(err, "workspace")
	}
	return id, nil
}
