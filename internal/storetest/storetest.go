// Package storetest is the conformance suite every storage backend passes.
// internal/sqldb runs it against SQLite and PostgreSQL; a new backend is
// done when it passes too.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// Store is everything the suite exercises.
type Store interface {
	apiwallet.UserStore
	apiwallet.WorkspaceStore
	apiwallet.AuditStore
	apiwallet.TeamStore
	apiwallet.AccountStore
	apiwallet.KeyStore
	apiwallet.TokenStore
	apiwallet.UsageStore
	apiwallet.AnalyticsStore
	apiwallet.BillingStore
	apiwallet.AlertStore
	apiwallet.StripeStore
	apiwallet.CatalogStore
}

// Run runs the whole suite; newStore returns an empty, migrated store.
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("Users", func(t *testing.T) { testUsers(t, newStore(t)) })
	t.Run("Workspaces", func(t *testing.T) { testWorkspaces(t, newStore(t)) })
	t.Run("Audit", func(t *testing.T) { testAudit(t, newStore(t)) })
	t.Run("Teams", func(t *testing.T) { testTeams(t, newStore(t)) })
	t.Run("AccountDeletion", func(t *testing.T) { testAccountDeletion(t, newStore(t)) })
	t.Run("Admin", func(t *testing.T) { testAdmin(t, newStore(t)) })
	t.Run("Keys", func(t *testing.T) { testKeys(t, newStore) })
	t.Run("Tokens", func(t *testing.T) { testTokens(t, newStore(t)) })
	t.Run("Limits", func(t *testing.T) { testLimits(t, newStore) })
	t.Run("Usage", func(t *testing.T) { testUsage(t, newStore) })
	t.Run("Analytics", func(t *testing.T) { testAnalytics(t, newStore) })
	t.Run("Billing", func(t *testing.T) { testBilling(t, newStore) })
	t.Run("Alerts", func(t *testing.T) { testAlerts(t, newStore) })
	t.Run("Stripe", func(t *testing.T) { testStripe(t, newStore) })
	t.Run("Catalog", func(t *testing.T) { testCatalog(t, newStore(t)) })
}

