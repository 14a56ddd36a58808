package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/ratelimit"
)

// Password length bounds. The upper bound keeps one login from costing more
// than a fixed amount of hashing.
const (
	MinPasswordLen = 10
	MaxPasswordLen = 256
)

// Login throttles: per account to stop guessing one password from many
// addresses, per client IP to stop one address trying many accounts.
var (
	accountLoginLimit = ratelimit.Limit{Rate: 10, Period: 15 * time.Minute, Burst: 10}
	ipLoginLimit      = ratelimit.Limit{Rate: 30, Period: time.Minute, Burst: 30}
)

// Service manages accounts and turns credentials into users.
type Service struct {
	Users      apiwallet.UserStore
	Workspaces apiwallet.WorkspaceStore
	Audit      apiwallet.AuditStore
	JWT        *JWT
	Limiter    ratelimit.Limiter
	Log        *slog.Logger
	// Tokens stores wallet access tokens (see tokens.go).
	Tokens apiwallet.TokenStore
	// MaxTokens caps the unrevoked tokens one workspace may hold
	// (MAX_TOKENS_PER_WORKSPACE); 0 means no cap.
	MaxTokens int
	// Now is the time access-token expiry and grace periods are checked
	// against; nil means time.Now. Tests move it.
	Now func() time.Time

	tokenUse tokenUse
}

// Session is what a successful register or login returns.
type Session struct {
	User      *apiwallet.User
	Token     string
	ExpiresAt time.Time
}

// ValidateEmail normalises and checks an email address.
func ValidateEmail(v *apiwallet.ValidationError, email string) string {
	email = strings.TrimSpace(email)
	a, err := mail.ParseAddress(email)
	if email == "" {
		v.Add("email", "is required")
	} else if err != nil || a.Address != email || len(email) > 254 || !strings.Contains(email[strings.LastIndexByte(email, '@'):], ".") {
		v.Add("email", "must be a valid email address such as name@example.com")
	}
	return strings.ToLower(email)
}

// ValidatePassword checks a new password's length.
func ValidatePassword(v *apiwallet.ValidationError, field, password string) {
	switch n := utf8.RuneCountInString(password); {
	case n == 0:
		v.Add(field, "is required")
	case n < MinPasswordLen:
		v.Add(field, fmt.Sprintf("must be at least %d characters", MinPasswordLen))
	case len(password) > MaxPasswordLen:
		v.Add(field, fmt.Sprintf("must be at most %d bytes", MaxPasswordLen))
	}
}

func validateName(v *apiwallet.ValidationError, name string) string {
	name = strings.TrimSpace(name)
	if name == "" {
		v.Add("name", "is required")
	} else if utf8.RuneCountInString(name) > 100 {
		v.Add("name", "must be at most 100 characters")
	}
	return name
}

// CreateUser validates and stores a new user with its personal workspace,
// on an operator's behalf.
func (s *Service) CreateUser(ctx context.Context, email, password, name string, role apiwallet.Role) (*apiwallet.User, error) {
	return s.createUser(ctx, email, password, name, role, apiwallet.ActorSystem)
}

func (s *Service) createUser(ctx context.Context, email, password, name string, role apiwallet.Role, actorType string) (*apiwallet.User, error) {
	var v apiwallet.ValidationError
	email = ValidateEmail(&v, email)
	ValidatePassword(&v, "password", password)
	name = validateName(&v, name)
	if err := v.Err(); err != nil {
		return nil, err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return nil, err
	}
	u := &apiwallet.User{Email: email, Name: name, Role: role, PasswordHash: hash}
	// The store names the new user as target, and as actor when it
	// registered itself.
	ev := apiwallet.NewAuditEvent(ctx, "", actorType, "", "user.create", "user", "")
	ev.Details = map[string]string{"role": string(role)}
	if err := s.Users.CreateUser(ctx, u, &apiwallet.Workspace{Name: name + "'s workspace"}, ev); err != nil {
		return nil, err
	}
	return u, nil
}

// Register creates a USER account and logs it in. An ADMIN is only ever
// made by an operator (apiwallet user create --admin), never by registering.
func (s *Service) Register(ctx context.Context, email, password, name string) (*Session, error) {
	u, err := s.createUser(ctx, email, password, name, apiwallet.RoleUser, apiwallet.ActorUser)
	if err != nil {
		return nil, err
	}
	return s.session(u)
}

func (s *Service) session(u *apiwallet.User) (*Session, error) {
	tok, exp, err := s.JWT.Issue(u)
	if err != nil {
		return nil, err
	}
	return &Session{User: u, Token: tok, ExpiresAt: exp}, nil
}

var errBadLogin = apiwallet.Errorf(apiwallet.EUNAUTHORIZED, "invalid email or password")

