package auth

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/apikeywallet/apiwallet"
)

// fuzzClock is a fixed time, so that the tokens minted for the seeds stay
// valid however long a fuzz run lasts.
var fuzzClock = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fuzzJWT(secret string) *JWT {
	return &JWT{Secret: []byte(secret), Issuer: "apiwallet", Audience: "apiwallet", TTL: time.Hour,
		Now: func() time.Time { return fuzzClock }}
}

// forged signs claims with key under alg, as an attacker who does not
// hold the wallet's secret might.
func forged(alg jwt.SigningMethod, claims jwt.Claims, key any) string {
	s, err := jwt.NewWithClaims(alg, claims).SignedString(key)
	if err != nil {
		panic(err)
	}
	return s
}

// FuzzJWTParse feeds arbitrary strings to the login-token parser. The
// property: no panic, every refusal is the one EUNAUTHORIZED error, and a
// token is accepted only if it is one the wallet minted with its secret
// (here: the tokens minted below; the fuzzer cannot mint more without the
// secret). Re-encodings of a minted token (padding, non-canonical base64,
// white space) are refused too: one token has one spelling.
func FuzzJWTParse(f *testing.F) {
	const secret = "fuzz-secret-fuzz-secret-fuzz-secret-0123"
	j := fuzzJWT(secret)
	// The fuzzing engine runs this set-up in each of its processes, so
	// the seeds must be the same in all: the tokens are made as Issue
	// makes them, with a fixed ID instead of a random one.
	if tok, _, err := j.Issue(&apiwallet.User{ID: "usr_0", TokenVersion: 1}); err != nil {
		f.Fatal(err)
	} else if _, err := j.Parse(tok); err != nil {
		f.Fatalf("Parse refused what Issue made: %v", err)
	}
	minted := map[string]bool{}
	for _, id := range []string{"usr_1", "usr_2"} {
		now := jwt.NewNumericDate(fuzzClock)
		tok := forged(jwt.SigningMethodHS256, Claims{Ver: 3, RegisteredClaims: jwt.RegisteredClaims{
			Issuer: j.Issuer, Subject: id, Audience: jwt.ClaimStrings{j.Audience}, IssuedAt: now, NotBefore: now,
			ExpiresAt: jwt.NewNumericDate(fuzzClock.Add(j.TTL)), ID: "jti_" + id}}, []byte(secret))
		minted[tok] = true
		f.Add(tok)
		parts := strings.Split(tok, ".")
		f.Add(parts[0] + "." + parts[1] + ".")                             // signature stripped
		f.Add(parts[0] + "." + parts[1] + "." + parts[2] + "=")            // padded
		f.Add(" " + tok)                                                   // white space
		f.Add(parts[0] + "." + parts[1] + "." + strings.ToUpper(parts[2])) // case changed
		// The signature's last character carries 2 spare bits: the same
		// signature spelt 3 more ways.
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		last := strings.IndexByte(alphabet, tok[len(tok)-1])
		for d := 1; d < 4; d++ {
			f.Add(tok[:len(tok)-1] + string(alphabet[last^d]))
		}
	}
	now := jwt.NewNumericDate(fuzzClock)
	claims := Claims{Ver: 99, RegisteredClaims: jwt.RegisteredClaims{Issuer: "apiwallet", Subject: "usr_admin",
		Audience: jwt.ClaimStrings{"apiwallet"}, IssuedAt: now, NotBefore: now,
		ExpiresAt: jwt.NewNumericDate(fuzzClock.Add(time.Hour))}}
	f.Add(forged(jwt.SigningMethodHS256, claims, []byte("another secret")))
	f.Add(forged(jwt.SigningMethodHS384, claims, []byte(secret)))
	f.Add(forged(jwt.SigningMethodHS512, claims, []byte(secret)))
	f.Add(forged(jwt.SigningMethodNone, claims, jwt.UnsafeAllowNoneSignatureType))
	noExp := claims
	noExp.ExpiresAt = nil
	f.Add(forged(jwt.SigningMethodHS256, noExp, []byte(secret)))
	wrongAud := claims
	wrongAud.Audience = jwt.ClaimStrings{"someone-else"}
	f.Add(forged(jwt.SigningMethodHS256, wrongAud, []byte(secret)))
	expired := claims
	expired.ExpiresAt = jwt.NewNumericDate(fuzzClock.Add(-time.Hour))
	f.Add(forged(jwt.SigningMethodHS256, expired, []byte(secret)))
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT","crit":["x"]}`))
	f.Add(hdr + ".e30.")
	f.Add("")
	f.Add("..")
	f.Add("a.b.c.d")
	f.Add(strings.Repeat("A", 10000) + "." + strings.Repeat("B", 10000) + ".c")

	// The claims the wallet checks must be ones it minted: a token signed
	// with the secret but made here (noExp, wrongAud, expired) is refused
	// because of its claims, never because of its signature alone.
	f.Fuzz(func(t *testing.T, token string) {
		c, err := j.Parse(token)
		if err != nil {
			if !IsBadToken(err) || c != nil {
				t.Fatalf("Parse(%q) = %v, %v: want only the bad-token error", token, c, err)
			}
			return
		}
		if !minted[token] {
			t.Fatalf("Parse accepted a token the wallet did not mint: %q (subject %q)", token, c.Subject)
		}
		if c.Subject == "" || c.Issuer != "apiwallet" {
			t.Fatalf("accepted claims %+v", c)
		}
	})
}

// FuzzAccessTokenFormat checks the shape test that keeps garbage away from
// the token lookup: what passes is "awk_" and 52 letters and digits of
// the token alphabet that decode to 32 bytes, and every minted token
// passes.
func FuzzAccessTokenFormat(f *testing.F) {
	tok, _, err := newTokenSecret()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	f.Add(strings.ToUpper(tok))
	f.Add(tok[:len(tok)-1])
	f.Add(tok + "a")
	f.Add(tok[:len(tok)-1] + "=")
	f.Add(apiwallet.AccessTokenPrefix + strings.Repeat("a", 52))
	f.Add(apiwallet.AccessTokenPrefix + strings.Repeat("9", 52))
	f.Add("awk-" + tok[4:])
	f.Add("Bearer " + tok)
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		if !wellFormed(raw) {
			return
		}
		rest, ok := strings.CutPrefix(raw, apiwallet.AccessTokenPrefix)
		if !ok || len(raw) != tokenLen {
			t.Fatalf("wellFormed(%q) without the prefix or length", raw)
		}
		b, err := tokenEncoding.DecodeString(rest)
		if err != nil || len(b) < 32 {
			t.Fatalf("wellFormed(%q): the secret does not decode to 32 bytes: %v", raw, err)
		}
		if h := hashToken(raw); len(h) != 64 || strings.Contains(h, raw) {
			t.Fatalf("hashToken(%q) = %q", raw, h)
		}
	})
}
