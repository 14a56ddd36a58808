package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"

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
}

var codeStatus = map[string]int{
	apiwallet.EINVALID:      http.StatusBadRequest,
	apiwallet.EUNAUTHORIZED: http.StatusUnauthorized,
	apiwallet.EFORBIDDEN:    http.StatusForbidden,
	apiwallet.ENOTFOUND:     http.StatusNotFound,
	apiwallet.ECONFLICT:     http.StatusConflict,
	apiwallet.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	apiwallet.ERATELIMIT:    http.StatusTooManyRequests,
	apiwallet.EUNAVAILABLE:  http.StatusServiceUnavailable,
	apiwallet.EINTERNAL:     http.StatusInternalServerError,
}

var codeType = map[string]string{
	apiwallet.EINVALID:      "validation",
	apiwallet.EUNAUTHORIZED: "unauthorized",
	apiwallet.EFORBIDDEN:    "forbidden",
	apiwallet.ENOTFOUND:     "not-found",
	apiwallet.ECONFLICT:     "conflict",
	apiwallet.ETOOLARGE:     "body-too-large",
	apiwallet.ERATELIMIT:    "rate-limited",
	apiwallet.EUNAVAILABLE:  "unavailable",
	apiwallet.EINTERNAL:     "internal",
}

// ErrorStatus maps err to its HTTP status.
func ErrorStatus(err error) int {
	if s, ok := codeStatus[apiwallet.ErrorCode(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
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
	if e, ok := err.(*apiwallet.Error); ok {
		p.Errors = e.Fields
	}
	return p
}

// writeError writes err as problem+json and logs internal errors.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code := apiwallet.ErrorCode(err)
	if code == apiwallet.EINTERNAL {
		log.ErrorContext(r.Context(), "internal error", "request_id", RequestID(r.Context()),
			"route", r.Pattern, "err", err)
	}
	if e, ok := err.(*apiwallet.Error); ok && e.RetryAfterSeconds > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfterSeconds))
	}
	WriteProblem(w, NewProblem(r, err))
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
