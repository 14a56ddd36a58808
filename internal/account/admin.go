package account

import (
	"context"
	"strconv"

	"github.com/apikeywallet/apiwallet"
)

// requireAdmin fails unless actor has the global ADMIN role.
func requireAdmin(actor *apiwallet.User) error {
	if actor.Role != apiwallet.RoleAdmin {
		return apiwallet.Errorf(apiwallet.EFORBIDDEN, "this needs the global ADMIN role")
	}
	return nil
}

// FindUsers lists users for an administrator.
func (s *Service) FindUsers(ctx context.Context, actor *apiwallet.User, f apiwallet.UserFilter) ([]*apiwallet.User, error) {
	if err := requireAdmin(actor); err != nil {
		return nil, err
	}
	return s.Users.FindUsers(ctx, f)
}

// FindUser returns a user and its personal workspace for an administrator.
func (s *Service) FindUser(ctx context.Context, actor *apiwallet.User, id string) (*apiwallet.User, *apiwallet.Workspace, error) {
	if err := requireAdmin(actor); err != nil {
		return nil, nil, err
	}
	u, err := s.Users.FindUserByID(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	ws, err := s.Accounts.FindWorkspaceByID(ctx, u.PersonalWorkspaceID)
	if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND {
		return u, nil, nil
	}
	return u, ws, err
}

// UserChange is what an administrator may change about a user; nil fields
// stay as they are.
type UserChange struct {
	Role     *apiwallet.Role
	Disabled *bool
	// Plan is the plan of the user's personal workspace.
	Plan *string
}

// UpdateUser applies an administrator's change to user id. Disabling a
// user or changing its role revokes its login tokens at once (the token
// version moves), and its access tokens stop with it. No change may leave
// the wallet without an enabled ADMIN.
func (s *Service) UpdateUser(ctx context.Context, actor *apiwallet.User, id string, c UserChange) (*apiwallet.User, *apiwallet.Workspace, error) {
	if err := requireAdmin(actor); err != nil {
		return nil, nil, err
	}
	var v apiwallet.ValidationError
	if c.Role == nil && c.Disabled == nil && c.Plan == nil {
		return nil, nil, apiwallet.Errorf(apiwallet.EINVALID, "nothing to change: send at least one of role, disabled, plan")
	}
	if c.Role != nil && !c.Role.Valid() {
		v.Add("role", `must be "USER" or "ADMIN"`)
	}
	if c.Plan != nil && !apiwallet.ValidPlan(*c.Plan) {
		v.Add("plan", "must be a plan id such as free, professional, enterprise or custom")
	}
	if err := v.Err(); err != nil {
		return nil, nil, err
	}
	cur, ws, err := s.FindUser(ctx, actor, id)
	if err != nil {
		return nil, nil, err
	}
	// One event per kind of change, each in the target's personal
	// workspace so that the user sees it in their own audit log.
	ev := func(action string, details map[string]string) *apiwallet.AuditEvent {
		e := apiwallet.NewAuditEvent(ctx, cur.PersonalWorkspaceID, apiwallet.ActorUser, actor.ID, action, "user", id)
		e.Details = details
		return e
	}
	var evs []*apiwallet.AuditEvent
	if c.Role != nil && *c.Role != cur.Role {
		evs = append(evs, ev("user.role_change", map[string]string{"from": string(cur.Role), "to": string(*c.Role)}))
	}
	if c.Disabled != nil && *c.Disabled != cur.Disabled {
		action := "user.enable"
		if *c.Disabled {
			action = "user.disable"
		}
		evs = append(evs, ev(action, map[string]string{"disabled": strconv.FormatBool(*c.Disabled)}))
	}
	if c.Plan != nil && ws != nil && *c.Plan != ws.Plan {
		e := ev("workspace.plan_change", map[string]string{"from": ws.Plan, "to": *c.Plan})
		e.TargetType, e.TargetID = "workspace", ws.ID
		evs = append(evs, e)
	}
	u, err := s.Accounts.UpdateUserAsAdmin(ctx, id, apiwallet.UserUpdate{Role: c.Role, Disabled: c.Disabled}, c.Plan, evs)
	if err != nil {
		return nil, nil, err
	}
	if ws != nil && c.Plan != nil {
		ws.Plan = *c.Plan
	}
	return u, ws, nil
}

// SetWorkspacePlan sets any workspace's plan, for an administrator.
func (s *Service) SetWorkspacePlan(ctx context.Context, actor *apiwallet.User, workspaceID, plan string) (*apiwallet.Workspace, error) {
	if err := requireAdmin(actor); err != nil {
		return nil, err
	}
	if !apiwallet.ValidPlan(plan) {
		var v apiwallet.ValidationError
		v.Add("plan", "must be a plan id such as free, professional, enterprise or custom")
		return nil, v.Err()
	}
	return s.Accounts.UpdateWorkspacePlan(ctx, workspaceID, plan,
		apiwallet.NewAuditEvent(ctx, workspaceID, apiwallet.ActorUser, actor.ID, "workspace.plan_change", "workspace", workspaceID))
}
