package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// mustInvite stores an invitation from inviter and returns its token hash.
func mustInvite(t *testing.T, s Store, wsID, inviterID, email string, role apiwallet.WorkspaceRole, exp time.Time) *apiwallet.Invitation {
	t.Helper()
	inv := &apiwallet.Invitation{WorkspaceID: wsID, Email: email, Role: role, InvitedBy: inviterID,
		TokenHash: "hash-" + apiwallet.NewID("t"), ExpiresAt: exp}
	if err := s.CreateInvitation(context.Background(), inv, nil); err != nil {
		t.Fatalf("CreateInvitation(%s): %v", email, err)
	}
	return inv
}

func mustJoin(t *testing.T, s Store, wsID, inviterID string, u *apiwallet.User, role apiwallet.WorkspaceRole) {
	t.Helper()
	inv := mustInvite(t, s, wsID, inviterID, u.Email, role, time.Now().Add(time.Hour))
	if _, err := s.AcceptInvitation(context.Background(), inv.TokenHash, u, time.Now(), nil); err != nil {
		t.Fatalf("AcceptInvitation(%s): %v", u.Email, err)
	}
}

func role(t *testing.T, s Store, wsID, userID string) apiwallet.WorkspaceRole {
	t.Helper()
	m, err := s.FindMembership(context.Background(), wsID, userID)
	if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND {
		return ""
	} else if err != nil {
		t.Fatal(err)
	}
	return m.Role
}

