package sqldb_test

import (
	"context"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
	"github.com/apikeywallet/apiwallet/internal/storetest"
	"github.com/apikeywallet/apiwallet/internal/testenv"
)

// The proxy caches, per instance, each credential's caller (user, token,
// workspace, role), each workspace's policy (plan rate, premium routing),
// each workspace's key set per service and decrypted secrets; on other
// instances the service catalog too. It drops them all when DB.OnCommit
// fires. This suite performs every store write any of those derive from,
// through the store's method and with the audit event its real caller
// passes, and checks that OnCommit fired; and checks that routine writes
// (usage, key and token touches, logins) leave the caches alone.
//
// writeMethodPrefixes name the store methods that must be decided on: a
// new one is either checked below (invalidationCases) or listed in
// changesNothingCached with the reason.
var writeMethodPrefixes = []string{
	"Create", "Update", "Delete", "Rotate", "Revoke", "Set", "Put", "Destroy", "Erase", "Remove", "Add",
	"Accept", "Change",
	// Writes by other names.
	"Save", "Record", "Insert", "Touch", "Claim", "Init", "Append",
}

// changesNothingCached are the write methods that change nothing the
// proxy caches, each with the reason. Some still fire OnCommit through
// their audit event; nothing here depends on it.
var changesNothingCached = map[string]string{
	"CreateUser":      "a new user holds no credential any cache has seen, and its personal workspace is new; failed authentications are never cached",
	"CreateWorkspace": "a new workspace: no cached caller, policy or key set can name it, since failures are never cached",
	"CreateInvitation": "an invitation grants nothing until it is accepted (AcceptInvitation is checked); " +
		"the invitee is no member, and a refused caller is never cached",
	"DeleteInvitation":    "a pending invitation grants nothing (see CreateInvitation)",
	"CreatePlan":          "a new plan applies to no workspace until one moves onto it, which the plan changes checked here do",
	"CreateDataKey":       "a workspace gets a data key only while it has none, so it has no keys and no cached secret",
	"InitRootKey":         "the root key record is written once, before any data key exists",
	"RotateRootKey":       "rewraps data keys only: every secret's plaintext stays what the cache holds; it runs from the rotate-master-key command",
	"PutAlertSettings":    "alert thresholds and webhooks are read by the alert evaluator; the proxy caches none of them",
	"CreateAlert":         "alerts are notifications; the proxy caches none of them",
	"ClaimAlertDelivery":  "alert delivery bookkeeping",
	"RecordAlertDelivery": "alert delivery bookkeeping",
	"InsertUsage":         "usage feeds reports and counters the proxy keeps itself, not the cached callers, policies, key sets or secrets",
	"InsertAnalyticsRows": "writes the analytics rollups only (the benchmark's generator), which the proxy never reads",
	"TouchKey":            "last_used_at is no part of a key set (the set version triggers leave it out, see keysets_test.go)",
	"TouchAccessToken":    "last_used_at decides nothing about a token's use",
	"AppendAudit": "a bare audit event changes no other state; it fires OnCommit for every action outside " +
		"quietActions (denied attempts, quarantines), which is harmless",
}

// invalidation counts OnCommit calls of one store.
type invalidation struct {
	db    *sqldb.DB
	fired atomic.Int64
	ctx   context.Context
}

