package routing

import (
	"context"
	"errors"
	"net/http"
)

// MaxAttempts bounds the keys one proxied call tries, the first included.
const MaxAttempts = 3

// Retryable reports whether a failed attempt may be retried with the next
// key:
//
//   - a network error or timeout (netErr != nil or status 0): always when
//     the upstream cannot have received the request (reqReachedUpstream
//     and sentBody false: DNS, dial, TLS handshake); otherwise only for an
//     idempotent method (GET HEAD OPTIONS TRACE PUT DELETE) or when the
//     client sent an Idempotency-Key. A request the client itself
//     cancelled (context.Canceled) is never retried.
//   - 429, and 401/402/403 (the key was refused, the request not
//     processed; the key gets quarantined): always, whatever the method.
//   - other 5xx: for an idempotent method or with an Idempotency-Key;
//     never 501 or 505, which another key cannot change.
//   - anything else (2xx, 3xx, other 4xx): never. A non-zero status with a
//     netErr (the body broke off after the headers) follows the status.
//
// reqReachedUpstream is whether the request was written to a connection
// (httptrace WroteHeaders); sentBody whether request body bytes were
// written. Replaying the body (GetBody or a buffer) is the caller's job;
// the caller also stops after MaxAttempts.
func Retryable(method string, status int, sentBody, idempotencyKey bool, netErr error, reqReachedUpstream bool) bool {
	if netErr != nil && errors.Is(netErr, context.Canceled) {
		return false
	}
	safe := idempotencyKey || idempotent(method)
	if status == 0 {
		return safe || !(reqReachedUpstream || sentBody)
	}
	switch {
	case status == http.StatusTooManyRequests,
		status == http.StatusUnauthorized,
		status == http.StatusPaymentRequired,
		status == http.StatusForbidden:
		return true
	case status == http.StatusNotImplemented, status == http.StatusHTTPVersionNotSupported:
		return false
	case status >= 500 && status <= 599:
		return safe
	}
	return false
}

// idempotent reports whether method is idempotent (RFC 9110 §9.2.2); ""
// is GET, as in net/http.
func idempotent(method string) bool {
	switch method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace,
		http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}
