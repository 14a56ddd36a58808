package apiwallet

import (
	"context"
	"time"
)

// Audit outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
)

// Actor types.
const (
	ActorUser   = "user"
	ActorToken  = "token"
	ActorSystem = "system"
)

// AuditEvent records one security-relevant action. Events form a hash chain:
// each stores the hash of the one before, so an edited, deleted or
// reordered row is detected by verification. No field ever holds a secret,
// and actors are named by opaque id only, so that once an account is erased
// its events stay as a pseudonymous record.
type AuditEvent struct {
	ID          string
	Seq         int64 // position in the chain, from 1, without gaps
	WorkspaceID string
	ActorType   string
	ActorID     string
	Action      string // e.g. "key.create", "auth.login"
	TargetType  string
	TargetID    string
	Outcome     string
	ClientIP    string
	RequestID   string
	Details     map[string]string
	CreatedAt   time.Time
	PrevHash    string
	Hash        string
}

// AuditFilter selects audit events.
type AuditFilter struct {
	// Scope: events in WorkspaceID or by ActorID (either may be empty); when
	// both are empty (global admin only) every event matches.
	WorkspaceID string
	ActorID     string
	// Optional narrowing.
	UserID string // events whose actor is this user
	Action string // exact, or a prefix ending in "." such as "key."
	Since  time.Time
	Until  time.Time
	Before int64 // cursor: events with Seq < Before; 0 means from the newest
	Limit  int
}

// AuditStore persists the audit log.
type AuditStore interface {
	// AppendAudit appends one event on its own, for actions that change
	// nothing else (a failed login). Mutating store methods append theirs in
	// the same transaction as the change.
	AppendAudit(ctx context.Context, ev *AuditEvent) error
	// FindAuditEvents lists events newest first.
	FindAuditEvents(ctx context.Context, f AuditFilter) ([]*AuditEvent, error)
	// VerifyAudit walks the whole chain and returns the number of events
	// checked and, if the chain is broken, an error naming the first bad
	// event.
	VerifyAudit(ctx context.Context) (int64, error)
}

// RequestInfo is what the audit log records of the request that caused an
// event.
type RequestInfo struct {
	ClientIP  string
	RequestID string
}

type requestInfoKey struct{}

// WithRequestInfo returns ctx carrying ri.
func WithRequestInfo(ctx context.Context, ri RequestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, ri)
}

// RequestInfoFrom returns the RequestInfo in ctx, if any.
func RequestInfoFrom(ctx context.Context) RequestInfo {
	ri, _ := ctx.Value(requestInfoKey{}).(RequestInfo)
	return ri
}

// NewAuditEvent starts an event for ctx's request.
func NewAuditEvent(ctx context.Context, workspaceID, actorType, actorID, action, targetType, targetID string) *AuditEvent {
	ri := RequestInfoFrom(ctx)
	return &AuditEvent{
		WorkspaceID: workspaceID, ActorType: actorType, ActorID: actorID, Action: action,
		TargetType: targetType, TargetID: targetID, Outcome: OutcomeSuccess,
		ClientIP: ri.ClientIP, RequestID: ri.RequestID,
	}
}
