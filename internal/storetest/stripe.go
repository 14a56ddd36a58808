package storetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
)

func testStripe(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("ApplyOnce", func(t *testing.T) { testStripeApplyOnce(t, newStore(t)) })
	t.Run("Order", func(t *testing.T) { testStripeOrder(t, newStore(t)) })
	t.Run("AlertAndUnknown", func(t *testing.T) { testStripeAlert(t, newStore(t)) })
}

var stripeBase = time.Date(2031, 3, 15, 10, 0, 0, 0, time.UTC)

func stripeEvent(id string, created time.Time) *apiwallet.StripeEvent {
	return &apiwallet.StripeEvent{ID: id, Type: "customer.subscription.updated", Created: created, SignedAt: created}
}

func stripeAudit(ctx context.Context) *apiwallet.AuditEvent {
	return apiwallet.NewAuditEvent(ctx, "", apiwallet.ActorSystem, "stripe", "billing.stripe_event", "workspace", "")
}

func wantPlan(t *testing.T, s Store, ws, plan string) {
	t.Helper()
	w, err := s.FindWorkspaceByID(context.Background(), ws)
	if err != nil || w.Plan != plan {
		t.Fatalf("workspace plan = %v, %v; want %s", w, err, plan)
	}
}

// An event applies once whatever the number of concurrent deliveries;
// the same signed request again is told apart from a redelivery.
func testStripeApplyOnce(t *testing.T, s Store) {
	ctx := context.Background()
	ws := MustCreateUser(t, s, "stripe-once@example.com").PersonalWorkspaceID
	change := func() *apiwallet.StripeChange {
		f := false
		return &apiwallet.StripeChange{WorkspaceID: ws, CustomerID: "cus_1", SubscriptionID: "sub_1",
			SubscriptionStatus: "active", Plan: apiwallet.PlanProfessional, PastDue: &f}
	}
	var (
		wg      sync.WaitGroup
		applied atomic.Int64
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := s.RecordStripeEvent(ctx, stripeEvent("evt_1", stripeBase), change(), stripeAudit(ctx))
			if err != nil {
				t.Error(err)
				return
			}
			if out.Applied {
				applied.Add(1)
			} else if !out.Duplicate || !out.Replayed {
				t.Errorf("a concurrent copy was neither applied nor a duplicate: %+v", out)
			}
		}()
	}
	wg.Wait()
	if applied.Load() != 1 {
		t.Fatalf("applied %d times", applied.Load())
	}
	wantPlan(t, s, ws, apiwallet.PlanProfessional)
	b, err := s.FindStripeBilling(ctx, ws)
	if err != nil || b.CustomerID != "cus_1" || b.SubscriptionID != "sub_1" || b.SubscriptionStatus != "active" ||
		b.PastDue || !b.LastEventAt.Equal(stripeBase) {
		t.Fatalf("FindStripeBilling = %+v, %v", b, err)
	}
	changes, err := s.FindPlanChanges(ctx, ws, time.Time{})
	if err != nil || len(changes) != 1 || changes[0].Source != apiwallet.PlanSourceStripe || changes[0].ActorID != "evt_1" ||
		changes[0].FromPlan != apiwallet.PlanFree || changes[0].ToPlan != apiwallet.PlanProfessional {
		t.Fatalf("plan changes = %+v, %v", changes, err)
	}
	evs, _ := s.FindAuditEvents(ctx, apiwallet.AuditFilter{WorkspaceID: ws, Action: "billing.stripe_event"})
	if len(evs) != 1 || evs[0].Details["plan_to"] != apiwallet.PlanProfessional || evs[0].Details["stripe_event"] != "evt_1" {
		t.Fatalf("audit = %+v", evs)
	}

	// Stripe's redelivery is signed anew: a duplicate, not a replay.
	e := stripeEvent("evt_1", stripeBase)
	e.SignedAt = stripeBase.Add(time.Hour)
	out, err := s.RecordStripeEvent(ctx, e, &apiwallet.StripeChange{WorkspaceID: ws, Plan: apiwallet.PlanEnterprise}, stripeAudit(ctx))
	if err != nil || !out.Duplicate || out.Replayed || out.Applied {
		t.Fatalf("redelivery = %+v, %v", out, err)
	}
	wantPlan(t, s, ws, apiwallet.PlanProfessional)

	id, err := s.FindWorkspaceIDByStripeCustomer(ctx, "cus_1", "")
	if err != nil || id != ws {
		t.Fatalf("by customer = %q, %v", id, err)
	}
	id, err = s.FindWorkspaceIDByStripeCustomer(ctx, "", "sub_1")
	if err != nil || id != ws {
		t.Fatalf("by subscription = %q, %v", id, err)
	}
	_, err = s.FindWorkspaceIDByStripeCustomer(ctx, "cus_other", "")
	wantCode(t, err, apiwallet.ENOTFOUND)
	_, err = s.FindWorkspaceIDByStripeCustomer(ctx, "", "")
	wantCode(t, err, apiwallet.ENOTFOUND)
	_, err = s.FindStripeBilling(ctx, "ws_missing")
	wantCode(t, err, apiwallet.ENOTFOUND)
}

