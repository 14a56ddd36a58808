package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/apikeywallet/apiwallet"
)

func testAudit(t *testing.T, s Store) {
	ctx := context.Background()
	// Concurrent appends must still form one unbroken chain: the head row
	// serialises them.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws := "ws_a"
			if i%2 == 1 {
				ws = "ws_b"
			}
			ev := apiwallet.NewAuditEvent(ctx, ws, apiwallet.ActorUser, fmt.Sprintf("usr_%d", i%3), "key.create", "key", fmt.Sprintf("key_%d", i))
			ev.Details = map[string]string{"service": "stripe"}
			if err := s.AppendAudit(ctx, ev); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	n, err := s.VerifyAudit(ctx)
	if err != nil || n != 20 {
		t.Fatalf("VerifyAudit = %d, %v; want 20, nil", n, err)
	}

	// Scoping: a workspace sees only its own events.
	evs, err := s.FindAuditEvents(ctx, apiwallet.AuditFilter{WorkspaceID: "ws_a", Limit: 100})
	if err != nil || len(evs) != 10 {
		t.Fatalf("FindAuditEvents(ws_a) = %d, %v", len(evs), err)
	}
	for i, ev := range evs {
		if ev.WorkspaceID != "ws_a" || ev.Details["service"] != "stripe" || ev.Hash == "" {
			t.Fatalf("event %+v", ev)
		}
		if i > 0 && ev.Seq >= evs[i-1].Seq {
			t.Fatal("events are not newest first")
		}
	}
	// Cursor paging.
	page, _ := s.FindAuditEvents(ctx, apiwallet.AuditFilter{WorkspaceID: "ws_a", Before: evs[4].Seq, Limit: 100})
	if len(page) != 5 || page[0].Seq != evs[5].Seq {
		t.Fatalf("Before cursor gave %d events", len(page))
	}
	// Action prefixes and actor filters.
	s.AppendAudit(ctx, apiwallet.NewAuditEvent(ctx, "ws_a", apiwallet.ActorUser, "usr_0", "token.create", "token", "tok_1"))
	keys, _ := s.FindAuditEvents(ctx, apiwallet.AuditFilter{Action: "key."})
	tokens, _ := s.FindAuditEvents(ctx, apiwallet.AuditFilter{Action: "token.create"})
	byUser, _ := s.FindAuditEvents(ctx, apiwallet.AuditFilter{UserID: "usr_0"})
	if len(keys) != 20 || len(tokens) != 1 || len(byUser) != 8 {
		t.Fatalf("filters: key.=%d token.create=%d usr_0=%d", len(keys), len(tokens), len(byUser))
	}
	// Workspace-or-actor scope: a user sees its workspace and its own acts.
	mine, _ := s.FindAuditEvents(ctx, apiwallet.AuditFilter{WorkspaceID: "ws_b", ActorID: "usr_0"})
	if len(mine) != 10+5 { // ws_b, plus usr_0's four key events and one token event in ws_a
		t.Fatalf("workspace-or-actor scope = %d events, want 15", len(mine))
	}
}