func testTeams(t *testing.T, s Store) {
	ctx := context.Background()
	owner := MustCreateUser(t, s, "owner@example.com")
	bob := MustCreateUser(t, s, "bob@example.com")
	carol := MustCreateUser(t, s, "carol@example.com")
	outsider := MustCreateUser(t, s, "outsider@example.com")

	ws := &apiwallet.Workspace{Name: "Acme"}
	if err := s.CreateWorkspace(ctx, ws, owner.ID, nil); err != nil {
		t.Fatal(err)
	}
	if ws.ID == "" || ws.Personal || ws.Plan != apiwallet.PlanFree {
		t.Fatalf("CreateWorkspace: %+v", ws)
	}
	if r := role(t, s, ws.ID, owner.ID); r != apiwallet.WorkspaceOwner {
		t.Fatalf("creator role = %q", r)
	}

	// Only admins and owners invite, only owners invite owners, and a
	// non-member's workspace is not found.
	soon := time.Now().Add(time.Hour)
	inv := &apiwallet.Invitation{WorkspaceID: ws.ID, Email: "x@example.com", Role: apiwallet.WorkspaceMember,
		InvitedBy: outsider.ID, TokenHash: "h-outsider", ExpiresAt: soon}
	wantCode(t, s.CreateInvitation(ctx, inv, nil), apiwallet.ENOTFOUND)

	// An invitation is accepted only by its email, once, before it expires.
	invBob := mustInvite(t, s, ws.ID, owner.ID, "BOB@example.com", apiwallet.WorkspaceAdmin, soon)
	_, err := s.AcceptInvitation(ctx, invBob.TokenHash, carol, time.Now(), nil)
	wantCode(t, err, apiwallet.EFORBIDDEN)
	_, err = s.AcceptInvitation(ctx, invBob.TokenHash, bob, soon.Add(time.Second), nil)
	wantCode(t, err, apiwallet.EINVALID)
	_, err = s.AcceptInvitation(ctx, "no-such-hash", bob, time.Now(), nil)
	wantCode(t, err, apiwallet.ENOTFOUND)
	if r := role(t, s, ws.ID, bob.ID); r != "" {
		t.Fatalf("a refused accept made bob %q", r)
	}
	m, err := s.AcceptInvitation(ctx, invBob.TokenHash, bob, time.Now(), nil)
	if err != nil || m.Role != apiwallet.WorkspaceAdmin || m.Workspace.ID != ws.ID {
		t.Fatalf("AcceptInvitation = %+v, %v", m, err)
	}
	_, err = s.AcceptInvitation(ctx, invBob.TokenHash, bob, time.Now(), nil)
	wantCode(t, err, apiwallet.ECONFLICT)
	// Inviting a member again is a conflict; an admin cannot invite an owner.
	inv = &apiwallet.Invitation{WorkspaceID: ws.ID, Email: "bob@example.com", Role: apiwallet.WorkspaceMember,
		InvitedBy: owner.ID, TokenHash: "h-dup", ExpiresAt: soon}
	wantCode(t, s.CreateInvitation(ctx, inv, nil), apiwallet.ECONFLICT)
	inv = &apiwallet.Invitation{WorkspaceID: ws.ID, Email: "carol@example.com", Role: apiwallet.WorkspaceOwner,
		InvitedBy: bob.ID, TokenHash: "h-admin-owner", ExpiresAt: soon}
	wantCode(t, s.CreateInvitation(ctx, inv, nil), apiwallet.EFORBIDDEN)

	mustJoin(t, s, ws.ID, bob.ID, carol, apiwallet.WorkspaceViewer)
	members, err := s.FindMembers(ctx, ws.ID)
	if err != nil || len(members) != 3 || members[0].UserID != owner.ID || members[2].UserID != carol.ID ||
		members[0].Email != "owner@example.com" {
		t.Fatalf("FindMembers = %+v, %v", members, err)
	}

	// Pending invitations are listed per workspace and revoked by admins;
	// another workspace's invitation is not found.
	pending := mustInvite(t, s, ws.ID, owner.ID, "dave@example.com", apiwallet.WorkspaceMember, soon)
	invs, err := s.FindInvitations(ctx, ws.ID)
	if err != nil || len(invs) != 1 || invs[0].ID != pending.ID {
		t.Fatalf("FindInvitations = %+v, %v", invs, err)
	}
	wantCode(t, s.DeleteInvitation(ctx, ws.ID, carol.ID, pending.ID, nil), apiwallet.EFORBIDDEN)
	wantCode(t, s.DeleteInvitation(ctx, outsider.PersonalWorkspaceID, outsider.ID, pending.ID, nil), apiwallet.ENOTFOUND)
	if err := s.DeleteInvitation(ctx, ws.ID, bob.ID, pending.ID, nil); err != nil {
		t.Fatal(err)
	}
	_, err = s.AcceptInvitation(ctx, pending.TokenHash, MustCreateUser(t, s, "dave@example.com"), time.Now(), nil)
	wantCode(t, err, apiwallet.ENOTFOUND)

	// Roles: a viewer changes nothing, an admin neither makes nor changes
	// owners, the last owner stays.
	_, err = s.UpdateMemberRole(ctx, ws.ID, carol.ID, bob.ID, apiwallet.WorkspaceViewer, nil)
	wantCode(t, err, apiwallet.EFORBIDDEN)
	_, err = s.UpdateMemberRole(ctx, ws.ID, bob.ID, carol.ID, apiwallet.WorkspaceOwner, nil)
	wantCode(t, err, apiwallet.EFORBIDDEN)
	_, err = s.UpdateMemberRole(ctx, ws.ID, bob.ID, owner.ID, apiwallet.WorkspaceMember, nil)
	wantCode(t, err, apiwallet.EFORBIDDEN)
	_, err = s.UpdateMemberRole(ctx, ws.ID, owner.ID, owner.ID, apiwallet.WorkspaceAdmin, nil)
	wantCode(t, err, apiwallet.ECONFLICT)
	_, err = s.UpdateMemberRole(ctx, ws.ID, owner.ID, outsider.ID, apiwallet.WorkspaceMember, nil)
	wantCode(t, err, apiwallet.ENOTFOUND)
	_, err = s.UpdateMemberRole(ctx, ws.ID, outsider.ID, carol.ID, apiwallet.WorkspaceMember, nil)
	wantCode(t, err, apiwallet.ENOTFOUND)
	mem, err := s.UpdateMemberRole(ctx, ws.ID, bob.ID, carol.ID, apiwallet.WorkspaceMember, nil)
	if err != nil || mem.Role != apiwallet.WorkspaceMember || role(t, s, ws.ID, carol.ID) != apiwallet.WorkspaceMember {
		t.Fatalf("UpdateMemberRole = %+v, %v", mem, err)
	}

	// Removal: the last owner cannot leave, an admin cannot remove an
	// owner, a member cannot remove others but may leave.
	wantCode(t, s.RemoveMember(ctx, ws.ID, owner.ID, owner.ID, nil), apiwallet.ECONFLICT)
	wantCode(t, s.RemoveMember(ctx, ws.ID, bob.ID, owner.ID, nil), apiwallet.EFORBIDDEN)
	wantCode(t, s.RemoveMember(ctx, ws.ID, carol.ID, bob.ID, nil), apiwallet.EFORBIDDEN)
	wantCode(t, s.RemoveMember(ctx, ws.ID, owner.ID, outsider.ID, nil), apiwallet.ENOTFOUND)
	if err := s.RemoveMember(ctx, ws.ID, carol.ID, carol.ID, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveMember(ctx, ws.ID, bob.ID, bob.ID, nil); err != nil {
		t.Fatal(err)
	}
	if role(t, s, ws.ID, carol.ID) != "" || role(t, s, ws.ID, bob.ID) != "" {
		t.Fatal("removed members still have a role")
	}

	// A personal workspace may be shared, but its own user can be neither
	// removed nor demoted, even by another owner.
	mustJoin(t, s, owner.PersonalWorkspaceID, owner.ID, bob, apiwallet.WorkspaceOwner)
	wantCode(t, s.RemoveMember(ctx, owner.PersonalWorkspaceID, bob.ID, owner.ID, nil), apiwallet.ECONFLICT)
	_, err = s.UpdateMemberRole(ctx, owner.PersonalWorkspaceID, bob.ID, owner.ID, apiwallet.WorkspaceAdmin, nil)
	wantCode(t, err, apiwallet.ECONFLICT)
	if err := s.RemoveMember(ctx, owner.PersonalWorkspaceID, owner.ID, bob.ID, nil); err != nil {
		t.Fatalf("an owner removes a co-owner: %v", err)
	}

	// Two owners demoting each other at once: one wins, one owner stays.
	mustJoin(t, s, ws.ID, owner.ID, carol, apiwallet.WorkspaceOwner)
	for range 5 {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		pairs := [2][2]string{{owner.ID, carol.ID}, {carol.ID, owner.ID}}
		for i, p := range pairs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.UpdateMemberRole(ctx, ws.ID, p[0], p[1], apiwallet.WorkspaceMember, nil)
			}()
		}
		wg.Wait()
		owners := 0
		for _, m := range mustMembers(t, s, ws.ID) {
			if m.Role == apiwallet.WorkspaceOwner {
				owners++
			}
		}
		if owners != 1 || (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("concurrent demotions: %d owners left, errors %v", owners, errs)
		}
		// Restore two owners for the next round.
		winner := owner.ID
		if role(t, s, ws.ID, owner.ID) != apiwallet.WorkspaceOwner {
			winner = carol.ID
		}
		for _, id := range []string{owner.ID, carol.ID} {
			if id != winner {
				if _, err := s.UpdateMemberRole(ctx, ws.ID, winner, id, apiwallet.WorkspaceOwner, nil); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

func mustMembers(t *testing.T, s Store, wsID string) []*apiwallet.Member {
	t.Helper()
	ms, err := s.FindMembers(context.Background(), wsID)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func testAccountDeletion(t *testing.T, s Store) {
	ctx := context.Background()
	ann := MustCreateUser(t, s, "ann@example.com")
	ben := MustCreateUser(t, s, "ben@example.com")
	// solo: Ann the only owner, Ben a member -> erased with Ann.
	solo := &apiwallet.Workspace{Name: "solo"}
	if err := s.CreateWorkspace(ctx, solo, ann.ID, nil); err != nil {
		t.Fatal(err)
	}
	mustJoin(t, s, solo.ID, ann.ID, ben, apiwallet.WorkspaceMember)
	// shared: owned by Ann and Ben -> stays, minus Ann.
	shared := &apiwallet.Workspace{Name: "shared"}
	if err := s.CreateWorkspace(ctx, shared, ben.ID, nil); err != nil {
		t.Fatal(err)
	}
	mustJoin(t, s, shared.ID, ben.ID, ann, apiwallet.WorkspaceOwner)
	// bens: Ben's personal workspace, Ann an admin -> stays.
	mustJoin(t, s, ben.PersonalWorkspaceID, ben.ID, ann, apiwallet.WorkspaceAdmin)
	// An invitation to Ann's email that she never used, which holds her
	// email, and one she sent.
	other := &apiwallet.Workspace{Name: "other"}
	if err := s.CreateWorkspace(ctx, other, ben.ID, nil); err != nil {
		t.Fatal(err)
	}
	mustInvite(t, s, other.ID, ben.ID, "ann@example.com", apiwallet.WorkspaceViewer, time.Now().Add(time.Hour))
	mustInvite(t, s, shared.ID, ann.ID, "zed@example.com", apiwallet.WorkspaceMember, time.Now().Add(time.Hour))

	ev := apiwallet.NewAuditEvent(ctx, "", apiwallet.ActorUser, ann.ID, "user.delete", "user", ann.ID)
	d, err := s.DeleteUserAccount(ctx, ann.ID, ev)
	if err != nil {
		t.Fatal(err)
	}
	if !sameSet(d.DeletedWorkspaces, ann.PersonalWorkspaceID, solo.ID) || !sameSet(d.LeftWorkspaces, shared.ID, ben.PersonalWorkspaceID) {
		t.Fatalf("DeleteUserAccount = %+v", d)
	}
	_, err = s.FindUserByID(ctx, ann.ID)
	wantCode(t, err, apiwallet.ENOTFOUND)
	if r := role(t, s, solo.ID, ben.ID); r != "" {
		t.Fatalf("the solely owned workspace survived: ben is still %q", r)
	}
	if r := role(t, s, shared.ID, ben.ID); r != apiwallet.WorkspaceOwner {
		t.Fatalf("shared workspace: ben is %q", r)
	}
	if ms := mustMembers(t, s, shared.ID); len(ms) != 1 {
		t.Fatalf("shared workspace members: %+v", ms)
	}
	if invs, _ := s.FindInvitationsByEmail(ctx, "ann@example.com"); len(invs) != 0 {
		t.Fatalf("invitations to the erased email remain: %+v", invs)
	}
	if invs, _ := s.FindInvitations(ctx, shared.ID); len(invs) != 0 {
		t.Fatalf("invitations sent by the erased user remain: %+v", invs)
	}
	_, err = s.DeleteUserAccount(ctx, ann.ID, nil)
	wantCode(t, err, apiwallet.ENOTFOUND)

	// A personal workspace with another owner stays, as a team workspace.
	cy := MustCreateUser(t, s, "cy@example.com")
	mustJoin(t, s, cy.PersonalWorkspaceID, cy.ID, ben, apiwallet.WorkspaceOwner)
	d, err = s.DeleteUserAccount(ctx, cy.ID, nil)
	if err != nil || len(d.DeletedWorkspaces) != 0 || !sameSet(d.LeftWorkspaces, cy.PersonalWorkspaceID) {
		t.Fatalf("DeleteUserAccount(cy) = %+v, %v", d, err)
	}
	w, err := s.FindWorkspaceByID(ctx, cy.PersonalWorkspaceID)
	if err != nil || w.Personal || role(t, s, w.ID, ben.ID) != apiwallet.WorkspaceOwner {
		t.Fatalf("cy's shared personal workspace: %+v, %v", w, err)
	}

	// The audit log keeps a pseudonymous record and still verifies.
	evs, err := s.FindAuditEvents(ctx, apiwallet.AuditFilter{Action: "user.delete"})
	if err != nil || len(evs) != 1 || evs[0].ActorID != ann.ID || evs[0].WorkspaceID != ann.PersonalWorkspaceID {
		t.Fatalf("user.delete events: %+v, %v", evs, err)
	}
	for k, v := range evs[0].Details {
		if v == "ann@example.com" {
			t.Fatalf("the deletion record keeps the email in %s", k)
		}
	}
	if _, err := s.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
}

func sameSet(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	seen := map[string]bool{}
	for _, g := range got {
		seen[g] = true
	}
	for _, w := range want {
		if !seen[w] {
			return false
		}
	}
	return true
}

func testAdmin(t *testing.T, s Store) {
	ctx := context.Background()
	admin := true
	root := MustCreateUser(t, s, "root@example.com")
	roleAdmin, roleUser := apiwallet.RoleAdmin, apiwallet.RoleUser
	if _, err := s.UpdateUser(ctx, root.ID, apiwallet.UserUpdate{Role: &roleAdmin}, nil); err != nil {
		t.Fatal(err)
	}
	// The last enabled ADMIN can be neither demoted, disabled nor erased.
	_, err := s.UpdateUserAsAdmin(ctx, root.ID, apiwallet.UserUpdate{Role: &roleUser}, nil, nil)
	wantCode(t, err, apiwallet.ECONFLICT)
	_, err = s.UpdateUserAsAdmin(ctx, root.ID, apiwallet.UserUpdate{Disabled: &admin}, nil, nil)
	wantCode(t, err, apiwallet.ECONFLICT)
	_, err = s.DeleteUserAccount(ctx, root.ID, nil)
	wantCode(t, err, apiwallet.ECONFLICT)

	// A plan change goes to the personal workspace, with its events.
	plan := apiwallet.PlanProfessional
	u := MustCreateUser(t, s, "u@example.com")
	ev := apiwallet.NewAuditEvent(ctx, u.PersonalWorkspaceID, apiwallet.ActorUser, root.ID, "workspace.plan_change", "workspace", u.PersonalWorkspaceID)
	got, err := s.UpdateUserAsAdmin(ctx, u.ID, apiwallet.UserUpdate{Disabled: &admin}, &plan, []*apiwallet.AuditEvent{ev})
	if err != nil || !got.Disabled || got.TokenVersion != u.TokenVersion+1 {
		t.Fatalf("UpdateUserAsAdmin = %+v, %v", got, err)
	}
	w, err := s.FindWorkspaceByID(ctx, u.PersonalWorkspaceID)
	if err != nil || w.Plan != plan {
		t.Fatalf("plan = %+v, %v", w, err)
	}
	if ev.Seq == 0 {
		t.Fatal("the event was not appended")
	}
	w, err = s.UpdateWorkspacePlan(ctx, u.PersonalWorkspaceID, apiwallet.PlanEnterprise, nil)
	if err != nil || w.Plan != apiwallet.PlanEnterprise {
		t.Fatalf("UpdateWorkspacePlan = %+v, %v", w, err)
	}
	_, err = s.UpdateWorkspacePlan(ctx, "ws_missing", apiwallet.PlanFree, nil)
	wantCode(t, err, apiwallet.ENOTFOUND)
	_, err = s.UpdateUserAsAdmin(ctx, "usr_missing", apiwallet.UserUpdate{Disabled: &admin}, nil, nil)
	wantCode(t, err, apiwallet.ENOTFOUND)

	// Two admins demoting each other at once: one stays ADMIN.
	other := MustCreateUser(t, s, "other@example.com")
	if _, err := s.UpdateUser(ctx, other.ID, apiwallet.UserUpdate{Role: &roleAdmin}, nil); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, id := range []string{root.ID, other.ID} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.UpdateUserAsAdmin(ctx, id, apiwallet.UserUpdate{Role: &roleUser}, nil, nil)
		}()
	}
	wg.Wait()
	admins, _ := s.FindUsers(ctx, apiwallet.UserFilter{})
	n := 0
	for _, a := range admins {
		if a.Role == apiwallet.RoleAdmin && !a.Disabled {
			n++
		}
	}
	if n != 1 || (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("concurrent demotions left %d admins; errors %v", n, errs)
	}
}
