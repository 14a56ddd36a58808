package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/apikeywallet/apiwallet"
)

// Wallet access tokens.
//
// A token is "awk_" followed by 32 bytes from crypto/rand in lower-case
// base32 without padding: 56 characters, letters and digits only, so that
// it survives a double-click, a shell and a URL unchanged. Only its
// SHA-256 is stored (a fast hash is enough for 256 random bits: there is
// nothing to guess), and that hash is the lookup key, so authenticating is
// one indexed read followed by a constant-time comparison.
//
// Rotation keeps the token's ID, name, services and history: it adds a new
// current secret and gives every earlier one an end, the grace period the
// caller chose, so that apps can switch to the new secret without
// downtime.

// Rotation grace bounds.
const (
	DefaultRotationGrace = 24 * time.Hour
	MaxRotationGrace     = 30 * 24 * time.Hour
)

// Limits on a token's fields.
const (
	maxTokenServices      = 50
	maxTokenRatePerMinute = 1_000_000
)

// lastUsedInterval is how stale a token's LastUsedAt may get: it is written
// at most once per interval per token, off the request path.
const lastUsedInterval = time.Minute

var (
	tokenEncoding  = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
	tokenSecretLen = tokenEncoding.EncodedLen(32)
	tokenLen       = len(apiwallet.AccessTokenPrefix) + tokenSecretLen
	serviceNameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

	errBadAccessToken = apiwallet.Errorf(apiwallet.EUNAUTHORIZED, "invalid, expired or revoked wallet access token")
)

