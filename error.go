package apiwallet

import (
	"errors"
	"fmt"
)

// Error codes. Each maps to one HTTP status (HTTPStatus).
const (
	EINVALID      = "invalid"      // bad input: 400 or 422
	EUNAUTHORIZED = "unauthorized" // missing or bad credentials: 401
	EFORBIDDEN    = "forbidden"    // authenticated but not allowed: 403
	ENOTFOUND     = "not_found"    // missing, or owned by someone else: 404
	ECONFLICT     = "conflict"     // duplicate: 409
	ETOOLARGE     = "too_large"    // body over the limit: 413
	ERATELIMIT    = "rate_limited" // throttled: 429
	EUPSTREAM     = "upstream"     // every upstream attempt failed: 502
	EUNAVAILABLE  = "unavailable"  // a dependency is down: 503
	EINTERNAL     = "internal"     // anything else: 500, message hidden
)

// httpStatus is the HTTP status each code answers with.
var httpStatus = map[string]int{
	EINVALID: 400, EUNAUTHORIZED: 401, EFORBIDDEN: 403, ENOTFOUND: 404, ECONFLICT: 409,
	ETOOLARGE: 413, ERATELIMIT: 429, EUPSTREAM: 502, EUNAVAILABLE: 503, EINTERNAL: 500,
}

// HTTPStatus is the HTTP status an error code answers with; 500 for an
// unknown one.
func HTTPStatus(code string) int {
	if s, ok := httpStatus[code]; ok {
		return s
	}
	return 500
}

// ProblemBase prefixes every RFC 9457 problem type URI the wallet sends.
const ProblemBase = "https://apiwallet.dev/problems/"

// Error is an error whose Message is safe to show to the caller. Any error
// that is not an *Error is internal and is shown only as "internal error".
type Error struct {
	Code    string
	Message string
	// Fields names each bad input field and what is wrong with it.
	Fields []FieldError
	// RetryAfter, when set on ERATELIMIT, is how long the caller should wait.
	RetryAfterSeconds int
	// Reason is a machine code finer than Code, such as "quota_exceeded",
	// for clients that branch on it; Type, when set, names the problem
	// type instead of the one Code maps to.
	Reason, Type string
	// Extra holds further members of the problem body (RFC 9457
	// extensions): the numbers behind a refusal, or the "error" member
	// an upstream's SDK reads. Never a secret.
	Extra map[string]any
}

// FieldError names one invalid input field.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("apiwallet error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and formatted public message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err if it is an *Error, EINTERNAL otherwise.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the public message of err, hiding internal errors.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// Wrap adds context to a non-nil *errp once per function, keeping *Error
// values intact so that their code survives:
//
//	defer apiwallet.Wrap(&err, "FindUserByEmail")
func Wrap(errp *error, format string, args ...any) {
	if *errp == nil {
		return
	}
	var e *Error
	if errors.As(*errp, &e) {
		return
	}
	*errp = fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), *errp)
}

// ReasonLimitReached is the Reason of the ECONFLICT a creation gets when
// the workspace already holds as many of the thing as it may.
const ReasonLimitReached = "limit_reached"

// LimitReached is the refusal to create one more of what (plural, "keys")
// in a workspace that holds limit of them already. The limit is in the
// problem body, so a client can tell it apart from a duplicate.
func LimitReached(what string, limit int) *Error {
	return &Error{Code: ECONFLICT, Reason: ReasonLimitReached,
		Message: fmt.Sprintf("this workspace already holds %d %s, the most it may; delete or revoke one first", limit, what),
		Extra:   map[string]any{"limit": limit}}
}

// ValidationError collects field errors and returns nil when there are none.
type ValidationError []FieldError

// Add records a problem with field.
func (v *ValidationError) Add(field, detail string) {
	*v = append(*v, FieldError{Field: field, Detail: detail})
}

// Err returns an EINVALID *Error listing every field, or nil.
func (v ValidationError) Err() error {
	if len(v) == 0 {
		return nil
	}
	return &Error{Code: EINVALID, Message: "the request has invalid fields", Fields: v}
}