// Login checks email and password, throttled per account and per client IP.
// Unknown emails, wrong passwords and disabled accounts get one answer.
func (s *Service) Login(ctx context.Context, email, password, clientIP string) (*Session, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if err := s.throttle(ctx, "login:ip:"+clientIP, ipLoginLimit); err != nil {
		return nil, err
	}
	if err := s.throttle(ctx, "login:acct:"+email, accountLoginLimit); err != nil {
		return nil, err
	}
	if len(password) > MaxPasswordLen {
		return nil, errBadLogin
	}
	u, err := s.Users.FindUserByEmail(ctx, email)
	if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND {
		_, _ = VerifyPassword(password, dummyHash)
		// No actor: an unknown email is not recorded, it may be a
		// mistyped password pasted into the wrong field.
		return nil, s.loginFailed(ctx, nil, "unknown account")
	} else if err != nil {
		return nil, err
	}
	ok, err := VerifyPassword(password, u.PasswordHash)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, s.loginFailed(ctx, u, "wrong password")
	}
	if u.Disabled {
		return nil, s.loginFailed(ctx, u, "account disabled")
	}
	ss, err := s.session(u)
	if err != nil {
		return nil, err
	}
	ev := apiwallet.NewAuditEvent(ctx, u.PersonalWorkspaceID, apiwallet.ActorUser, u.ID, "auth.login", "user", u.ID)
	if err := s.Audit.AppendAudit(ctx, ev); err != nil {
		return nil, err
	}
	return ss, nil
}

// loginFailed records a failed login and returns the one error every
// failure gets.
func (s *Service) loginFailed(ctx context.Context, u *apiwallet.User, reason string) error {
	ev := apiwallet.NewAuditEvent(ctx, "", apiwallet.ActorUser, "", "auth.login", "user", "")
	if u != nil {
		ev.WorkspaceID, ev.ActorID, ev.TargetID = u.PersonalWorkspaceID, u.ID, u.ID
	}
	ev.Outcome = apiwallet.OutcomeFailure
	ev.Details = map[string]string{"reason": reason}
	if err := s.Audit.AppendAudit(ctx, ev); err != nil {
		return err
	}
	return errBadLogin
}

func (s *Service) throttle(ctx context.Context, key string, l ratelimit.Limit) error {
	d, err := s.Limiter.Allow(ctx, key, l, 1)
	if err != nil {
		return err
	}
	if !d.Allowed {
		secs := int((d.RetryAfter + time.Second - 1) / time.Second)
		return &apiwallet.Error{
			Code:              apiwallet.ERATELIMIT,
			Message:           fmt.Sprintf("too many login attempts; try again in %d seconds", secs),
			RetryAfterSeconds: secs,
		}
	}
	return nil
}

// Authenticate turns a login JWT into its user. Revoked (logged out,
// password changed), disabled and deleted users all fail alike.
func (s *Service) Authenticate(ctx context.Context, token string) (*apiwallet.User, error) {
	c, err := s.JWT.Parse(token)
	if err != nil {
		return nil, err
	}
	u, err := s.Users.FindUserByID(ctx, c.Subject)
	if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND {
		return nil, errBadToken
	} else if err != nil {
		return nil, err
	}
	if u.Disabled || c.Ver != u.TokenVersion {
		return nil, errBadToken
	}
	return u, nil
}

// Logout revokes every login token the user holds.
func (s *Service) Logout(ctx context.Context, u *apiwallet.User) error {
	return s.Users.RevokeUserTokens(ctx, u.ID,
		apiwallet.NewAuditEvent(ctx, u.PersonalWorkspaceID, apiwallet.ActorUser, u.ID, "auth.logout", "user", u.ID))
}

// ChangePassword checks the current password, stores the new one and
// revokes every earlier token; it returns a fresh session.
func (s *Service) ChangePassword(ctx context.Context, u *apiwallet.User, current, next string) (*Session, error) {
	var v apiwallet.ValidationError
	ValidatePassword(&v, "newPassword", next)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := s.throttle(ctx, "login:acct:"+u.Email, accountLoginLimit); err != nil {
		return nil, err
	}
	if ok, err := VerifyPassword(current, u.PasswordHash); err != nil {
		return nil, err
	} else if !ok {
		return nil, &apiwallet.Error{Code: apiwallet.EINVALID, Message: "the current password is wrong",
			Fields: []apiwallet.FieldError{{Field: "currentPassword", Detail: "is wrong"}}}
	}
	hash, err := HashPassword(next)
	if err != nil {
		return nil, err
	}
	nu, err := s.Users.UpdateUser(ctx, u.ID, apiwallet.UserUpdate{PasswordHash: &hash},
		apiwallet.NewAuditEvent(ctx, u.PersonalWorkspaceID, apiwallet.ActorUser, u.ID, "auth.password_change", "user", u.ID))
	if err != nil {
		return nil, err
	}
	return s.session(nu)
}

// Workspace resolves which workspace a request acts in: the one named by
// X-Workspace-Id if the user is a member of it, else the personal one. A
// workspace the user is not a member of is ENOTFOUND.
func (s *Service) Workspace(ctx context.Context, u *apiwallet.User, requested string) (*apiwallet.Membership, error) {
	id := requested
	if id == "" {
		id = u.PersonalWorkspaceID
	}
	m, err := s.Workspaces.FindMembership(ctx, id, u.ID)
	if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND {
		return nil, apiwallet.Errorf(apiwallet.ENOTFOUND, "workspace not found")
	}
	return m, err
}

// ErrNoCredentials is returned when a request carries no bearer token.
var ErrNoCredentials = errors.New("no credentials")
