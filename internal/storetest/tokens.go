package storetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
)

func hashOf(c byte) string { return strings.Repeat(string(c), 64) }

func testTokens(t *testing.T, s Store) {
	ctx := context.Background()
	a := MustCreateUser(t, s, "a@example.com")
	b := MustCreateUser(t, s, "b@example.com")
	exp := time.Now().Add(48 * time.Hour).Truncate(time.Microsecond).UTC()

	tok := &apiwallet.AccessToken{WorkspaceID: a.PersonalWorkspaceID, Name: "ci", Services: []string{"openai", "stripe"},
		CreatedBy: a.ID, Last4: "abcd", RateLimitPerMinute: 60, ExpiresAt: exp}
	ev := apiwallet.NewAuditEvent(ctx, a.PersonalWorkspaceID, apiwallet.ActorUser, a.ID, "token.create", "", "")
	if err := s.CreateAccessToken(ctx, tok, hashOf('1'), 0, ev); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok.ID, "tok_") || tok.CreatedAt.IsZero() {
		t.Fatalf("CreateAccessToken did not fill id and time: %+v", tok)
	}
	// The store names the new token as the event's target.
	evs, _ := s.FindAuditEvents(ctx, apiwallet.AuditFilter{Action: "token.create"})
	if len(evs) != 1 || evs[0].TargetType != "token" || evs[0].TargetID != tok.ID {
		t.Fatalf("create event: %+v", evs)
	}

	got, err := s.FindAccessTokenByID(ctx, a.PersonalWorkspaceID, tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "ci" || strings.Join(got.Services, ",") != "openai,stripe" || got.CreatedBy != a.ID ||
		got.Last4 != "abcd" || got.RateLimitPerMinute != 60 || !got.ExpiresAt.Equal(exp) ||
		!got.LastUsedAt.IsZero() || got.Revoked() || !got.CreatedAt.Equal(tok.CreatedAt) {
		t.Fatalf("FindAccessTokenByID = %+v", got)
	}
	// Another workspace's token is indistinguishable from a missing one,
	// for reading, revoking and rotating alike.
	_, err = s.FindAccessTokenByID(ctx, b.PersonalWorkspaceID, tok.ID)
	wantCode(t, err, apiwallet.ENOTFOUND)
	_, err = s.RevokeAccessToken(ctx, b.PersonalWorkspaceID, tok.ID, nil)
	wantCode(t, err, apiwallet.ENOTFOUND)
	_, err = s.RotateAccessToken(ctx, b.PersonalWorkspaceID, tok.ID, hashOf('x'), "wxyz", time.Now(), nil)
	wantCode(t, err, apiwallet.ENOTFOUND)
	if got, _ := s.FindAccessTokenByID(ctx, a.PersonalWorkspaceID, tok.ID); got.Revoked() || got.Last4 != "abcd" {
		t.Fatal("a foreign workspace's revoke or rotate changed the token")
	}
	if _, _, err := s.FindAccessTokenBySecretHash(ctx, hashOf('x')); apiwallet.ErrorCode(err) != apiwallet.ENOTFOUND {
		t.Fatalf("a foreign rotate stored its secret: %v", err)
	}

	// Lookup by secret hash.
	found, sec, err := s.FindAccessTokenBySecretHash(ctx, hashOf('1'))
	if err != nil || found.ID != tok.ID || sec.Hash != hashOf('1') || !sec.ExpiresAt.IsZero() {
		t.Fatalf("FindAccessTokenBySecretHash = %+v, %+v, %v", found, sec, err)
	}
	_, _, err = s.FindAccessTokenBySecretHash(ctx, hashOf('9'))
	wantCode(t, err, apiwallet.ENOTFOUND)

	// Rotation keeps the ID, adds a current secret and puts the old one on
	// a grace period.
	grace := time.Now().Add(time.Hour).Truncate(time.Microsecond).UTC()
	rot, err := s.RotateAccessToken(ctx, a.PersonalWorkspaceID, tok.ID, hashOf('2'), "efgh", grace,
		apiwallet.NewAuditEvent(ctx, a.PersonalWorkspaceID, apiwallet.ActorUser, a.ID, "token.rotate", "token", tok.ID))
	if err != nil || rot.ID != tok.ID || rot.Last4 != "efgh" || rot.RotatedAt.IsZero() {
		t.Fatalf("RotateAccessToken = %+v, %v", rot, err)
	}
	_, old, _ := s.FindAccessTokenBySecretHash(ctx, hashOf('1'))
	_, cur, _ := s.FindAccessTokenBySecretHash(ctx, hashOf('2'))
	if old == nil || !old.ExpiresAt.Equal(grace) || cur == nil || !cur.ExpiresAt.IsZero() {
		t.Fatalf("after rotation: old %+v, current %+v", old, cur)
	}
	// A second rotation with a shorter grace shortens every earlier
	// secret's, and never lengthens one.
	sooner := time.Now().Add(time.Minute).Truncate(time.Microsecond).UTC()
	if _, err := s.RotateAccessToken(ctx, a.PersonalWorkspaceID, tok.ID, hashOf('3'), "ijkl", sooner, nil); err != nil {
		t.Fatal(err)
	}
	_, old, _ = s.FindAccessTokenBySecretHash(ctx, hashOf('1'))
	_, mid, _ := s.FindAccessTokenBySecretHash(ctx, hashOf('2'))
	if !old.ExpiresAt.Equal(sooner) || !mid.ExpiresAt.Equal(sooner) {
		t.Fatalf("second rotation: %+v, %+v", old, mid)
	}
	if _, err := s.RotateAccessToken(ctx, a.PersonalWorkspaceID, tok.ID, hashOf('4'), "mnop", time.Now().Add(time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	_, old, _ = s.FindAccessTokenBySecretHash(ctx, hashOf('1'))
	if !old.ExpiresAt.Equal(sooner) {
		t.Fatalf("a later, longer grace lengthened an old secret's: %+v", old)
	}
	// A secret whose grace is over is deleted by the next rotation.
	if _, err := s.RotateAccessToken(ctx, a.PersonalWorkspaceID, tok.ID, hashOf('5'), "qrst", time.Now().Add(-time.Second), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateAccessToken(ctx, a.PersonalWorkspaceID, tok.ID, hashOf('6'), "uvwx", time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.FindAccessTokenBySecretHash(ctx, hashOf('1'))
	wantCode(t, err, apiwallet.ENOTFOUND)

	// Last use only moves forward.
	t1 := time.Now().Truncate(time.Microsecond).UTC()
	if err := s.TouchAccessToken(ctx, tok.ID, t1); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchAccessToken(ctx, tok.ID, t1.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, _ = s.FindAccessTokenByID(ctx, a.PersonalWorkspaceID, tok.ID)
	if !got.LastUsedAt.Equal(t1) {
		t.Fatalf("LastUsedAt = %v, want %v", got.LastUsedAt, t1)
	}

	// Listing is per workspace, and per creator on request.
	other := &apiwallet.AccessToken{WorkspaceID: b.PersonalWorkspaceID, Name: "b's", CreatedBy: b.ID, Last4: "zzzz"}
	if err := s.CreateAccessToken(ctx, other, hashOf('b'), 0, nil); err != nil {
		t.Fatal(err)
	}
	second := &apiwallet.AccessToken{WorkspaceID: a.PersonalWorkspaceID, Name: "second", CreatedBy: a.ID, Last4: "yyyy"}
	if err := s.CreateAccessToken(ctx, second, hashOf('c'), 0, nil); err != nil {
		t.Fatal(err)
	}
	list, err := s.FindAccessTokens(ctx, apiwallet.AccessTokenFilter{WorkspaceID: a.PersonalWorkspaceID})
	if err != nil || len(list) != 2 || list[0].ID != tok.ID || list[1].ID != second.ID || len(list[1].Services) != 0 {
		t.Fatalf("FindAccessTokens(a) = %+v, %v", list, err)
	}
	page, _ := s.FindAccessTokens(ctx, apiwallet.AccessTokenFilter{WorkspaceID: a.PersonalWorkspaceID, After: tok.ID, Limit: 1})
	if len(page) != 1 || page[0].ID != second.ID {
		t.Fatalf("After cursor: %+v", page)
	}
	byB, _ := s.FindAccessTokens(ctx, apiwallet.AccessTokenFilter{CreatedBy: b.ID})
	if len(byB) != 1 || byB[0].ID != other.ID {
		t.Fatalf("CreatedBy filter: %+v", byB)
	}
	_, err = s.FindAccessTokens(ctx, apiwallet.AccessTokenFilter{})
	wantCode(t, err, apiwallet.EINVALID)

	// Two tokens can never share a secret hash.
	dup := &apiwallet.AccessToken{WorkspaceID: a.PersonalWorkspaceID, Name: "dup", CreatedBy: a.ID, Last4: "dddd"}
	if err := s.CreateAccessToken(ctx, dup, hashOf('c'), 0, nil); err == nil {
		t.Fatal("a second token with the same secret hash was stored")
	}
	if _, err := s.FindAccessTokenByID(ctx, a.PersonalWorkspaceID, dup.ID); apiwallet.ErrorCode(err) != apiwallet.ENOTFOUND {
		t.Fatal("a failed create left its token row behind")
	}

	// Revocation is recorded once; revoking again changes nothing.
	before, _ := s.FindAuditEvents(ctx, apiwallet.AuditFilter{Action: "token.revoke"})
	rev, err := s.RevokeAccessToken(ctx, a.PersonalWorkspaceID, tok.ID,
		apiwallet.NewAuditEvent(ctx, a.PersonalWorkspaceID, apiwallet.ActorUser, a.ID, "token.revoke", "token", tok.ID))
	if err != nil || !rev.Revoked() {
		t.Fatalf("RevokeAccessToken = %+v, %v", rev, err)
	}
	again, err := s.RevokeAccessToken(ctx, a.PersonalWorkspaceID, tok.ID,
		apiwallet.NewAuditEvent(ctx, a.PersonalWorkspaceID, apiwallet.ActorUser, a.ID, "token.revoke", "token", tok.ID))
	if err != nil || !again.RevokedAt.Equal(rev.RevokedAt) {
		t.Fatalf("second revoke = %+v, %v", again, err)
	}
	after, _ := s.FindAuditEvents(ctx, apiwallet.AuditFilter{Action: "token.revoke"})
	if len(after) != len(before)+1 {
		t.Fatalf("revoke events: %d then %d, want one more", len(before), len(after))
	}
	// A revoked token cannot be rotated back to life.
	_, err = s.RotateAccessToken(ctx, a.PersonalWorkspaceID, tok.ID, hashOf('7'), "aaaa", time.Now(), nil)
	wantCode(t, err, apiwallet.ECONFLICT)
	if _, _, err := s.FindAccessTokenBySecretHash(ctx, hashOf('7')); apiwallet.ErrorCode(err) != apiwallet.ENOTFOUND {
		t.Fatal("a refused rotation stored its secret")
	}
	if n, err := s.VerifyAudit(ctx); err != nil {
		t.Fatalf("VerifyAudit after %d events: %v", n, err)
	}
}