// MustCreateUser creates a user with a personal workspace.
func MustCreateUser(t testing.TB, s apiwallet.UserStore, email string) *apiwallet.User {
	t.Helper()
	u := &apiwallet.User{Email: email, Name: "Test " + email, Role: apiwallet.RoleUser, PasswordHash: "$argon2id$test"}
	if err := s.CreateUser(context.Background(), u, &apiwallet.Workspace{Name: email}, nil); err != nil {
		t.Fatalf("CreateUser(%s): %v", email, err)
	}
	return u
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := apiwallet.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func testUsers(t *testing.T, s Store) {
	ctx := context.Background()

	// Emails are unique regardless of case, so one person cannot hold two
	// accounts that differ only in capitals.
	u := MustCreateUser(t, s, "Alice@Example.com")
	if u.ID == "" || u.PersonalWorkspaceID == "" || u.CreatedAt.IsZero() {
		t.Fatalf("CreateUser did not fill ids and times: %+v", u)
	}
	dup := &apiwallet.User{Email: "alice@example.COM", Name: "x", Role: apiwallet.RoleUser, PasswordHash: "h"}
	wantCode(t, s.CreateUser(ctx, dup, &apiwallet.Workspace{Name: "x"}, nil), apiwallet.ECONFLICT)

	got, err := s.FindUserByEmail(ctx, "ALICE@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != u.ID || got.Email != "alice@example.com" || got.Role != apiwallet.RoleUser {
		t.Fatalf("FindUserByEmail = %+v", got)
	}
	if !got.CreatedAt.Equal(u.CreatedAt) || got.CreatedAt.Location() != time.UTC {
		t.Fatalf("CreatedAt = %v, want %v in UTC", got.CreatedAt, u.CreatedAt)
	}
	_, err = s.FindUserByID(ctx, "usr_missing")
	wantCode(t, err, apiwallet.ENOTFOUND)
	_, err = s.FindUserByEmail(ctx, "nobody@example.com")
	wantCode(t, err, apiwallet.ENOTFOUND)

	// Changing the password revokes earlier tokens; changing the name does not.
	name := "Alice A."
	upd, err := s.UpdateUser(ctx, u.ID, apiwallet.UserUpdate{Name: &name}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if upd.Name != name || upd.TokenVersion != u.TokenVersion {
		t.Fatalf("name update: %+v", upd)
	}
	hash := "$argon2id$new"
	upd, err = s.UpdateUser(ctx, u.ID, apiwallet.UserUpdate{PasswordHash: &hash}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if upd.PasswordHash != hash || upd.TokenVersion != u.TokenVersion+1 {
		t.Fatalf("password update: %+v", upd)
	}
	disabled, admin := true, apiwallet.RoleAdmin
	upd, err = s.UpdateUser(ctx, u.ID, apiwallet.UserUpdate{Disabled: &disabled, Role: &admin}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !upd.Disabled || upd.Role != apiwallet.RoleAdmin || upd.TokenVersion != u.TokenVersion+2 {
		t.Fatalf("disable+role update: %+v", upd)
	}
	_, err = s.UpdateUser(ctx, "usr_missing", apiwallet.UserUpdate{Name: &name}, nil)
	wantCode(t, err, apiwallet.ENOTFOUND)

	if err := s.RevokeUserTokens(ctx, u.ID, nil); err != nil {
		t.Fatal(err)
	}
	got, _ = s.FindUserByID(ctx, u.ID)
	if got.TokenVersion != u.TokenVersion+3 {
		t.Fatalf("RevokeUserTokens: version %d", got.TokenVersion)
	}
	wantCode(t, s.RevokeUserTokens(ctx, "usr_missing", nil), apiwallet.ENOTFOUND)

	// Listing pages by ID.
	MustCreateUser(t, s, "bob@example.com")
	MustCreateUser(t, s, "carol@example.com")
	page, err := s.FindUsers(ctx, apiwallet.UserFilter{Limit: 2})
	if err != nil || len(page) != 2 {
		t.Fatalf("FindUsers page 1: %d, %v", len(page), err)
	}
	rest, err := s.FindUsers(ctx, apiwallet.UserFilter{After: page[1].ID, Limit: 2})
	if err != nil || len(rest) != 1 || rest[0].ID <= page[1].ID {
		t.Fatalf("FindUsers page 2: %+v, %v", rest, err)
	}
	one, err := s.FindUsers(ctx, apiwallet.UserFilter{Email: "BOB@example.com"})
	if err != nil || len(one) != 1 || one[0].Email != "bob@example.com" {
		t.Fatalf("FindUsers by email: %+v, %v", one, err)
	}
}

func testWorkspaces(t *testing.T, s Store) {
	ctx := context.Background()
	a := MustCreateUser(t, s, "a@example.com")
	b := MustCreateUser(t, s, "b@example.com")

	ms, err := s.FindMemberships(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Workspace.ID != a.PersonalWorkspaceID || !ms[0].Workspace.Personal ||
		ms[0].Role != apiwallet.WorkspaceOwner || ms[0].Workspace.Plan != "free" {
		t.Fatalf("FindMemberships = %+v", ms)
	}
	m, err := s.FindMembership(ctx, a.PersonalWorkspaceID, a.ID)
	if err != nil || m.Role != apiwallet.WorkspaceOwner {
		t.Fatalf("FindMembership own: %+v, %v", m, err)
	}
	// Another user's workspace is indistinguishable from a missing one.
	_, err = s.FindMembership(ctx, a.PersonalWorkspaceID, b.ID)
	wantCode(t, err, apiwallet.ENOTFOUND)
	_, err = s.FindMembership(ctx, "ws_missing", a.ID)
	wantCode(t, err, apiwallet.ENOTFOUND)
}
