package catalog

import (
	"encoding/base64"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/apikeywallet/apiwallet"
)

// AuthKind says how a stored key reaches the upstream.
type AuthKind string

// Auth kinds.
const (
	AuthBearer AuthKind = "bearer" // Authorization: Bearer <key>
	AuthBasic  AuthKind = "basic"  // Authorization: Basic, key as user, empty password
	AuthHeader AuthKind = "header" // <Name>: <key>, e.g. x-api-key
	AuthQuery  AuthKind = "query"  // ?<Name>=<key>, e.g. appid or key
)

// AuthScheme is how a service takes its key.
type AuthScheme struct {
	Kind AuthKind `json:"kind"`
	// Name is the header (AuthHeader) or query parameter (AuthQuery) that
	// carries the key; empty for AuthBearer and AuthBasic.
	Name string `json:"name,omitempty"`
}

// ErrorShape names the error body a service's own SDKs know how to read.
type ErrorShape string

// Error shapes.
const (
	ShapeNone      ErrorShape = ""          // problem+json only
	ShapeStripe    ErrorShape = "stripe"    // {"error":{"type","code","message"}}
	ShapeOpenAI    ErrorShape = "openai"    // {"error":{"type","code","message"}}
	ShapeAnthropic ErrorShape = "anthropic" // {"type":"error","error":{"type","message"}}
)

// Free-tier quota periods.
const (
	PeriodHour  = "hour"
	PeriodDay   = "day"
	PeriodMonth = "month"
)

// MaxNameLen bounds a service slug: it must fit one DNS label, because a
// Host of the form <service>.<wallet host> selects the service.
const MaxNameLen = 63

// Service is one upstream API. A Service returned by the Catalog is shared:
// treat Headers and KeyPrefixes as read-only.
type Service struct {
	// Name is the slug used in /proxy/{service}/ and in
	// <SERVICE>_BASE_URL / <SERVICE>_FALLBACK_KEY (with '-' written '_').
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
	// BaseURL is scheme, host and optional path prefix, with no trailing
	// slash, no credentials, no query and no fragment.
	BaseURL string     `json:"baseUrl"`
	Auth    AuthScheme `json:"auth"`
	// Headers are sent on every call unless the client sent the header
	// itself (e.g. anthropic-version). Keys are in canonical form.
	Headers map[string]string `json:"headers,omitempty"`
	// PriceMicros is the cost of one call made with a paid key, in
	// micro-dollars; it drives cost routing and savings.
	PriceMicros int64 `json:"priceMicros"`
	// FreeQuota is how many calls a free-tier key may make per FreePeriod
	// (0: the service has no free tier).
	FreeQuota  int64      `json:"freeQuota"`
	FreePeriod string     `json:"freePeriod,omitempty"`
	ErrorShape ErrorShape `json:"errorShape,omitempty"`
	// KeyPrefixes are the usual prefixes of this service's keys, e.g.
	// "sk_live_"; informational (hints and warnings), never enforced.
	KeyPrefixes []string `json:"keyPrefixes,omitempty"`
	// BaseURLFromEnv reports that BaseURL comes from <SERVICE>_BASE_URL and
	// overrides what admins configured. Put and Load ignore it.
	BaseURLFromEnv bool `json:"baseUrlFromEnv,omitempty"`

	base *url.URL // parsed BaseURL, set by normalize
}

// URL returns the parsed BaseURL. It is shared: do not modify it, copy it
// (u := *s.URL()) to build a request URL.
func (s *Service) URL() *url.URL {
	if s.base != nil {
		return s.base
	}
	u, err := url.Parse(s.BaseURL)
	if err != nil {
		return &url.URL{}
	}
	return u
}

// EnvName is the service's name as it appears in environment variables:
// upper case, '-' written '_' (STRIPE, MY_API).
func (s *Service) EnvName() string {
	return strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
}

// Validate reports every invalid field of s as one EINVALID *apiwallet.Error.
func (s *Service) Validate() error {
	_, err := s.normalized()
	return err
}

