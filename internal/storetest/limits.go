package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/apikeywallet/apiwallet"
)

// testLimits checks the per-workspace caps on keys and unrevoked tokens:
// refused at the limit with nothing stored, freed by a delete or a revoke,
// per workspace, and exact under concurrent creations.
func testLimits(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("Keys", func(t *testing.T) { testKeyLimit(t, newStore(t)) })
	t.Run("Tokens", func(t *testing.T) { testTokenLimit(t, newStore(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrentLimit(t, newStore(t)) })
}

func wantLimit(t *testing.T, err error, limit int) {
	t.Helper()
	wantCode(t, err, apiwallet.ECONFLICT)
	e := err.(*apiwallet.Error)
	if e.Reason != apiwallet.ReasonLimitReached || e.Extra["limit"] != limit {
		t.Fatalf("refusal = %+v, want reason %s and limit %d", e, apiwallet.ReasonLimitReached, limit)
	}
}

func countKeys(t *testing.T, s Store, ws string) int {
	t.Helper()
	keys, err := s.FindKeys(context.Background(), apiwallet.KeyFilter{WorkspaceID: ws, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

func testKeyLimit(t *testing.T, s Store) {
	ctx := context.Background()
	a := MustCreateUser(t, s, "limit-a@example.com").PersonalWorkspaceID
	b := MustCreateUser(t, s, "limit-b@example.com").PersonalWorkspaceID
	const limit = 3
	var first *apiwallet.Key
	for i := range limit {
		k := newTestKey(a, "openai", i)
		if err := s.CreateKey(ctx, k, limit, nil); err != nil {
			t.Fatalf("key %d of %d: %v", i+1, limit, err)
		}
		if first == nil {
			first = k
		}
	}
	extra := newTestKey(a, "openai", limit)
	ev := apiwallet.NewAuditEvent(ctx, a, apiwallet.ActorUser, "usr_test", "key.create", "", "")
	wantLimit(t, s.CreateKey(ctx, extra, limit, ev), limit)
	if n := countKeys(t, s, a); n != limit {
		t.Fatalf("the refused key was stored: %d keys", n)
	}
	if _, err := s.FindKeyByID(ctx, a, extra.ID); apiwallet.ErrorCode(err) != apiwallet.ENOTFOUND {
		t.Fatalf("the refused key can be read: %v", err)
	}
	events, err := s.FindAuditEvents(ctx, apiwallet.AuditFilter{WorkspaceID: a, Action: "key.create"})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 0 {
		t.Fatalf("a refused creation was audited as done: %+v", events)
	}
	// A higher limit, or none, lets it in: the cap is the caller's.
	if err := s.CreateKey(ctx, newTestKey(a, "openai", 100), 0, nil); err != nil {
		t.Fatalf("no limit: %v", err)
	}
	// Another workspace has its own count.
	for i := range limit {
		if err := s.CreateKey(ctx, newTestKey(b, "stripe", i), limit, nil); err != nil {
			t.Fatalf("workspace b, key %d: %v", i+1, err)
		}
	}
	// A delete frees a place; the count follows every delete.
	if err := s.DeleteKey(ctx, a, first.ID, nil); err != nil {
		t.Fatal(err)
	}
	wantLimit(t, s.CreateKey(ctx, newTestKey(a, "openai", 101), limit, nil), limit) // 3 left of 4
	keys, err := s.FindKeys(ctx, apiwallet.KeyFilter{WorkspaceID: a})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteKey(ctx, a, keys[0].ID, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKey(ctx, newTestKey(a, "openai", 102), limit, nil); err != nil {
		t.Fatalf("after two deletes: %v", err)
	}
	// Crypto-shredding the workspace drops every key and so the count.
	if err := s.DestroyDataKey(ctx, b, nil); err != nil {
		t.Fatal(err)
	}
	for i := range limit {
		if err := s.CreateKey(ctx, newTestKey(b, "stripe", 10+i), limit, nil); err != nil {
			t.Fatalf("after destroying b's keys, key %d: %v", i+1, err)
		}
	}
	wantLimit(t, s.CreateKey(ctx, newTestKey(b, "stripe", 20), limit, nil), limit)
}

func testTokenLimit(t *testing.T, s Store) {
	ctx := context.Background()
	u := MustCreateUser(t, s, "limit-tok@example.com")
	ws := u.PersonalWorkspaceID
	const limit = 2
	n := 0
	create := func(lim int) (*apiwallet.AccessToken, error) {
		n++
		tok := &apiwallet.AccessToken{WorkspaceID: ws, Name: fmt.Sprint("t", n), CreatedBy: u.ID, Last4: "abcd"}
		return tok, s.CreateAccessToken(ctx, tok, fmt.Sprintf("hash-limit-%d", n), lim, nil)
	}
	first, err := create(limit)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := create(limit); err != nil {
		t.Fatal(err)
	}
	refused, err := create(limit)
	wantLimit(t, err, limit)
	if _, err := s.FindAccessTokenByID(ctx, ws, refused.ID); apiwallet.ErrorCode(err) != apiwallet.ENOTFOUND {
		t.Fatalf("the refused token was stored: %v", err)
	}
	if _, _, err := s.FindAccessTokenBySecretHash(ctx, fmt.Sprintf("hash-limit-%d", n)); apiwallet.ErrorCode(err) != apiwallet.ENOTFOUND {
		t.Fatalf("the refused token's secret was stored: %v", err)
	}
	// A revoked token no longer counts, and revoking it twice frees one
	// place, not two.
	for range 2 {
		if _, err := s.RevokeAccessToken(ctx, ws, first.ID, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := create(limit); err != nil {
		t.Fatalf("after a revoke: %v", err)
	}
	_, err = create(limit)
	wantLimit(t, err, limit)
}

// testConcurrentLimit races more creations than the limit allows, in one
// workspace: exactly limit of them get in, whatever the interleaving.
func testConcurrentLimit(t *testing.T, s Store) {
	ctx := context.Background()
	u := MustCreateUser(t, s, "limit-race@example.com")
	ws := u.PersonalWorkspaceID
	const limit, tries = 5, 24
	var (
		wg                 sync.WaitGroup
		mu                 sync.Mutex
		keysIn, tokensIn   int
		keysOut, tokensOut int
		unexpected         []error
	)
	for i := range tries {
		wg.Go(func() {
			kerr := s.CreateKey(ctx, newTestKey(ws, "openai", i), limit, nil)
			tok := &apiwallet.AccessToken{WorkspaceID: ws, Name: fmt.Sprint("race", i), CreatedBy: u.ID, Last4: "abcd"}
			terr := s.CreateAccessToken(ctx, tok, fmt.Sprintf("hash-race-%d", i), limit, nil)
			mu.Lock()
			defer mu.Unlock()
			for _, r := range []struct {
				err     error
				in, out *int
			}{{kerr, &keysIn, &keysOut}, {terr, &tokensIn, &tokensOut}} {
				switch {
				case r.err == nil:
					*r.in++
				case apiwallet.ErrorCode(r.err) == apiwallet.ECONFLICT:
					*r.out++
				default:
					unexpected = append(unexpected, r.err)
				}
			}
		})
	}
	wg.Wait()
	if len(unexpected) > 0 {
		t.Fatalf("%d creations failed otherwise than at the limit: %v", len(unexpected), unexpected[0])
	}
	if keysIn != limit || keysOut != tries-limit || countKeys(t, s, ws) != limit {
		t.Fatalf("keys: %d in, %d refused, %d stored; want %d, %d, %d", keysIn, keysOut, countKeys(t, s, ws), limit, tries-limit, limit)
	}
	toks, err := s.FindAccessTokens(ctx, apiwallet.AccessTokenFilter{WorkspaceID: ws})
	if err != nil {
		t.Fatal(err)
	}
	if tokensIn != limit || tokensOut != tries-limit || len(toks) != limit {
		t.Fatalf("tokens: %d in, %d refused, %d stored; want %d, %d, %d", tokensIn, tokensOut, len(toks), limit, tries-limit, limit)
	}
}
