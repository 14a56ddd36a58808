package storetest

import (
	"context"
	"testing"

	"github.com/apikeywallet/apiwallet"
)

// The saved catalog is one document: absent before the first save, then
// replaced whole, each save audited.
func testCatalog(t *testing.T, s Store) {
	ctx := context.Background()
	_, err := s.FindCatalog(ctx)
	wantCode(t, err, apiwallet.ENOTFOUND)
	for _, doc := range []string{`[{"name":"a"}]`, `[{"name":"b"}]`} {
		ev := apiwallet.NewAuditEvent(ctx, "", apiwallet.ActorUser, "usr_admin", "service.put", "service", "x")
		if err := s.SaveCatalog(ctx, []byte(doc), ev); err != nil {
			t.Fatal(err)
		}
		got, err := s.FindCatalog(ctx)
		if err != nil || string(got) != doc {
			t.Fatalf("FindCatalog = %s, %v; want %s", got, err, doc)
		}
	}
	evs, err := s.FindAuditEvents(ctx, apiwallet.AuditFilter{Action: "service.put"})
	if err != nil || len(evs) != 2 {
		t.Fatalf("audit events for catalog saves: %d, %v", len(evs), err)
	}
}
