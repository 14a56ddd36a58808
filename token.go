package apiwallet

import (
	"context"
	"slices"
	"strings"
	"time"
)

// AccessTokenPrefix starts every wallet access token, so that one is easy to
// recognise in a config file or a leaked-secret scan, and so that the
// management API can turn it away before looking it up.
const AccessTokenPrefix = "awk_"

// AccessToken is a wallet access token: a bearer credential an app or SDK
// uses to call the proxy, never the management API. It belongs to a
// workspace and names the member who created it; it works only while that
// member still belongs to the workspace with a role that may use keys.
//
// The secret itself is shown once, when it is issued, and stored only as
// a SHA-256 hash. Rotating a token gives it a new secret under the same ID;
// the secrets it had before stay valid until the grace period the caller
// chose runs out.
type AccessToken struct {
	ID          string
	WorkspaceID string
	Name        string
	// Services the token may call, lower case; empty means every service.
	Services []string
	// CreatedBy is the ID of the member who created the token.
	CreatedBy string
	// Last4 is the last four characters of the current secret, for the
	// masked form.
	Last4 string
	// RateLimitPerMinute is stored for the proxy's rate limiter; 0 means
	// the workspace's plan limit only.
	RateLimitPerMinute int
	CreatedAt          time.Time
	ExpiresAt          time.Time // zero: never
	LastUsedAt         time.Time // zero: never used
	RotatedAt          time.Time // zero: never rotated
	RevokedAt          time.Time // zero: not revoked
}

// Masked is the token as lists show it, such as "awk_…x7qa".
func (t *AccessToken) Masked() string { return AccessTokenPrefix + "…" + t.Last4 }

// Allows reports whether the token may call service.
func (t *AccessToken) Allows(service string) bool {
	return len(t.Services) == 0 || slices.Contains(t.Services, strings.ToLower(service))
}

// Revoked reports whether the token has been revoked.
func (t *AccessToken) Revoked() bool { return !t.RevokedAt.IsZero() }

// Expired reports whether the token has expired at now.
func (t *AccessToken) Expired(now time.Time) bool {
	return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)
}

// TokenSecret is one secret of an access token, as the store keeps it.
type TokenSecret struct {
	// Hash is the hex SHA-256 of the whole token string.
	Hash      string
	CreatedAt time.Time
	// ExpiresAt is zero for the current secret, and the end of the grace
	// period for one that a rotation replaced.
	ExpiresAt time.Time
}

// Valid reports whether the secret is still accepted at now.
func (s *TokenSecret) Valid(now time.Time) bool {
	return s.ExpiresAt.IsZero() || now.Before(s.ExpiresAt)
}

// AccessTokenFilter selects a workspace's tokens.
type AccessTokenFilter struct {
	WorkspaceID string // required unless CreatedBy is set
	CreatedBy   string // optional: tokens this user created
	After       string // cursor: IDs greater than this
	Limit       int
}

// TokenStore persists wallet access tokens. Every method that takes a
// workspace ID is scoped to it: a token of another workspace is ENOTFOUND,
// exactly like a missing one. Mutating methods append ev (which may be nil)
// to the audit log in the same transaction as their change.
type TokenStore interface {
	// CreateAccessToken stores t (filling ID and CreatedAt) with the hash of
	// its first secret. With limit > 0, ECONFLICT (LimitReached) if the
	// workspace already holds limit unrevoked tokens, decided atomically
	// with the insert; a revoked token no longer counts.
	CreateAccessToken(ctx context.Context, t *AccessToken, secretHash string, limit int, ev *AuditEvent) error
	// FindAccessTokenByID returns a token of workspaceID. ENOTFOUND.
	FindAccessTokenByID(ctx context.Context, workspaceID, id string) (*AccessToken, error)
	// FindAccessTokens lists tokens ordered by ID, revoked ones included.
	FindAccessTokens(ctx context.Context, f AccessTokenFilter) ([]*AccessToken, error)
	// FindAccessTokenBySecretHash returns the token one of whose secrets
	// hashes to hash, and that secret. ENOTFOUND.
	FindAccessTokenBySecretHash(ctx context.Context, hash string) (*AccessToken, *TokenSecret, error)
	// RevokeAccessToken revokes the token at once and returns it. Revoking
	// a revoked token changes nothing and records nothing. ENOTFOUND.
	RevokeAccessToken(ctx context.Context, workspaceID, id string, ev *AuditEvent) (*AccessToken, error)
	// RotateAccessToken gives the token a new current secret and makes
	// every earlier secret expire at graceUntil (or sooner, if it already
	// expired sooner). ENOTFOUND; ECONFLICT if the token is revoked.
	RotateAccessToken(ctx context.Context, workspaceID, id, newHash, last4 string, graceUntil time.Time, ev *AuditEvent) (*AccessToken, error)
	// TouchAccessToken records that the token was used at at; it never
	// moves LastUsedAt backwards.
	TouchAccessToken(ctx context.Context, id string, at time.Time) error
}
