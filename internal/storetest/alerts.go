package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
)

func testAlerts(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("Settings", func(t *testing.T) { testAlertSettings(t, newStore(t)) })
	t.Run("OncePerCrossing", func(t *testing.T) { testAlertOnce(t, newStore(t)) })
	t.Run("List", func(t *testing.T) { testAlertList(t, newStore(t)) })
	t.Run("Delivery", func(t *testing.T) { testAlertDelivery(t, newStore(t)) })
	t.Run("ActiveWorkspaces", func(t *testing.T) { testAlertActiveWorkspaces(t, newStore(t)) })
}

func testAlertSettings(t *testing.T, s Store) {
	ctx := context.Background()
	u := MustCreateUser(t, s, "alert-settings@example.com")
	ws := u.PersonalWorkspaceID
	_, err := s.FindAlertSettings(ctx, ws)
	wantCode(t, err, apiwallet.ENOTFOUND)

	ev := apiwallet.NewAuditEvent(ctx, ws, apiwallet.ActorUser, u.ID, "alert.settings", "workspace", ws)
	st := &apiwallet.AlertSettings{WorkspaceID: ws, Thresholds: []int{50, 80, 100}, WebhookURL: "https://hooks.example.com/a",
		WebhookSecret: []byte{1, 2, 3, 0, 255}}
	if err := s.PutAlertSettings(ctx, st, ev); err != nil {
		t.Fatal(err)
	}
	if ev.Seq == 0 || st.UpdatedAt.IsZero() {
		t.Fatalf("PutAlertSettings: event %+v, updated %v", ev, st.UpdatedAt)
	}
	got, err := s.FindAlertSettings(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Thresholds, []int{50, 80, 100}) || got.WebhookURL != st.WebhookURL ||
		!slices.Equal(got.WebhookSecret, st.WebhookSecret) {
		t.Fatalf("FindAlertSettings = %+v", got)
	}
	// Replacing removes the webhook and its secret.
	if err := s.PutAlertSettings(ctx, &apiwallet.AlertSettings{WorkspaceID: ws, Thresholds: []int{90}}, nil); err != nil {
		t.Fatal(err)
	}
	got, _ = s.FindAlertSettings(ctx, ws)
	if !slices.Equal(got.Thresholds, []int{90}) || got.WebhookURL != "" || got.WebhookSecret != nil {
		t.Fatalf("after replace: %+v", got)
	}
	err = s.PutAlertSettings(ctx, &apiwallet.AlertSettings{WorkspaceID: "ws_missing", Thresholds: []int{80}}, nil)
	wantCode(t, err, apiwallet.ENOTFOUND)
}

func newAlert(ws, kind, subject, period string, threshold int) *apiwallet.Alert {
	return &apiwallet.Alert{WorkspaceID: ws, Kind: kind, Subject: subject, Period: period, Threshold: threshold,
		Used: 800, Limit: 1000, Message: "m", Details: map[string]string{"k": "v"},
		Delivery: apiwallet.AlertDelivery{State: apiwallet.DeliveryPending}}
}