// Stripe does not deliver in order: an older event never undoes a newer
// one, and the end of a replaced subscription changes nothing.
func testStripeOrder(t *testing.T, s Store) {
	ctx := context.Background()
	ws := MustCreateUser(t, s, "stripe-order@example.com").PersonalWorkspaceID
	f, tr := false, true
	out, err := s.RecordStripeEvent(ctx, stripeEvent("evt_new", stripeBase.Add(time.Minute)),
		&apiwallet.StripeChange{WorkspaceID: ws, CustomerID: "cus_2", SubscriptionID: "sub_2", SubscriptionStatus: "active",
			Plan: apiwallet.PlanEnterprise, PastDue: &f}, stripeAudit(ctx))
	if err != nil || !out.Applied {
		t.Fatalf("newer = %+v, %v", out, err)
	}
	out, err = s.RecordStripeEvent(ctx, stripeEvent("evt_old", stripeBase),
		&apiwallet.StripeChange{WorkspaceID: ws, SubscriptionID: "sub_2", SubscriptionStatus: "past_due", PastDue: &tr},
		stripeAudit(ctx))
	if err != nil || !out.Stale || out.Applied {
		t.Fatalf("older = %+v, %v", out, err)
	}
	b, _ := s.FindStripeBilling(ctx, ws)
	if b.PastDue || b.SubscriptionStatus != "active" {
		t.Fatalf("an older event changed the status: %+v", b)
	}
	// A new subscription replaces sub_2; sub_2's deletion arrives later.
	out, err = s.RecordStripeEvent(ctx, stripeEvent("evt_sub3", stripeBase.Add(2*time.Minute)),
		&apiwallet.StripeChange{WorkspaceID: ws, SubscriptionID: "sub_3", SubscriptionStatus: "active",
			Plan: apiwallet.PlanProfessional}, stripeAudit(ctx))
	if err != nil || !out.Applied || out.ToPlan != apiwallet.PlanProfessional {
		t.Fatalf("new subscription = %+v, %v", out, err)
	}
	out, err = s.RecordStripeEvent(ctx, stripeEvent("evt_del2", stripeBase.Add(3*time.Minute)),
		&apiwallet.StripeChange{WorkspaceID: ws, SubscriptionID: "sub_2", SubscriptionStatus: "canceled",
			Plan: apiwallet.PlanFree, IfSubscription: "sub_2"}, stripeAudit(ctx))
	if err != nil || out.Applied || !out.Stale {
		t.Fatalf("end of the replaced subscription = %+v, %v", out, err)
	}
	wantPlan(t, s, ws, apiwallet.PlanProfessional)
	// The end of the current one moves the workspace to free.
	out, err = s.RecordStripeEvent(ctx, stripeEvent("evt_del3", stripeBase.Add(4*time.Minute)),
		&apiwallet.StripeChange{WorkspaceID: ws, SubscriptionID: "sub_3", SubscriptionStatus: "canceled",
			Plan: apiwallet.PlanFree, IfSubscription: "sub_3"}, stripeAudit(ctx))
	if err != nil || !out.Applied || out.FromPlan != apiwallet.PlanProfessional || out.ToPlan != apiwallet.PlanFree {
		t.Fatalf("end of the current subscription = %+v, %v", out, err)
	}
	wantPlan(t, s, ws, apiwallet.PlanFree)
	// An unknown plan is not applied, and the event is still recorded.
	out, err = s.RecordStripeEvent(ctx, stripeEvent("evt_gold", stripeBase.Add(5*time.Minute)),
		&apiwallet.StripeChange{WorkspaceID: ws, Plan: "gold"}, stripeAudit(ctx))
	if err != nil || out.Applied || out.ToPlan != "" {
		t.Fatalf("unknown plan = %+v, %v", out, err)
	}
	wantPlan(t, s, ws, apiwallet.PlanFree)
	out, _ = s.RecordStripeEvent(ctx, stripeEvent("evt_gold", stripeBase.Add(5*time.Minute)), nil, nil)
	if !out.Replayed {
		t.Fatalf("unknown plan event not recorded: %+v", out)
	}
}

