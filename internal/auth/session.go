package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// Cookie names of the dashboard's session. In production the cookie is
// Secure and carries the __Host- prefix, which browsers accept only from
// HTTPS, with Path=/ and no Domain: no subdomain can plant or shadow it.
const (
	SessionCookie       = "awk_session"
	SecureSessionCookie = "__Host-awk_session"
)

// CSRFHeader carries the CSRF token on every state-changing request made
// with the session cookie.
const CSRFHeader = "X-CSRF-Token"

// Cookies issues and reads the dashboard's session cookie and checks its
// CSRF token. The cookie holds the login JWT, so logging out (which bumps
// the user's token version) revokes it like any other login token. The
// CSRF token is derived from the JWT with an HMAC: it needs no storage, it
// changes with each session, and a page from another origin can neither
// read it nor compute it.
type Cookies struct {
	// Secure marks the cookie Secure and gives it the __Host- prefix.
	Secure bool
	// Secret keys the CSRF HMAC (the JWT secret; the HMAC's label keeps
	// the two uses apart).
	Secret []byte
}

// Name is the session cookie's name.
func (c *Cookies) Name() string {
	if c.Secure {
		return SecureSessionCookie
	}
	return SessionCookie
}

// Set writes the session cookie holding token until expires.
func (c *Cookies) Set(w http.ResponseWriter, token string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{Name: c.Name(), Value: token, Path: "/", Expires: expires.UTC(),
		MaxAge: max(1, int(time.Until(expires).Seconds())), HttpOnly: true, Secure: c.Secure,
		SameSite: http.SameSiteStrictMode})
}

// Clear tells the browser to drop the session cookie.
func (c *Cookies) Clear(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: c.Name(), Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: c.Secure, SameSite: http.SameSiteStrictMode})
}

// Token returns the JWT in r's session cookie.
func (c *Cookies) Token(r *http.Request) (string, bool) {
	ck, err := r.Cookie(c.Name())
	if err != nil || ck.Value == "" {
		return "", false
	}
	return ck.Value, true
}

// CSRFToken is the CSRF token of the session holding token.
func (c *Cookies) CSRFToken(token string) string {
	m := hmac.New(sha256.New, c.Secret)
	m.Write([]byte("apiwallet dashboard csrf\x00"))
	m.Write([]byte(token))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

var (
	errCrossSite = apiwallet.Errorf(apiwallet.EFORBIDDEN,
		"cross-site request refused: the dashboard's session works from the wallet's own pages only")
	errCSRF = apiwallet.Errorf(apiwallet.EFORBIDDEN,
		"missing or wrong "+CSRFHeader+" header: send the csrfToken from GET /auth/session with every change")
)

// SafeMethod reports whether method changes nothing, so that a request
// with it needs no CSRF token.
func SafeMethod(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// SameOrigin refuses a request a browser marks as sent from another site:
// Sec-Fetch-Site other than same-origin (or none, a typed address), or an
// Origin whose host is not the one the request was sent to.
func SameOrigin(r *http.Request) error {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return errCrossSite
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || o == "null" || !strings.EqualFold(u.Host, r.Host) {
			return errCrossSite
		}
	}
	return nil
}

// CheckCSRF fails with EFORBIDDEN unless r, sent with the session cookie
// holding token, is same-origin and, for a method that changes state,
// carries the session's CSRF token.
func (c *Cookies) CheckCSRF(r *http.Request, token string) error {
	if err := SameOrigin(r); err != nil {
		return err
	}
	if SafeMethod(r.Method) {
		return nil
	}
	got := r.Header.Get(CSRFHeader)
	want := c.CSRFToken(token)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errCSRF
	}
	return nil
}