// A crossing is stored once however many callers raise it at once, and
// exactly one of them is told it raised it.
func testAlertOnce(t *testing.T, s Store) {
	ctx := context.Background()
	u := MustCreateUser(t, s, "alert-once@example.com")
	ws := u.PersonalWorkspaceID
	var (
		wg      sync.WaitGroup
		winners atomic.Int64
		errs    = make(chan error, 16)
	)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := apiwallet.NewAuditEvent(ctx, ws, apiwallet.ActorSystem, "alerts", "alert.raise", "alert", "")
			ok, err := s.CreateAlert(ctx, newAlert(ws, apiwallet.AlertPlanQuota, "plan", "2031-03", 80), ev)
			if err != nil {
				errs <- err
				return
			}
			if ok {
				winners.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if winners.Load() != 1 {
		t.Fatalf("%d callers raised the same crossing, want 1", winners.Load())
	}
	list, err := s.FindAlerts(ctx, apiwallet.AlertFilter{WorkspaceID: ws})
	if err != nil || len(list) != 1 {
		t.Fatalf("FindAlerts = %d, %v", len(list), err)
	}
	a := list[0]
	if a.Kind != apiwallet.AlertPlanQuota || a.Threshold != 80 || a.Used != 800 || a.Limit != 1000 ||
		a.Details["k"] != "v" || a.Delivery.State != apiwallet.DeliveryPending || a.CreatedAt.Location() != time.UTC {
		t.Fatalf("stored alert = %+v", a)
	}
	// Only the raise that went in is audited.
	evs, _ := s.FindAuditEvents(ctx, apiwallet.AuditFilter{WorkspaceID: ws, Action: "alert.raise"})
	if len(evs) != 1 || evs[0].TargetID != a.ID {
		t.Fatalf("audit events = %d", len(evs))
	}
	// Every other part of the key makes another crossing.
	for _, other := range []*apiwallet.Alert{
		newAlert(ws, apiwallet.AlertPlanQuota, "plan", "2031-03", 100),
		newAlert(ws, apiwallet.AlertPlanQuota, "plan", "2031-04", 80),
		newAlert(ws, apiwallet.AlertKeyQuota, "plan", "2031-03", 80),
		newAlert(ws, apiwallet.AlertPlanQuota, "key_x", "2031-03", 80),
	} {
		if ok, err := s.CreateAlert(ctx, other, nil); err != nil || !ok {
			t.Fatalf("CreateAlert(%s/%s/%s/%d) = %v, %v", other.Kind, other.Subject, other.Period, other.Threshold, ok, err)
		}
	}
	ws2 := MustCreateUser(t, s, "alert-once-2@example.com").PersonalWorkspaceID
	if ok, err := s.CreateAlert(ctx, newAlert(ws2, apiwallet.AlertPlanQuota, "plan", "2031-03", 80), nil); err != nil || !ok {
		t.Fatalf("another workspace: %v, %v", ok, err)
	}
}

func testAlertList(t *testing.T, s Store) {
	ctx := context.Background()
	ws := MustCreateUser(t, s, "alert-list@example.com").PersonalWorkspaceID
	other := MustCreateUser(t, s, "alert-list-2@example.com").PersonalWorkspaceID
	var ids []string
	for i := range 5 {
		a := newAlert(ws, apiwallet.AlertPlanQuota, "plan", fmt.Sprintf("2031-%02d", i+1), 80)
		if i == 4 {
			a.Kind = apiwallet.AlertKeyQuarantined
		}
		if _, err := s.CreateAlert(ctx, a, nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
		time.Sleep(2 * time.Millisecond) // ids order by time
	}
	if _, err := s.CreateAlert(ctx, newAlert(other, apiwallet.AlertPlanQuota, "plan", "2031-01", 80), nil); err != nil {
		t.Fatal(err)
	}
	page, err := s.FindAlerts(ctx, apiwallet.AlertFilter{WorkspaceID: ws, Limit: 2})
	if err != nil || len(page) != 2 || page[0].ID != ids[4] || page[1].ID != ids[3] {
		t.Fatalf("page 1 = %v, %v", alertIDs(page), err)
	}
	rest, err := s.FindAlerts(ctx, apiwallet.AlertFilter{WorkspaceID: ws, Before: page[1].ID})
	if err != nil || !slices.Equal(alertIDs(rest), []string{ids[2], ids[1], ids[0]}) {
		t.Fatalf("page 2 = %v, %v", alertIDs(rest), err)
	}
	q, err := s.FindAlerts(ctx, apiwallet.AlertFilter{WorkspaceID: ws, Kind: apiwallet.AlertKeyQuarantined})
	if err != nil || len(q) != 1 || q[0].ID != ids[4] {
		t.Fatalf("by kind = %v, %v", alertIDs(q), err)
	}
	got, err := s.FindAlertByID(ctx, ids[2])
	if err != nil || got.WorkspaceID != ws || got.Period != "2031-03" {
		t.Fatalf("FindAlertByID = %+v, %v", got, err)
	}
	_, err = s.FindAlertByID(ctx, "alr_missing")
	wantCode(t, err, apiwallet.ENOTFOUND)
}

func alertIDs(as []*apiwallet.Alert) []string {
	var ids []string
	for _, a := range as {
		ids = append(ids, a.ID)
	}
	return ids
}

// Each delivery attempt is claimed by one caller only, and attempts stop
// at the maximum.
func testAlertDelivery(t *testing.T, s Store) {
	ctx := context.Background()
	ws := MustCreateUser(t, s, "alert-delivery@example.com").PersonalWorkspaceID
	a := newAlert(ws, apiwallet.AlertPlanQuota, "plan", "2031-03", 80)
	if _, err := s.CreateAlert(ctx, a, nil); err != nil {
		t.Fatal(err)
	}
	none := newAlert(ws, apiwallet.AlertPlanQuota, "plan", "2031-03", 100)
	none.Delivery.State = apiwallet.DeliveryNone
	if _, err := s.CreateAlert(ctx, none, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	due, err := s.FindDueAlertDeliveries(ctx, now, 10)
	if err != nil || !slices.Equal(alertIDs(due), []string{a.ID}) {
		t.Fatalf("due = %v, %v", alertIDs(due), err)
	}
	var (
		wg    sync.WaitGroup
		claim atomic.Int64
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, ok, err := s.ClaimAlertDelivery(ctx, a.ID, now, now.Add(time.Minute), 3)
			if err != nil {
				t.Error(err)
			}
			if ok {
				if n != 1 {
					t.Errorf("first claim is attempt %d", n)
				}
				claim.Add(1)
			}
		}()
	}
	wg.Wait()
	if claim.Load() != 1 {
		t.Fatalf("%d claims of one attempt", claim.Load())
	}
	// Leased: not due, not claimable.
	if due, _ := s.FindDueAlertDeliveries(ctx, now.Add(time.Second), 10); len(due) != 0 {
		t.Fatalf("leased alert is due: %v", alertIDs(due))
	}
	if _, ok, _ := s.ClaimAlertDelivery(ctx, a.ID, now.Add(time.Second), now.Add(time.Minute), 3); ok {
		t.Fatal("claimed a leased alert")
	}
	// A failure schedules the next attempt.
	next := now.Add(10 * time.Second)
	if err := s.RecordAlertDelivery(ctx, a.ID, apiwallet.AlertDelivery{State: apiwallet.DeliveryPending, NextAt: next,
		LastStatus: 500, LastError: "the receiver answered 500"}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.ClaimAlertDelivery(ctx, a.ID, now.Add(5*time.Second), now.Add(time.Minute), 3); ok {
		t.Fatal("claimed before the retry was due")
	}
	n, ok, err := s.ClaimAlertDelivery(ctx, a.ID, next, next.Add(time.Minute), 3)
	if err != nil || !ok || n != 2 {
		t.Fatalf("second claim = %d, %v, %v", n, ok, err)
	}
	_ = s.RecordAlertDelivery(ctx, a.ID, apiwallet.AlertDelivery{State: apiwallet.DeliveryPending, NextAt: next})
	n, ok, _ = s.ClaimAlertDelivery(ctx, a.ID, next, next.Add(time.Minute), 3)
	if !ok || n != 3 {
		t.Fatalf("third claim = %d, %v", n, ok)
	}
	_ = s.RecordAlertDelivery(ctx, a.ID, apiwallet.AlertDelivery{State: apiwallet.DeliveryPending, NextAt: next})
	if _, ok, _ := s.ClaimAlertDelivery(ctx, a.ID, next.Add(time.Hour), next.Add(2*time.Hour), 3); ok {
		t.Fatal("claimed a fourth attempt of three")
	}
	at := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.RecordAlertDelivery(ctx, a.ID, apiwallet.AlertDelivery{State: apiwallet.DeliveryDelivered,
		LastStatus: 204, DeliveredAt: at}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.FindAlertByID(ctx, a.ID)
	if got.Delivery.State != apiwallet.DeliveryDelivered || got.Delivery.Attempts != 3 || got.Delivery.LastStatus != 204 ||
		!got.Delivery.DeliveredAt.Equal(at) {
		t.Fatalf("delivery = %+v", got.Delivery)
	}
	if _, ok, _ := s.ClaimAlertDelivery(ctx, a.ID, next.Add(time.Hour), next.Add(2*time.Hour), 10); ok {
		t.Fatal("claimed a delivered alert")
	}
}

func testAlertActiveWorkspaces(t *testing.T, s Store) {
	ctx := context.Background()
	now := time.Date(2031, 3, 15, 10, 30, 0, 0, time.UTC)
	mustInsertUsage(t, s, []apiwallet.Usage{
		newUsage("ws_recent", "openai", "key_a", now.Add(-10*time.Minute), 1),
		newUsage("ws_lasthour", "openai", "key_a", now.Add(-80*time.Minute), 2),
		newUsage("ws_old", "openai", "key_a", now.Add(-5*time.Hour), 3),
	})
	ids, err := s.WorkspacesWithUsageSince(ctx, now.Add(-time.Hour))
	if err != nil || !slices.Equal(ids, []string{"ws_lasthour", "ws_recent"}) {
		t.Fatalf("WorkspacesWithUsageSince = %v, %v", ids, err)
	}
}