// fires runs write and fails unless it returned nil and fired OnCommit.
func (inv *invalidation) fires(t *testing.T, what string, write func() error) {
	t.Helper()
	inv.fired.Store(0)
	if err := write(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if n := inv.fired.Load(); n < 1 {
		t.Errorf("%s committed a change the proxy caches, but OnCommit did not fire: "+
			"the caches keep the old state until their TTL", what)
	}
}

// quiet runs write and fails if it fired OnCommit. wantErr is the error
// code write must end with, "" for none.
func (inv *invalidation) quiet(t *testing.T, what, wantErr string, write func() error) {
	t.Helper()
	inv.fired.Store(0)
	if err := write(); apiwallet.ErrorCode(err) != wantErr || (wantErr == "" && err != nil) {
		t.Fatalf("%s: error %v, want code %q", what, err, wantErr)
	}
	if n := inv.fired.Load(); n != 0 {
		t.Errorf("%s changes nothing the proxy caches, but fired OnCommit %d times: every instance drops every cache", what, n)
	}
}

func (inv *invalidation) user(t *testing.T, name string) *apiwallet.User {
	return storetest.MustCreateUser(t, inv.db, name+"-"+strings.ToLower(apiwallet.NewID("u"))+"@example.com")
}

// key stores an enabled paid key of ws for service, with no event (setup).
func (inv *invalidation) key(t *testing.T, ws, service string) *apiwallet.Key {
	t.Helper()
	k := &apiwallet.Key{ID: apiwallet.NewID("key"), WorkspaceID: ws, Service: service, Tier: apiwallet.TierPaid,
		Enabled: true, Sealed: []byte("sealed"), Fingerprint: apiwallet.NewID("fp"), Masked: "sk_…1234", CreatedBy: "usr_x"}
	if err := inv.db.CreateKey(inv.ctx, k, 0, nil); err != nil {
		t.Fatal(err)
	}
	return k
}

// token stores an access token of u in u's personal workspace (setup).
func (inv *invalidation) token(t *testing.T, u *apiwallet.User) *apiwallet.AccessToken {
	t.Helper()
	tok := &apiwallet.AccessToken{WorkspaceID: u.PersonalWorkspaceID, Name: "ci", CreatedBy: u.ID, Last4: "abcd"}
	if err := inv.db.CreateAccessToken(inv.ctx, tok, apiwallet.NewID("hash"), 0, nil); err != nil {
		t.Fatal(err)
	}
	return tok
}

// team makes a team workspace owned by owner with member in it at role.
func (inv *invalidation) team(t *testing.T, owner, member *apiwallet.User, role apiwallet.WorkspaceRole) *apiwallet.Workspace {
	t.Helper()
	ws := &apiwallet.Workspace{Name: "team"}
	if err := inv.db.CreateWorkspace(inv.ctx, ws, owner.ID, nil); err != nil {
		t.Fatal(err)
	}
	if member != nil {
		i := &apiwallet.Invitation{WorkspaceID: ws.ID, Email: member.Email, Role: role, InvitedBy: owner.ID,
			TokenHash: apiwallet.NewID("ih"), ExpiresAt: time.Now().Add(time.Hour)}
		if err := inv.db.CreateInvitation(inv.ctx, i, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := inv.db.AcceptInvitation(inv.ctx, i.TokenHash, member, time.Now(), nil); err != nil {
			t.Fatal(err)
		}
	}
	return ws
}

// userEvent is the event a user's own request records (what
// apiwallet.NewAuditEvent gives internal/api, internal/auth, internal/team
// and internal/billing).
func (inv *invalidation) userEvent(ws string, actor *apiwallet.User, action, targetType, targetID string) *apiwallet.AuditEvent {
	return apiwallet.NewAuditEvent(inv.ctx, ws, apiwallet.ActorUser, actor.ID, action, targetType, targetID)
}

func ptr[T any](v T) *T { return &v }

// invalidationCase is one write, or a group of writes, that must fire
// OnCommit; methods names the store methods it checks.
type invalidationCase struct {
	methods []string
	name    string
	run     func(t *testing.T, inv *invalidation)
}

var invalidationCases = []invalidationCase{
	{[]string{"CreateKey"}, "key create", func(t *testing.T, inv *invalidation) {
		// The workspace's key set is cached, empty or not, until a key
		// joins it.
		u := inv.user(t, "key-create")
		k := &apiwallet.Key{ID: apiwallet.NewID("key"), WorkspaceID: u.PersonalWorkspaceID, Service: "stripe",
			Tier: apiwallet.TierFree, Enabled: true, Sealed: []byte("s"), Fingerprint: apiwallet.NewID("fp"), Masked: "sk_…1"}
		inv.fires(t, "CreateKey", func() error {
			return inv.db.CreateKey(inv.ctx, k, 0, inv.userEvent(u.PersonalWorkspaceID, u, "key.create", "key", ""))
		})
	}},
	{[]string{"UpdateKey"}, "key update", func(t *testing.T, inv *invalidation) {
		u := inv.user(t, "key-update")
		ws := u.PersonalWorkspaceID
		k := inv.key(t, ws, "openai")
		tier := apiwallet.TierFree
		quota := int64(500)
		for _, c := range []struct {
			what string
			upd  apiwallet.KeyUpdate
		}{
			{"disable", apiwallet.KeyUpdate{Enabled: ptr(false)}},
			{"enable", apiwallet.KeyUpdate{Enabled: ptr(true)}},
			{"priority", apiwallet.KeyUpdate{Priority: ptr(7)}},
			{"tier", apiwallet.KeyUpdate{Tier: &tier}},
			{"metadata quota", apiwallet.KeyUpdate{Metadata: &apiwallet.KeyMetadata{Type: "llm", Quota: &quota}}},
		} {
			inv.fires(t, "UpdateKey "+c.what, func() error {
				_, err := inv.db.UpdateKey(inv.ctx, ws, k.ID, c.upd, inv.userEvent(ws, u, "key.update", "key", k.ID))
				return err
			})
		}
	}},
	{[]string{"RotateKey"}, "key rotate", func(t *testing.T, inv *invalidation) {
		// The cached secret is the old one.
		u := inv.user(t, "key-rotate")
		ws := u.PersonalWorkspaceID
		k := inv.key(t, ws, "stripe")
		inv.fires(t, "RotateKey", func() error {
			_, err := inv.db.RotateKey(inv.ctx, ws, k.ID,
				apiwallet.KeyRotation{Sealed: []byte("new"), Fingerprint: apiwallet.NewID("fp"), Masked: "sk_…9"},
				inv.userEvent(ws, u, "key.rotate", "key", k.ID))
			return err
		})
	}},
	{[]string{"DeleteKey"}, "key delete", func(t *testing.T, inv *invalidation) {
		u := inv.user(t, "key-delete")
		ws := u.PersonalWorkspaceID
		k := inv.key(t, ws, "stripe")
		inv.fires(t, "DeleteKey", func() error {
			return inv.db.DeleteKey(inv.ctx, ws, k.ID, inv.userEvent(ws, u, "key.delete", "key", k.ID))
		})
		inv.quiet(t, "DeleteKey of a key that is gone", apiwallet.ENOTFOUND, func() error {
			return inv.db.DeleteKey(inv.ctx, ws, k.ID, inv.userEvent(ws, u, "key.delete", "key", k.ID))
		})
	}},
	{[]string{"DestroyDataKey"}, "data key destruction", func(t *testing.T, inv *invalidation) {
		// Crypto-shredding must take the cached plaintexts with it.
		// vault.Service.DestroyWorkspace passes on whatever event its
		// caller gives, nil included.
		for _, ev := range []string{"with an event", "with no event"} {
			u := inv.user(t, "destroy")
			ws := u.PersonalWorkspaceID
			if _, err := inv.db.CreateDataKey(inv.ctx, &apiwallet.DataKey{WorkspaceID: ws, Wrapped: []byte("w"), RootVersion: 1}); err != nil {
				t.Fatal(err)
			}
			inv.key(t, ws, "stripe")
			var e *apiwallet.AuditEvent
			if ev == "with an event" {
				e = inv.userEvent(ws, u, "vault.destroy_workspace", "workspace", ws)
			}
			inv.fires(t, "DestroyDataKey "+ev, func() error { return inv.db.DestroyDataKey(inv.ctx, ws, e) })
		}
	}},
	{[]string{"CreateAccessToken"}, "access token create", func(t *testing.T, inv *invalidation) {
		u := inv.user(t, "token-create")
		ws := u.PersonalWorkspaceID
		tok := &apiwallet.AccessToken{WorkspaceID: ws, Name: "ci", Services: []string{"stripe"}, CreatedBy: u.ID, Last4: "wxyz"}
		inv.fires(t, "CreateAccessToken", func() error {
			return inv.db.CreateAccessToken(inv.ctx, tok, apiwallet.NewID("hash"), 0, inv.userEvent(ws, u, "token.create", "token", ""))
		})
	}},
	{[]string{"RevokeAccessToken"}, "access token revoke", func(t *testing.T, inv *invalidation) {
		u := inv.user(t, "token-revoke")
		ws := u.PersonalWorkspaceID
		tok := inv.token(t, u)
		inv.fires(t, "RevokeAccessToken", func() error {
			_, err := inv.db.RevokeAccessToken(inv.ctx, ws, tok.ID, inv.userEvent(ws, u, "token.revoke", "token", tok.ID))
			return err
		})
		inv.quiet(t, "RevokeAccessToken of a revoked token", "", func() error {
			_, err := inv.db.RevokeAccessToken(inv.ctx, ws, tok.ID, inv.userEvent(ws, u, "token.revoke", "token", tok.ID))
			return err
		})
	}},
	{[]string{"RotateAccessToken"}, "access token rotate", func(t *testing.T, inv *invalidation) {
		u := inv.user(t, "token-rotate")
		ws := u.PersonalWorkspaceID
		tok := inv.token(t, u)
		inv.fires(t, "RotateAccessToken with no grace", func() error {
			_, err := inv.db.RotateAccessToken(inv.ctx, ws, tok.ID, apiwallet.NewID("hash"), "efgh", time.Now(),
				inv.userEvent(ws, u, "token.rotate", "token", tok.ID))
			return err
		})
	}},
	{[]string{"UpdateUser"}, "password change", func(t *testing.T, inv *invalidation) {
		// The token version moves: every login JWT of the user stops.
		u := inv.user(t, "password")
		inv.fires(t, "UpdateUser password", func() error {
			_, err := inv.db.UpdateUser(inv.ctx, u.ID, apiwallet.UserUpdate{PasswordHash: ptr("$argon2id$new")},
				inv.userEvent(u.PersonalWorkspaceID, u, "auth.password_change", "user", u.ID))
			return err
		})
	}},
	{[]string{"RevokeUserTokens"}, "logout", func(t *testing.T, inv *invalidation) {
		u := inv.user(t, "logout")
		inv.fires(t, "RevokeUserTokens", func() error {
			return inv.db.RevokeUserTokens(inv.ctx, u.ID, inv.userEvent(u.PersonalWorkspaceID, u, "auth.logout", "user", u.ID))
		})
	}},
	{[]string{"UpdateUserAsAdmin"}, "admin user changes", func(t *testing.T, inv *invalidation) {
		admin := inv.user(t, "admin")
		if _, err := inv.db.UpdateUser(inv.ctx, admin.ID, apiwallet.UserUpdate{Role: ptr(apiwallet.RoleAdmin)}, nil); err != nil {
			t.Fatal(err)
		}
		// account.Service.UpdateUser: one event per field it saw change.
		adminEvent := func(u *apiwallet.User, action string) []*apiwallet.AuditEvent {
			return []*apiwallet.AuditEvent{inv.userEvent(u.PersonalWorkspaceID, admin, action, "user", u.ID)}
		}
		u := inv.user(t, "managed")
		inv.fires(t, "UpdateUserAsAdmin disable", func() error {
			_, err := inv.db.UpdateUserAsAdmin(inv.ctx, u.ID, apiwallet.UserUpdate{Disabled: ptr(true)}, nil, adminEvent(u, "user.disable"))
			return err
		})
		inv.fires(t, "UpdateUserAsAdmin enable", func() error {
			_, err := inv.db.UpdateUserAsAdmin(inv.ctx, u.ID, apiwallet.UserUpdate{Disabled: ptr(false)}, nil, adminEvent(u, "user.enable"))
			return err
		})
		inv.fires(t, "UpdateUserAsAdmin role change", func() error {
			_, err := inv.db.UpdateUserAsAdmin(inv.ctx, u.ID, apiwallet.UserUpdate{Role: ptr(apiwallet.RoleAdmin)}, nil, adminEvent(u, "user.role_change"))
			return err
		})
		inv.fires(t, "UpdateUserAsAdmin plan", func() error {
			evs := adminEvent(u, "workspace.plan_change")
			evs[0].TargetType, evs[0].TargetID = "workspace", u.PersonalWorkspaceID
			_, err := inv.db.UpdateUserAsAdmin(inv.ctx, u.ID, apiwallet.UserUpdate{}, ptr(apiwallet.PlanProfessional), evs)
			return err
		})
		// The service builds its events from a read made before the
		// store's transaction: when another change lands in between, the
		// store changes what the service did not see change, with no
		// event for it.
		inv.fires(t, "UpdateUserAsAdmin role change the service did not see", func() error {
			_, err := inv.db.UpdateUserAsAdmin(inv.ctx, u.ID, apiwallet.UserUpdate{Role: ptr(apiwallet.RoleUser)}, nil, nil)
			return err
		})
		inv.fires(t, "UpdateUserAsAdmin plan change the service did not see", func() error {
			_, err := inv.db.UpdateUserAsAdmin(inv.ctx, u.ID, apiwallet.UserUpdate{}, ptr(apiwallet.PlanFree), nil)
			return err
		})
		inv.quiet(t, "UpdateUserAsAdmin that changes nothing", "", func() error {
			_, err := inv.db.UpdateUserAsAdmin(inv.ctx, u.ID, apiwallet.UserUpdate{Disabled: ptr(false)}, ptr(apiwallet.PlanFree), nil)
			return err
		})
	}},
	{[]string{"AcceptInvitation"}, "membership add", func(t *testing.T, inv *invalidation) {
		owner, joiner := inv.user(t, "inv-owner"), inv.user(t, "joiner")
		ws := inv.team(t, owner, nil, "")
		i := &apiwallet.Invitation{WorkspaceID: ws.ID, Email: joiner.Email, Role: apiwallet.WorkspaceMember, InvitedBy: owner.ID,
			TokenHash: apiwallet.NewID("ih"), ExpiresAt: time.Now().Add(time.Hour)}
		if err := inv.db.CreateInvitation(inv.ctx, i, nil); err != nil {
			t.Fatal(err)
		}
		inv.fires(t, "AcceptInvitation", func() error {
			// team.Service.Accept: the workspace is the store's to fill in.
			_, err := inv.db.AcceptInvitation(inv.ctx, i.TokenHash, joiner, time.Now(),
				inv.userEvent("", joiner, "invitation.accept", "", ""))
			return err
		})
	}},
	{[]string{"UpdateMemberRole"}, "membership role change", func(t *testing.T, inv *invalidation) {
		// A member demoted to viewer may no longer call upstream APIs.
		owner, m := inv.user(t, "role-owner"), inv.user(t, "role-member")
		ws := inv.team(t, owner, m, apiwallet.WorkspaceMember)
		ev := func() *apiwallet.AuditEvent { return inv.userEvent(ws.ID, owner, "member.role_change", "", "") }
		inv.fires(t, "UpdateMemberRole", func() error {
			_, err := inv.db.UpdateMemberRole(inv.ctx, ws.ID, owner.ID, m.ID, apiwallet.WorkspaceViewer, ev())
			return err
		})
		inv.quiet(t, "UpdateMemberRole to the role held", "", func() error {
			_, err := inv.db.UpdateMemberRole(inv.ctx, ws.ID, owner.ID, m.ID, apiwallet.WorkspaceViewer, ev())
			return err
		})
	}},
	{[]string{"RemoveMember"}, "membership remove", func(t *testing.T, inv *invalidation) {
		owner, m := inv.user(t, "rm-owner"), inv.user(t, "rm-member")
		ws := inv.team(t, owner, m, apiwallet.WorkspaceMember)
		ev := func(actor *apiwallet.User) *apiwallet.AuditEvent {
			return inv.userEvent(ws.ID, actor, "member.remove", "", "")
		}
		inv.quiet(t, "RemoveMember refused", apiwallet.EFORBIDDEN, func() error {
			return inv.db.RemoveMember(inv.ctx, ws.ID, m.ID, owner.ID, ev(m))
		})
		inv.fires(t, "RemoveMember", func() error { return inv.db.RemoveMember(inv.ctx, ws.ID, owner.ID, m.ID, ev(owner)) })
	}},
	{[]string{"UpdateWorkspacePlan"}, "workspace plan set by an administrator", func(t *testing.T, inv *invalidation) {
		// The plan gives the workspace's rate, in its cached policy.
		admin, u := inv.user(t, "plan-admin"), inv.user(t, "plan-user")
		ws := u.PersonalWorkspaceID
		inv.fires(t, "UpdateWorkspacePlan", func() error {
			_, err := inv.db.UpdateWorkspacePlan(inv.ctx, ws, apiwallet.PlanEnterprise,
				inv.userEvent(ws, admin, "workspace.plan_change", "workspace", ws))
			return err
		})
	}},
	{[]string{"ChangeWorkspacePlan"}, "workspace plan change", func(t *testing.T, inv *invalidation) {
		admin, u := inv.user(t, "change-admin"), inv.user(t, "change-user")
		ws := u.PersonalWorkspaceID
		ev := func() *apiwallet.AuditEvent {
			return inv.userEvent(ws, admin, "workspace.plan_change", "workspace", ws)
		}
		inv.fires(t, "ChangeWorkspacePlan", func() error {
			_, err := inv.db.ChangeWorkspacePlan(inv.ctx, ws, apiwallet.PlanProfessional, apiwallet.PlanSourceAdmin, ev())
			return err
		})
		inv.quiet(t, "ChangeWorkspacePlan to the plan held", "", func() error {
			_, err := inv.db.ChangeWorkspacePlan(inv.ctx, ws, apiwallet.PlanProfessional, apiwallet.PlanSourceAdmin, ev())
			return err
		})
	}},
	{[]string{"RecordStripeEvent"}, "workspace plan change from Stripe", func(t *testing.T, inv *invalidation) {
		u := inv.user(t, "stripe")
		ws := u.PersonalWorkspaceID
		at := time.Now().UTC().Truncate(time.Second)
		e := &apiwallet.StripeEvent{ID: apiwallet.NewID("evt"), Type: "customer.subscription.updated", Created: at, SignedAt: at}
		change := &apiwallet.StripeChange{WorkspaceID: ws, CustomerID: "cus_" + ws, SubscriptionID: "sub_" + ws,
			SubscriptionStatus: "active", Plan: apiwallet.PlanProfessional}
		// stripebilling.Service.HandleWebhook's event.
		ev := func() *apiwallet.AuditEvent {
			return apiwallet.NewAuditEvent(inv.ctx, "", apiwallet.ActorSystem, "stripe", "billing.stripe_event", "workspace", "")
		}
		inv.fires(t, "RecordStripeEvent", func() error {
			_, err := inv.db.RecordStripeEvent(inv.ctx, e, change, ev())
			return err
		})
		inv.quiet(t, "RecordStripeEvent redelivered", "", func() error {
			_, err := inv.db.RecordStripeEvent(inv.ctx, e, change, ev())
			return err
		})
	}},
	{[]string{"UpdateBillingSettings"}, "premium routing", func(t *testing.T, inv *invalidation) {
		u := inv.user(t, "premium")
		ws := u.PersonalWorkspaceID
		for _, on := range []bool{false, true} {
			inv.fires(t, "UpdateBillingSettings premium routing", func() error {
				_, err := inv.db.UpdateBillingSettings(inv.ctx, ws, apiwallet.BillingSettingsUpdate{PremiumRouting: &on},
					inv.userEvent(ws, u, "billing.settings_update", "workspace", ws))
				return err
			})
		}
	}},
	{[]string{"UpdatePlan"}, "plan edits", func(t *testing.T, inv *invalidation) {
		admin := inv.user(t, "plan-editor")
		id := strings.ToLower(apiwallet.NewID("plan"))
		if err := inv.db.CreatePlan(inv.ctx, &apiwallet.Plan{ID: id, Name: "Invalidation", PriceMicros: 1, IncludedCalls: 10,
			RatePerMinute: 60, Active: true}, nil); err != nil {
			t.Fatal(err)
		}
		// billing.Service.UpdatePlan's event.
		ev := func() *apiwallet.AuditEvent {
			return inv.userEvent(admin.PersonalWorkspaceID, admin, "plan.update", "plan", id)
		}
		for _, c := range []struct {
			what string
			upd  apiwallet.PlanUpdate
		}{
			{"price", apiwallet.PlanUpdate{PriceMicros: ptr(int64(2))}},
			{"included calls", apiwallet.PlanUpdate{IncludedCalls: ptr(int64(20))}},
			{"rate", apiwallet.PlanUpdate{RatePerMinute: ptr(120)}},
		} {
			inv.fires(t, "UpdatePlan "+c.what, func() error {
				_, err := inv.db.UpdatePlan(inv.ctx, id, c.upd, ev())
				return err
			})
		}
	}},
	{[]string{"SaveCatalog"}, "service catalog put and delete", func(t *testing.T, inv *invalidation) {
		// Other instances reload the catalog when OnCommit's message
		// reaches them.
		admin := inv.user(t, "catalog")
		for _, c := range []struct{ action, doc string }{
			{"service.put", `[{"name":"weather","baseUrl":"https://api.example.com"}]`},
			{"service.delete", `[]`},
		} {
			inv.fires(t, "SaveCatalog "+c.action, func() error {
				return inv.db.SaveCatalog(inv.ctx, []byte(c.doc), inv.userEvent(admin.PersonalWorkspaceID, admin, c.action, "service", "weather"))
			})
		}
	}},
	{[]string{"DeleteUserAccount"}, "account erasure", func(t *testing.T, inv *invalidation) {
		// Leaving a shared workspace, and erasing the personal one with
		// its keys.
		owner, u := inv.user(t, "erase-owner"), inv.user(t, "erased")
		inv.team(t, owner, u, apiwallet.WorkspaceMember)
		inv.key(t, u.PersonalWorkspaceID, "stripe")
		inv.token(t, u)
		inv.fires(t, "DeleteUserAccount", func() error {
			// account.Service.Delete's event.
			_, err := inv.db.DeleteUserAccount(inv.ctx, u.ID, inv.userEvent(u.PersonalWorkspaceID, u, "user.delete", "user", u.ID))
			return err
		})
	}},
}

// quietCases are routine writes that change nothing the proxy caches.
var quietCases = []struct {
	method string
	run    func(t *testing.T, inv *invalidation)
}{
	{"InsertUsage", func(t *testing.T, inv *invalidation) {
		u := inv.user(t, "usage")
		k := inv.key(t, u.PersonalWorkspaceID, "stripe")
		inv.quiet(t, "InsertUsage", "", func() error {
			return inv.db.InsertUsage(inv.ctx, []apiwallet.Usage{{ID: apiwallet.NewID("use"), WorkspaceID: u.PersonalWorkspaceID,
				Service: "stripe", KeyID: k.ID, UserID: u.ID, Method: "POST", Status: 200, Attempts: 1, CostMicros: 3,
				CreatedAt: time.Now()}})
		})
	}},
	{"TouchKey", func(t *testing.T, inv *invalidation) {
		u := inv.user(t, "touch")
		k := inv.key(t, u.PersonalWorkspaceID, "stripe")
		inv.quiet(t, "TouchKey", "", func() error { return inv.db.TouchKey(inv.ctx, u.PersonalWorkspaceID, k.ID, time.Now()) })
		// The proxy's toucher records the uses with each touch.
		inv.quiet(t, "AppendAudit key.use", "", func() error {
			ev := apiwallet.NewAuditEvent(inv.ctx, u.PersonalWorkspaceID, apiwallet.ActorSystem, "proxy", "key.use", "key", k.ID)
			ev.Details = map[string]string{"calls": "3"}
			return inv.db.AppendAudit(inv.ctx, ev)
		})
	}},
	{"TouchAccessToken", func(t *testing.T, inv *invalidation) {
		tok := inv.token(t, inv.user(t, "touch-token"))
		inv.quiet(t, "TouchAccessToken", "", func() error { return inv.db.TouchAccessToken(inv.ctx, tok.ID, time.Now()) })
	}},
	{"AppendAudit", func(t *testing.T, inv *invalidation) {
		// auth.Service.Login and loginFailed.
		u := inv.user(t, "login")
		inv.quiet(t, "AppendAudit auth.login", "", func() error {
			return inv.db.AppendAudit(inv.ctx, inv.userEvent(u.PersonalWorkspaceID, u, "auth.login", "user", u.ID))
		})
		inv.quiet(t, "AppendAudit failed auth.login", "", func() error {
			ev := apiwallet.NewAuditEvent(inv.ctx, "", apiwallet.ActorUser, "", "auth.login", "user", "")
			ev.Outcome = apiwallet.OutcomeFailure
			ev.Details = map[string]string{"reason": "unknown account"}
			return inv.db.AppendAudit(inv.ctx, ev)
		})
	}},
	{"ReadKey", func(t *testing.T, inv *invalidation) {
		u := inv.user(t, "read")
		k := inv.key(t, u.PersonalWorkspaceID, "stripe")
		inv.quiet(t, "ReadKey", "", func() error {
			_, err := inv.db.ReadKey(inv.ctx, u.PersonalWorkspaceID, k.ID, inv.userEvent(u.PersonalWorkspaceID, u, "key.read", "key", k.ID))
			return err
		})
	}},
	{"CreateAlert", func(t *testing.T, inv *invalidation) {
		u := inv.user(t, "alert")
		ws := u.PersonalWorkspaceID
		a := &apiwallet.Alert{WorkspaceID: ws, Kind: apiwallet.AlertPlanQuota, Subject: "plan", Period: "2031-03", Threshold: 80,
			Used: 800, Limit: 1000, Message: "m", Delivery: apiwallet.AlertDelivery{State: apiwallet.DeliveryPending}}
		inv.quiet(t, "CreateAlert", "", func() error {
			// alerts.Service.Raise's event.
			_, err := inv.db.CreateAlert(inv.ctx, a, apiwallet.NewAuditEvent(inv.ctx, ws, apiwallet.ActorSystem, "alerts", "alert.raise", "alert", ""))
			return err
		})
		now := time.Now()
		inv.quiet(t, "ClaimAlertDelivery", "", func() error {
			_, _, err := inv.db.ClaimAlertDelivery(inv.ctx, a.ID, now, now.Add(time.Minute), 3)
			return err
		})
		inv.quiet(t, "RecordAlertDelivery", "", func() error {
			return inv.db.RecordAlertDelivery(inv.ctx, a.ID, apiwallet.AlertDelivery{State: apiwallet.DeliveryDelivered, DeliveredAt: now})
		})
	}},
	{"CreateDataKey", func(t *testing.T, inv *invalidation) {
		u := inv.user(t, "data-key")
		inv.quiet(t, "CreateDataKey", "", func() error {
			_, err := inv.db.CreateDataKey(inv.ctx, &apiwallet.DataKey{WorkspaceID: u.PersonalWorkspaceID, Wrapped: []byte("w"), RootVersion: 1})
			return err
		})
	}},
}

func testInvalidation(t *testing.T, db *sqldb.DB) {
	inv := &invalidation{db: db, ctx: context.Background()}
	db.OnCommit = func() { inv.fired.Add(1) }
	if _, err := db.InitRootKey(inv.ctx, &apiwallet.RootKey{Version: 1, Check: []byte("check")}); err != nil {
		t.Fatal(err)
	}
	// The cases share the store and its counter: they run one by one.
	for _, c := range invalidationCases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) { c.run(t, inv) })
	}
	for _, c := range quietCases {
		t.Run("quiet_"+c.method, func(t *testing.T) { c.run(t, inv) })
	}
}

