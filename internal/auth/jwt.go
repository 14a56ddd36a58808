package auth

import (
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/apikeywallet/apiwallet"
)

// JWT issues and verifies login tokens. Only HS256 is accepted: a token
// claiming any other algorithm, "none" included, is rejected before its
// signature is looked at.
type JWT struct {
	Secret   []byte
	Issuer   string
	Audience string
	TTL      time.Duration
	Now      func() time.Time
}

// Claims are the wallet's JWT claims. Ver is the user's TokenVersion when
// the token was issued; a token whose Ver is behind the user's is revoked.
type Claims struct {
	Ver int64 `json:"ver"`
	jwt.RegisteredClaims
}

const jwtAlg = "HS256"

// Issue returns a signed token for u and when it expires.
func (j *JWT) Issue(u *apiwallet.User) (string, time.Time, error) {
	now := j.Now().UTC()
	exp := now.Add(j.TTL)
	claims := Claims{
		Ver: u.TokenVersion,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    j.Issuer,
			Subject:   u.ID,
			Audience:  jwt.ClaimStrings{j.Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        apiwallet.NewID("jti"),
		},
	}
	s, err := jwt.NewWithClaims(jwt.GetSigningMethod(jwtAlg), claims).SignedString(j.Secret)
	return s, exp, err
}

var errBadToken = apiwallet.Errorf(apiwallet.EUNAUTHORIZED, "invalid or expired token")

// Parse verifies signature, algorithm, issuer, audience and expiry and
// returns the claims. Every failure is the same EUNAUTHORIZED error so that
// the caller learns nothing about why. Decoding is strict: the lenient
// base64 decoder ignores the spare bits of the last character, so each
// token would be accepted under four spellings.
func (j *JWT) Parse(token string) (*Claims, error) {
	// Go's base64 decoders skip CR and LF even in strict mode, so a token
	// with line breaks inserted would decode to the same bytes and be
	// accepted under another spelling: only the compact form's alphabet
	// is let through.
	if !compactJWS(token) {
		return nil, errBadToken
	}
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return j.Secret, nil },
		jwt.WithValidMethods([]string{jwtAlg}),
		jwt.WithIssuer(j.Issuer),
		jwt.WithAudience(j.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(5*time.Second),
		jwt.WithTimeFunc(j.Now),
		jwt.WithStrictDecoding(),
	)
	if err != nil || c.Subject == "" {
		return nil, errBadToken
	}
	return &c, nil
}

// compactJWS reports whether token uses only the characters of a compact
// JWS: base64url without padding, and dots.
func compactJWS(token string) bool {
	for i := 0; i < len(token); i++ {
		switch b := token[i]; {
		case b >= 'A' && b <= 'Z', b >= 'a' && b <= 'z', b >= '0' && b <= '9', b == '-', b == '_', b == '.':
		default:
			return false
		}
	}
	return true
}

// IsBadToken reports whether err is the error Parse returns.
func IsBadToken(err error) bool { return errors.Is(err, errBadToken) }