// normalized returns a deep copy of s in canonical form (trimmed base URL,
// canonical header keys, default display name and period), or the fields
// that are invalid.
func (s *Service) normalized() (Service, error) {
	var v apiwallet.ValidationError
	n := *s
	n.BaseURLFromEnv = false
	n.base = nil

	if !validName(n.Name) {
		v.Add("name", fmt.Sprintf("must be a slug of at most %d lower-case letters, digits and '-', starting with a letter", MaxNameLen))
	}
	n.DisplayName = strings.TrimSpace(n.DisplayName)
	if n.DisplayName == "" {
		n.DisplayName = n.Name
	}
	if len(n.DisplayName) > 100 || strings.ContainsFunc(n.DisplayName, isControl) {
		v.Add("displayName", "must be at most 100 characters without control characters")
	}
	if u, err := parseBaseURL(n.BaseURL); err != nil {
		v.Add("baseUrl", err.Error())
	} else {
		n.BaseURL, n.base = u.String(), u
	}

	n.Auth.Name = strings.TrimSpace(n.Auth.Name)
	switch n.Auth.Kind {
	case AuthBearer, AuthBasic:
		if n.Auth.Name != "" {
			v.Add("auth.name", "must be empty for bearer and basic (they use Authorization)")
		}
	case AuthHeader:
		if !validToken(n.Auth.Name) {
			v.Add("auth.name", "must be a header name such as x-api-key")
		} else if reservedHeader(n.Auth.Name) {
			v.Add("auth.name", "cannot be a hop-by-hop, framing or wallet header")
		}
	case AuthQuery:
		if n.Auth.Name == "" || url.QueryEscape(n.Auth.Name) != n.Auth.Name {
			v.Add("auth.name", "must be a query parameter name such as appid or key")
		}
	default:
		v.Add("auth.kind", "must be one of bearer, basic, header, query")
	}

	if len(s.Headers) > 0 {
		n.Headers = make(map[string]string, len(s.Headers))
		for _, k := range slices.Sorted(maps.Keys(s.Headers)) {
			val := s.Headers[k]
			ck := http.CanonicalHeaderKey(strings.TrimSpace(k))
			switch {
			case !validToken(ck):
				v.Add("headers."+k, "is not a valid header name")
			case reservedHeader(ck) || strings.EqualFold(ck, "Authorization") ||
				(n.Auth.Kind == AuthHeader && strings.EqualFold(ck, n.Auth.Name)):
				v.Add("headers."+k, "cannot be set: it carries the key or is a hop-by-hop, framing or wallet header")
			case strings.ContainsFunc(val, func(r rune) bool { return r != '\t' && isControl(r) }):
				v.Add("headers."+k, "value must not contain control characters")
			default:
				if _, dup := n.Headers[ck]; dup {
					v.Add("headers."+k, "is given twice")
				}
				n.Headers[ck] = strings.TrimSpace(val)
			}
		}
	} else {
		n.Headers = nil
	}

	if n.PriceMicros < 0 {
		v.Add("priceMicros", "must not be negative")
	}
	if n.FreeQuota < 0 {
		v.Add("freeQuota", "must not be negative")
	}
	switch n.FreePeriod {
	case PeriodHour, PeriodDay, PeriodMonth:
	case "":
		if n.FreeQuota > 0 {
			n.FreePeriod = PeriodMonth
		}
	default:
		v.Add("freePeriod", "must be one of hour, day, month")
	}
	switch n.ErrorShape {
	case ShapeNone, ShapeStripe, ShapeOpenAI, ShapeAnthropic:
	default:
		v.Add("errorShape", "must be one of stripe, openai, anthropic or empty")
	}
	n.KeyPrefixes = nil
	for i, p := range s.KeyPrefixes {
		if p == "" || len(p) > 32 || strings.ContainsFunc(p, isControl) {
			v.Add(fmt.Sprintf("keyPrefixes[%d]", i), "must be 1 to 32 printable characters")
			continue
		}
		n.KeyPrefixes = append(n.KeyPrefixes, p)
	}
	if err := v.Err(); err != nil {
		return Service{}, err
	}
	return n, nil
}