func TestInvalidationSQLite(t *testing.T) {
	testInvalidation(t, open(t, filepath.Join(t.TempDir(), "wallet.db")))
}

func TestInvalidationPostgres(t *testing.T) {
	testenv.Require(t, testenv.PostgresEnv)
	testInvalidation(t, open(t, testenv.PostgresURL(t)))
}

// Every write method of the store is decided on: checked to fire
// OnCommit above, or listed as changing nothing cached, with the reason.
func TestInvalidationCoversEveryWrite(t *testing.T) {
	methods := map[string]bool{}
	typ := reflect.TypeFor[*sqldb.DB]()
	for i := range typ.NumMethod() {
		methods[typ.Method(i).Name] = true
	}
	checked := map[string]bool{}
	for _, c := range invalidationCases {
		for _, m := range c.methods {
			if !methods[m] {
				t.Errorf("invalidation case %q names %s, which *sqldb.DB does not have", c.name, m)
			}
			checked[m] = true
		}
	}
	for m, reason := range changesNothingCached {
		switch {
		case !methods[m]:
			t.Errorf("changesNothingCached lists %s, which *sqldb.DB does not have", m)
		case checked[m]:
			t.Errorf("%s is both checked to fire OnCommit and listed as changing nothing cached", m)
		case strings.TrimSpace(reason) == "":
			t.Errorf("changesNothingCached gives no reason for %s", m)
		}
	}
	for _, c := range quietCases {
		if !methods[c.method] {
			t.Errorf("quiet case names %s, which *sqldb.DB does not have", c.method)
		}
	}
	var undecided []string
	for m := range methods {
		if !slices.ContainsFunc(writeMethodPrefixes, func(p string) bool { return strings.HasPrefix(m, p) }) {
			continue
		}
		if !checked[m] && changesNothingCached[m] == "" {
			undecided = append(undecided, m)
		}
	}
	slices.Sort(undecided)
	for _, m := range undecided {
		t.Errorf("(*sqldb.DB).%s writes, and nothing says whether the proxy's caches derive from what it writes: "+
			"add a case to invalidationCases that checks it fires OnCommit, or list it in changesNothingCached with the reason", m)
	}
}