// newTokenSecret returns a fresh token and its stored hash.
func newTokenSecret() (token, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	token = apiwallet.AccessTokenPrefix + tokenEncoding.EncodeToString(b[:])
	return token, hashToken(token), nil
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// wellFormed reports whether raw could be a token at all, so that garbage
// never reaches the database.
func wellFormed(raw string) bool {
	rest, ok := strings.CutPrefix(raw, apiwallet.AccessTokenPrefix)
	if !ok || len(raw) != tokenLen {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// TokenInput is what a caller asks for when creating a token.
type TokenInput struct {
	Name     string
	Services []string // empty: every service
	// ExpiresAt is zero for a token that does not expire.
	ExpiresAt          time.Time
	RateLimitPerMinute int
}

// now is the time access-token checks use.
func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// validateTokenInput checks in and returns it normalised: name trimmed,
// services lower-cased, de-duplicated and sorted, expiry in UTC.
func (s *Service) validateTokenInput(in TokenInput) (TokenInput, error) {
	var v apiwallet.ValidationError
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" {
		v.Add("name", "is required")
	} else if utf8.RuneCountInString(in.Name) > 100 {
		v.Add("name", "must be at most 100 characters")
	}
	services := []string{}
	for i, svc := range in.Services {
		svc = strings.ToLower(strings.TrimSpace(svc))
		if !serviceNameRE.MatchString(svc) {
			v.Add("services["+strconv.Itoa(i)+"]", "must be a service name such as openai or stripe")
			continue
		}
		if !slices.Contains(services, svc) {
			services = append(services, svc)
		}
	}
	if len(services) > maxTokenServices {
		v.Add("services", fmt.Sprintf("must list at most %d services", maxTokenServices))
	}
	slices.Sort(services)
	in.Services = services
	if !in.ExpiresAt.IsZero() {
		in.ExpiresAt = in.ExpiresAt.UTC().Truncate(time.Microsecond)
		if !in.ExpiresAt.After(s.now()) {
			v.Add("expires_at", "must be in the future")
		}
	}
	if in.RateLimitPerMinute < 0 || in.RateLimitPerMinute > maxTokenRatePerMinute {
		v.Add("rate_limit_per_minute", fmt.Sprintf("must be between 0 (no token limit) and %d", maxTokenRatePerMinute))
	}
	return in, v.Err()
}

// tokenEvent starts an audit event for a token operation by m's user.
func tokenEvent(ctx context.Context, m *apiwallet.Membership, action, tokenID string) *apiwallet.AuditEvent {
	return apiwallet.NewAuditEvent(ctx, m.Workspace.ID, apiwallet.ActorUser, m.UserID, action, "token", tokenID)
}

// deny records a refused token operation and returns err.
func (s *Service) deny(ctx context.Context, ev *apiwallet.AuditEvent, err error) error {
	ev.Outcome = apiwallet.OutcomeDenied
	if aerr := s.Audit.AppendAudit(ctx, ev); aerr != nil {
		return aerr
	}
	return err
}

// CreateToken issues a token in m's workspace for m's user and returns it
// with its secret, which is never available again. Viewers cannot create
// tokens (EFORBIDDEN); bad input is EINVALID; ECONFLICT once the workspace
// holds MaxTokens unrevoked tokens.
func (s *Service) CreateToken(ctx context.Context, m *apiwallet.Membership, in TokenInput) (*apiwallet.AccessToken, string, error) {
	if !m.Role.AtLeast(apiwallet.WorkspaceMember) {
		return nil, "", s.deny(ctx, tokenEvent(ctx, m, "token.create", ""), apiwallet.Errorf(apiwallet.EFORBIDDEN,
			"your role in this workspace (%s) cannot create tokens; it needs member or above", m.Role))
	}
	in, err := s.validateTokenInput(in)
	if err != nil {
		return nil, "", err
	}
	secret, hash, err := newTokenSecret()
	if err != nil {
		return nil, "", err
	}
	t := &apiwallet.AccessToken{
		WorkspaceID: m.Workspace.ID, Name: in.Name, Services: in.Services, CreatedBy: m.UserID,
		Last4: secret[len(secret)-4:], RateLimitPerMinute: in.RateLimitPerMinute, ExpiresAt: in.ExpiresAt,
	}
	ev := tokenEvent(ctx, m, "token.create", "")
	ev.Details = map[string]string{"name": in.Name, "services": servicesDetail(in.Services)}
	if !in.ExpiresAt.IsZero() {
		ev.Details["expires_at"] = in.ExpiresAt.Format(time.RFC3339)
	}
	if err := s.Tokens.CreateAccessToken(ctx, t, hash, s.MaxTokens, ev); err != nil {
		return nil, "", err
	}
	return t, secret, nil
}

func servicesDetail(services []string) string {
	if len(services) == 0 {
		return "*"
	}
	return strings.Join(services, ",")
}

// ListTokens lists the tokens of m's workspace, masked; every member,
// viewers included, may see them.
func (s *Service) ListTokens(ctx context.Context, m *apiwallet.Membership, after string, limit int) ([]*apiwallet.AccessToken, error) {
	return s.Tokens.FindAccessTokens(ctx, apiwallet.AccessTokenFilter{WorkspaceID: m.Workspace.ID, After: after, Limit: limit})
}

// mayManage finds token id in m's workspace and checks that m's user may
// revoke or rotate it: its creator (member or above), or an admin or owner
// of the workspace. A token of another workspace is ENOTFOUND.
func (s *Service) mayManage(ctx context.Context, m *apiwallet.Membership, id, action, doing string) (*apiwallet.AccessToken, error) {
	t, err := s.Tokens.FindAccessTokenByID(ctx, m.Workspace.ID, id)
	if err != nil {
		return nil, err
	}
	switch {
	case m.Role.AtLeast(apiwallet.WorkspaceAdmin):
		return t, nil
	case !m.Role.AtLeast(apiwallet.WorkspaceMember):
		return nil, s.deny(ctx, tokenEvent(ctx, m, action, id), apiwallet.Errorf(apiwallet.EFORBIDDEN,
			"your role in this workspace (%s) cannot %s tokens; it needs member or above", m.Role, doing))
	case t.CreatedBy != m.UserID:
		return nil, s.deny(ctx, tokenEvent(ctx, m, action, id), apiwallet.Errorf(apiwallet.EFORBIDDEN,
			"only the member who created this token, or a workspace admin or owner, can %s it", doing))
	}
	return t, nil
}

// RevokeToken revokes token id of m's workspace at once. Members revoke
// their own tokens; admins and owners any (EFORBIDDEN); ENOTFOUND.
func (s *Service) RevokeToken(ctx context.Context, m *apiwallet.Membership, id string) (*apiwallet.AccessToken, error) {
	t, err := s.mayManage(ctx, m, id, "token.revoke", "revoke")
	if err != nil {
		return nil, err
	}
	ev := tokenEvent(ctx, m, "token.revoke", id)
	ev.Details = map[string]string{"name": t.Name, "created_by": t.CreatedBy}
	return s.Tokens.RevokeAccessToken(ctx, m.Workspace.ID, id, ev)
}

// RotateToken gives token id of m's workspace a new secret, returned once,
// and keeps the earlier secrets valid for grace (0 ends them at once; at
// most MaxRotationGrace). Who may rotate is who may revoke. ENOTFOUND;
// ECONFLICT for a revoked or expired token.
func (s *Service) RotateToken(ctx context.Context, m *apiwallet.Membership, id string, grace time.Duration) (_ *apiwallet.AccessToken, secret string, graceUntil time.Time, err error) {
	if grace < 0 || grace > MaxRotationGrace {
		return nil, "", time.Time{}, &apiwallet.Error{Code: apiwallet.EINVALID, Message: "the request has invalid fields",
			Fields: []apiwallet.FieldError{{Field: "grace_seconds",
				Detail: fmt.Sprintf("must be between 0 and %d (%d days)", int64(MaxRotationGrace/time.Second), MaxRotationGrace/(24*time.Hour))}}}
	}
	t, err := s.mayManage(ctx, m, id, "token.rotate", "rotate")
	if err != nil {
		return nil, "", time.Time{}, err
	}
	now := s.now()
	switch {
	case t.Revoked():
		return nil, "", time.Time{}, apiwallet.Errorf(apiwallet.ECONFLICT, "the token is revoked; create a new one instead")
	case t.Expired(now):
		return nil, "", time.Time{}, apiwallet.Errorf(apiwallet.ECONFLICT, "the token has expired; create a new one instead")
	}
	secret, hash, err := newTokenSecret()
	if err != nil {
		return nil, "", time.Time{}, err
	}
	graceUntil = now.Add(grace).Truncate(time.Microsecond)
	ev := tokenEvent(ctx, m, "token.rotate", id)
	ev.Details = map[string]string{"name": t.Name, "grace_seconds": strconv.FormatInt(int64(grace/time.Second), 10),
		"previous_valid_until": graceUntil.Format(time.RFC3339)}
	t, err = s.Tokens.RotateAccessToken(ctx, m.Workspace.ID, id, hash, secret[len(secret)-4:], graceUntil, ev)
	if err != nil {
		return nil, "", time.Time{}, err
	}
	return t, secret, graceUntil, nil
}

// AuthenticateToken turns a wallet access token into the token and the
// member who created it. It is for the proxy endpoints only: the
// management API refuses access tokens outright. The token fails, all with
// one EUNAUTHORIZED error, when it is unknown, revoked or expired, when
// its secret was rotated away and the grace period is over, or when its
// creator has been removed from the workspace, demoted to viewer, disabled
// or deleted — each at once, since nothing here is cached. The caller
// still checks tok.Allows(service).
func (s *Service) AuthenticateToken(ctx context.Context, raw string) (*apiwallet.AccessToken, *apiwallet.User, error) {
	if !wellFormed(raw) {
		return nil, nil, errBadAccessToken
	}
	hash := hashToken(raw)
	t, sec, err := s.Tokens.FindAccessTokenBySecretHash(ctx, hash)
	if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND {
		return nil, nil, errBadAccessToken
	} else if err != nil {
		return nil, nil, err
	}
	now := s.now()
	if subtle.ConstantTimeCompare([]byte(sec.Hash), []byte(hash)) != 1 ||
		t.Revoked() || t.Expired(now) || !sec.Valid(now) {
		return nil, nil, errBadAccessToken
	}
	m, err := s.Workspaces.FindMembership(ctx, t.WorkspaceID, t.CreatedBy)
	if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND {
		return nil, nil, errBadAccessToken
	} else if err != nil {
		return nil, nil, err
	}
	if !m.Role.AtLeast(apiwallet.WorkspaceMember) {
		return nil, nil, errBadAccessToken
	}
	u, err := s.Users.FindUserByID(ctx, t.CreatedBy)
	if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND {
		return nil, nil, errBadAccessToken
	} else if err != nil {
		return nil, nil, err
	}
	if u.Disabled {
		return nil, nil, errBadAccessToken
	}
	s.tokenUse.touch(s, t, now)
	return t, u, nil
}

// IsBadAccessToken reports whether err is the error AuthenticateToken
// returns for a token that does not work.
func IsBadAccessToken(err error) bool { return errors.Is(err, errBadAccessToken) }

// tokenUse keeps LastUsedAt cheap: a token's use is written at most once
// per lastUsedInterval, in the background, and skipped when the stored
// time (which another instance may have written) is recent enough.
type tokenUse struct {
	mu   sync.Mutex
	last map[string]time.Time
	wg   sync.WaitGroup
}

func (u *tokenUse) touch(s *Service, t *apiwallet.AccessToken, now time.Time) {
	if now.Sub(t.LastUsedAt) < lastUsedInterval {
		return
	}
	u.mu.Lock()
	if u.last == nil {
		u.last = map[string]time.Time{}
	}
	if at, ok := u.last[t.ID]; ok && now.Sub(at) < lastUsedInterval {
		u.mu.Unlock()
		return
	}
	u.last[t.ID] = now
	if len(u.last) > 10_000 {
		for id, at := range u.last {
			if now.Sub(at) >= lastUsedInterval {
				delete(u.last, id)
			}
		}
	}
	u.wg.Add(1)
	u.mu.Unlock()
	id := t.ID
	go func() {
		defer u.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Tokens.TouchAccessToken(ctx, id, now); err != nil && s.Log != nil {
			s.Log.Warn("record access token use", "token_id", id, "err", err)
		}
	}()
}

// Wait blocks until the background writes of token use have finished:
// for a clean shutdown, and for tests that read LastUsedAt.
func (s *Service) Wait() { s.tokenUse.wg.Wait() }
