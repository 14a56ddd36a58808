package api

import (
	"database/sql/driver"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"

	"github.com/apikeywallet/apiwallet"
)

// ProblemBase prefixes every problem type URI.
const ProblemBase = apiwallet.ProblemBase

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type      string                 `json:"type"`
	Title     string                 `json:"title"`
	Status    int                    `json:"status"`
	Detail    string                 `json:"detail,omitempty"`
	Instance  string                 `json:"instance,omitempty"`
	RequestID string                 `json:"requestId,omitempty"`
	Errors    []apiwallet.FieldError `json:"errors,omitempty"`
	// Code is the error's machine reason (apiwallet.Error.Reason).
	Code string `json:"code,omitempty"`
	// Extra members, written beside the standard ones; a member with a
	// standard name is ignored.
	Extra map[string]any `json:"-"`
}

// MarshalJSON writes the standard members, then the extensions.
func (p *Problem) MarshalJSON() ([]byte, error) {
	type plain Problem
	b, err := json.Marshal((*plain)(p))
	if err != nil || len(p.Extra) == 0 {
		return b, err
	}
	std := map[string]bool{"type": true, "title": true, "status": true, "detail": true, "instance": true,
		"requestId": true, "errors": true, "code": true}
	ext := make(map[string]any, len(p.Extra))
	for k, v := range p.Extra {
		if !std[k] {
			ext[k] = v
		}
	}
	if len(ext) == 0 {
		return b, nil
	}
	eb, err := json.Marshal(ext)
	if err != nil {
		return nil, err
	}
	// Both are JSON objects: join them.
	out := append(b[:len(b)-1:len(b)-1], ',')
	return append(out, eb[1:]...), nil
}

var codeType = map[string]string{
	apiwallet.EINVALID:      "validation",
	apiwallet.EUNAUTHORIZED: "unauthorized",
	apiwallet.EFORBIDDEN:    "forbidden",
	apiwallet.ENOTFOUND:     "not-found",
	apiwallet.ECONFLICT:     "conflict",
	apiwallet.ETOOLARGE:     "body-too-large",
	apiwallet.ERATELIMIT:    "rate-limited",
	apiwallet.EUPSTREAM:     "upstream-failed",
	apiwallet.EUNAVAILABLE:  "unavailable",
	apiwallet.EINTERNAL:     "internal",
}

// ErrorStatus maps err to its HTTP status.
func ErrorStatus(err error) int {
	return apiwallet.HTTPStatus(apiwallet.ErrorCode(err))
}

// NewProblem builds the problem body for err. Internal errors keep their
// text out of the body: it goes to the log only.
func NewProblem(r *http.Request, err error) *Problem {
	code := apiwallet.ErrorCode(err)
	status := ErrorStatus(err)
	p := &Problem{
		Type:      ProblemBase + codeType[code],
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    apiwallet.ErrorMessage(err),
		Instance:  r.URL.Path,
		RequestID: RequestID(r.Context()),
	}
	var e *apiwallet.Error
	if errors.As(err, &e) {
		p.Errors, p.Code, p.Extra = e.Fields, e.Reason, e.Extra
		if e.Type != "" {
			p.Type = ProblemBase + e.Type
		}
	}
	return p
}

// writeError writes err as problem+json and logs internal errors. Every
// problem response of the wallet, the proxy's refusals included, is
// written here.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code := apiwallet.ErrorCode(err)
	if code == apiwallet.EINTERNAL && dependencyDown(err) {
		log.WarnContext(r.Context(), "dependency unavailable", "request_id", RequestID(r.Context()),
			"route", r.Pattern, "err", err)
		err = errUnavailable
		code = apiwallet.EUNAVAILABLE
	}
	if code == apiwallet.EINTERNAL {
		log.ErrorContext(r.Context(), "internal error", "request_id", RequestID(r.Context()),
			"route", r.Pattern, "err", err)
	}
	var e *apiwallet.Error
	if errors.As(err, &e) && e.RetryAfterSeconds > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfterSeconds))
	}
	if code == apiwallet.EUNAUTHORIZED && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="apiwallet"`)
	}
	WriteProblem(w, NewProblem(r, err))
}

// errUnavailable answers a call whose database or Redis is unreachable.
var errUnavailable = &apiwallet.Error{Code: apiwallet.EUNAVAILABLE, RetryAfterSeconds: 1,
	Message: "a service the wallet depends on is unavailable; retry shortly"}

// dependencyDown reports whether err says a dependency (the database,
// Redis) could not be reached or went away mid-call, rather than a fault of
// the wallet's: such a call gets a 503 the client may retry, not a 500.
// The drivers' errors carry no common code, so this reads what they have
// in common: network errors, a dropped connection, PostgreSQL's
// connection-exception, operator-intervention and insufficient-resources
// classes, and SQLite's full, I/O and busy results.
func dependencyDown(err error) bool {
	var ne net.Error
	var sqlState interface{ SQLState() string }
	var sqliteCode interface{ Code() int }
	switch {
	case errors.As(err, &ne), errors.Is(err, driver.ErrBadConn), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ENOSPC):
		return true
	case errors.As(err, &sqlState):
		st := sqlState.SQLState()
		return strings.HasPrefix(st, "08") || strings.HasPrefix(st, "57P") || strings.HasPrefix(st, "53")
	case errors.As(err, &sqliteCode):
		switch sqliteCode.Code() & 0xff {
		case 5, 10, 13, 14: // SQLITE_BUSY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN
			return true
		}
	}
	return false
}

// WriteProblem writes p as application/problem+json.
func WriteProblem(w http.ResponseWriter, p any) {
	status := http.StatusInternalServerError
	if pp, ok := p.(*Problem); ok {
		status = pp.Status
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}
