package auth

import (
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// Instances' clocks differ a little: a login token issued by an instance
// whose clock is up to 5 s ahead or behind is accepted by another, both as
// it is issued and around its expiry; beyond that it is refused, so a clock
// far off cannot stretch a token's life.
func TestJWTClockSkew(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	secret := []byte("skew-test-secret-skew-test-secret-0123")
	at := func(t time.Time) *JWT {
		return &JWT{Secret: secret, Issuer: "apiwallet", Audience: "apiwallet", TTL: time.Hour, Now: func() time.Time { return t }}
	}
	u := &apiwallet.User{ID: "usr_skew"}
	verifier := at(now)
	for _, c := range []struct {
		skew time.Duration // the issuer's clock minus the verifier's
		ok   bool
	}{
		{0, true}, {4 * time.Second, true}, {-4 * time.Second, true},
		{10 * time.Second, false}, // issued "in the future": nbf and iat not yet reached
		{-time.Hour - 4*time.Second, true},
		{-time.Hour - 10*time.Second, false}, // expired 10 s ago by the verifier's clock
	} {
		tok, _, err := at(now.Add(c.skew)).Issue(u)
		if err != nil {
			t.Fatal(err)
		}
		_, err = verifier.Parse(tok)
		if (err == nil) != c.ok {
			t.Errorf("issuer clock %+v: parse error %v, want accepted=%v", c.skew, err, c.ok)
		}
	}
}