// A payment failure marks the workspace past due and raises its alert in
// the same transaction, once; an event for no known workspace is recorded
// and changes nothing.
func testStripeAlert(t *testing.T, s Store) {
	ctx := context.Background()
	ws := MustCreateUser(t, s, "stripe-alert@example.com").PersonalWorkspaceID
	tr := true
	fail := func(id string) (*apiwallet.StripeOutcome, *apiwallet.Alert) {
		a := &apiwallet.Alert{Kind: apiwallet.AlertPaymentFailed, Subject: "in_1", Message: "payment failed",
			Delivery: apiwallet.AlertDelivery{State: apiwallet.DeliveryNone}}
		e := stripeEvent(id, stripeBase)
		e.Type = "invoice.payment_failed"
		out, err := s.RecordStripeEvent(ctx, e, &apiwallet.StripeChange{WorkspaceID: ws, CustomerID: "cus_3", PastDue: &tr,
			Alert: a}, stripeAudit(ctx))
		if err != nil {
			t.Fatal(err)
		}
		return out, a
	}
	out, a := fail("evt_fail1")
	if !out.Applied || !out.AlertCreated || a.ID == "" {
		t.Fatalf("first failure = %+v", out)
	}
	b, _ := s.FindStripeBilling(ctx, ws)
	if !b.PastDue {
		t.Fatal("not past due")
	}
	wantPlan(t, s, ws, apiwallet.PlanFree)
	// Stripe's next attempt on the same invoice: no second alert.
	out, _ = fail("evt_fail2")
	if out.AlertCreated {
		t.Fatalf("second failure of one invoice raised another alert: %+v", out)
	}
	list, _ := s.FindAlerts(ctx, apiwallet.AlertFilter{WorkspaceID: ws})
	if len(list) != 1 || list[0].ID != a.ID || list[0].WorkspaceID != ws {
		t.Fatalf("alerts = %v", alertIDs(list))
	}

	out, err := s.RecordStripeEvent(ctx, stripeEvent("evt_nows", stripeBase),
		&apiwallet.StripeChange{WorkspaceID: "ws_missing", Plan: apiwallet.PlanProfessional}, stripeAudit(ctx))
	if err != nil || out.Applied || out.Duplicate {
		t.Fatalf("unknown workspace = %+v, %v", out, err)
	}
	out, err = s.RecordStripeEvent(ctx, stripeEvent("evt_nows", stripeBase), nil, nil)
	if err != nil || !out.Duplicate {
		t.Fatalf("unknown-workspace event not recorded: %+v, %v", out, err)
	}
	_, err = s.RecordStripeEvent(ctx, &apiwallet.StripeEvent{}, nil, nil)
	wantCode(t, err, apiwallet.EINVALID)
}
