// Package client is a small typed client for the wallet's HTTP API, as
// the apiwallet command line uses it: every call has a timeout, responses
// are read up to a bound, and problem+json answers become an *Error that
// reads like "403 forbidden: wallet access tokens can only call the proxy".
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultTimeout bounds each call, from connecting to the last byte read.
const DefaultTimeout = 30 * time.Second

// MaxResponseBytes bounds how much of a response is read: the largest
// answer, an hourly usage report over a month, is well under it.
const MaxResponseBytes = 8 << 20

// Client calls one wallet.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
	// UserAgent is sent with every call.
	UserAgent string
}

// New returns a client of the wallet at baseURL (http or https), sending
// token, if not empty, as its bearer credential.
func New(baseURL, token string) (*Client, error) {
	u, err := ParseURL(baseURL)
	if err != nil {
		return nil, err
	}
	return &Client{base: u, token: token, http: &http.Client{Timeout: DefaultTimeout}, UserAgent: "apiwallet-cli"}, nil
}

// ParseURL checks that s is an absolute http or https URL with a host and
// returns it without a trailing slash, query or fragment.
func ParseURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("wallet URL %q: want http://host:port or https://host", s)
	}
	if u.User != nil {
		return nil, fmt.Errorf("wallet URL: credentials do not belong in the URL")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawQuery, u.Fragment, u.RawPath = "", "", ""
	return u, nil
}

// URL is the wallet's base URL.
func (c *Client) URL() string { return c.base.String() }

// SetTimeout changes the per-call timeout.
func (c *Client) SetTimeout(d time.Duration) { c.http.Timeout = d }

// Error is a problem answer of the wallet (RFC 9457), or any other non-2xx
// answer.
type Error struct {
	Status    int          `json:"status"`
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Detail    string       `json:"detail"`
	Code      string       `json:"code"`
	RequestID string       `json:"requestId"`
	Fields    []FieldError `json:"errors"`
}

// FieldError names one bad field of a request.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// Error is the status, its reason in lower case, the detail and one line
// per bad field.
func (e *Error) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d %s", e.Status, strings.ToLower(http.StatusText(e.Status)))
	if e.Detail != "" {
		sb.WriteString(": " + e.Detail)
	} else if e.Title != "" && !strings.EqualFold(e.Title, http.StatusText(e.Status)) {
		sb.WriteString(": " + e.Title)
	}
	for _, f := range e.Fields {
		fmt.Fprintf(&sb, "\n  %s %s", f.Field, f.Detail)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&sb, "\n  (request %s)", e.RequestID)
	}
	return sb.String()
}

// StatusOf is err's HTTP status if it is an *Error, else 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// do sends a request with in (if not nil) as its JSON body and returns the
// status and the body of a 2xx answer; any other answer is an *Error.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in any) (int, []byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, nil, err
		}
		body = bytes.NewReader(b)
	}
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("User-Agent", c.UserAgent)
	res, err := c.http.Do(req)
	if err != nil {
		// The URL error names the method and URL, which carry no secret.
		return 0, nil, fmt.Errorf("cannot reach the wallet at %s: %w", c.base, unwrapURLError(err))
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, MaxResponseBytes+1))
	if err != nil {
		return res.StatusCode, nil, fmt.Errorf("reading the answer to %s %s: %w", method, path, err)
	}
	if len(b) > MaxResponseBytes {
		return res.StatusCode, nil, fmt.Errorf("the answer to %s %s is larger than %d bytes", method, path, MaxResponseBytes)
	}
	if res.StatusCode/100 != 2 {
		return res.StatusCode, b, problem(res, b)
	}
	return res.StatusCode, b, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// problem decodes a non-2xx answer. A body that is not problem+json (a
// proxy in front of the wallet, say) is summarised by its status only.
func problem(res *http.Response, b []byte) error {
	e := &Error{Status: res.StatusCode}
	ct, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if ct == "application/problem+json" || ct == "application/json" {
		_ = json.Unmarshal(b, e)
		e.Status = res.StatusCode
	}
	if e.RequestID == "" {
		e.RequestID = res.Header.Get("X-Request-Id")
	}
	return e
}

// call is do that decodes a 2xx body into out (if not nil).
func (c *Client) call(ctx context.Context, method, path string, query url.Values, in, out any) error {
	_, b, err := c.do(ctx, method, path, query, in)
	if err != nil {
		return err
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("the answer to %s %s is not the JSON expected: %w", method, path, err)
	}
	return nil
}