// parseBaseURL accepts an absolute http(s) URL with a host and no
// credentials, query or fragment, and drops a trailing slash.
func parseBaseURL(raw string) (*url.URL, error) {
	raw = strings.TrimRight(strings.TrimSpace(raw), "/")
	u, err := url.Parse(raw)
	switch {
	case err != nil || raw == "":
		return nil, fmt.Errorf("must be an absolute http or https URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("must use http or https")
	case u.Opaque != "" || u.Hostname() == "":
		return nil, fmt.Errorf("must name a host")
	case u.User != nil:
		return nil, fmt.Errorf("must not contain credentials")
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("must not contain a query")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, fmt.Errorf("must not contain a fragment")
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return nil, fmt.Errorf("must not contain dot segments")
		}
	}
	return u, nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen || s[0] < 'a' || s[0] > 'z' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validToken reports whether s is an RFC 9110 token (a valid header name).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// reservedHeader reports headers a catalog entry must not set: hop-by-hop
// and framing headers, which the proxy owns, and the wallet's own.
func reservedHeader(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Host", "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization",
		"Proxy-Authenticate", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Content-Length", "Cookie":
		return true
	}
	return len(name) >= 9 && strings.EqualFold(name[:9], "x-wallet-")
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// Inject puts key into req the way the service takes it, replacing any
// credential of the same kind the client sent, and adds the service's
// Headers the client did not send. Bearer sets Authorization: Bearer;
// basic sends the key as user with an empty password (a key that already
// has the form user:password is sent as such); header sets Auth.Name;
// query sets the Auth.Name parameter, dropping every client-sent one
// (also in escaped spellings) and keeping the rest of the query as sent.
//
// Inject does not strip the client's other credentials (Authorization for
// a query service, Cookie, X-Api-Key): the proxy does that first.
func (s *Service) Inject(req *http.Request, key string) {
	switch s.Auth.Kind {
	case AuthBearer:
		req.Header.Set("Authorization", "Bearer "+key)
	case AuthBasic:
		userpass := key
		if !strings.Contains(key, ":") {
			userpass = key + ":"
		}
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(userpass)))
	case AuthHeader:
		req.Header.Set(s.Auth.Name, key)
	case AuthQuery:
		req.URL.RawQuery = setQueryParam(req.URL.RawQuery, s.Auth.Name, key)
		req.URL.ForceQuery = false
	}
	for k, v := range s.Headers {
		if _, sent := req.Header[k]; !sent {
			req.Header[k] = []string{v}
		}
	}
}

// setQueryParam returns rawQuery without any name parameter (compared
// after unescaping, so "app%69d" counts as "appid") and with name=value
// appended; the other parameters keep their order and spelling.
func setQueryParam(rawQuery, name, value string) string {
	var b strings.Builder
	b.Grow(len(rawQuery) + len(name) + len(value) + 8)
	for rest := rawQuery; rest != ""; {
		var part string
		part, rest, _ = strings.Cut(rest, "&")
		if part == "" {
			continue
		}
		k, _, _ := strings.Cut(part, "=")
		if uk, err := url.QueryUnescape(k); k == name || (err == nil && uk == name) || (err != nil && strings.Contains(k, "%")) {
			// A parameter name that does not unescape cleanly could be read
			// as name by a lenient upstream: drop it too.
			continue
		}
		b.WriteString(part)
		b.WriteByte('&')
	}
	b.WriteString(url.QueryEscape(name))
	b.WriteByte('=')
	b.WriteString(url.QueryEscape(value))
	return b.String()
}

// ErrorMember is the error object a service's SDKs read from an error
// response body: {"type","code","message"} for Stripe and OpenAI,
// {"type","message"} for Anthropic.
type ErrorMember struct {
	Type    string `json:"type"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
}

// NativeError is a whole error body in a service's own shape. Type is
// "error" for Anthropic and empty (omitted) otherwise.
type NativeError struct {
	Type  string      `json:"type,omitempty"`
	Error ErrorMember `json:"error"`
}

// ErrorBody returns the error body the service's own SDKs read for a
// wallet refusal with the given HTTP status, machine code (e.g.
// "rate_limit", "invalid_api_key") and public message: a *NativeError, or
// nil when the service has no known shape. The error type is chosen from
// the status the way the upstream itself does (Stripe: api_error for 5xx,
// invalid_request_error otherwise; OpenAI and Anthropic: authentication,
// permission, rate-limit, server errors...).
//
// To serve it inside a problem+json body, add its Error as the "error"
// extension member (see ErrorMember): the SDKs read only that member, and
// Anthropic's top-level "type":"error" would clash with problem "type".
func (s *Service) ErrorBody(status int, code, message string) any {
	m, ok := s.ErrorMember(status, code, message)
	if !ok {
		return nil
	}
	b := &NativeError{Error: m}
	if s.ErrorShape == ShapeAnthropic {
		b.Type = "error"
	}
	return b
}

// ErrorMember returns the "error" member of ErrorBody, and false when the
// service has no known error shape.
func (s *Service) ErrorMember(status int, code, message string) (ErrorMember, bool) {
	switch s.ErrorShape {
	case ShapeStripe:
		t := "invalid_request_error"
		if status >= 500 {
			t = "api_error"
		}
		return ErrorMember{Type: t, Code: code, Message: message}, true
	case ShapeOpenAI:
		return ErrorMember{Type: openAIErrorType(status), Code: code, Message: message}, true
	case ShapeAnthropic:
		return ErrorMember{Type: anthropicErrorType(status), Message: message}, true
	}
	return ErrorMember{}, false
}

func openAIErrorType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

func anthropicErrorType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusPaymentRequired:
		return "billing_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusNotFound:
		return "not_found_error"
	case status == http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status == http.StatusServiceUnavailable || status == 529:
		return "overloaded_error"
	case status >= 500:
		return "api_error"
	}
	return "invalid_request_error"
}
