package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// User is the logged-in user.
type User struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
	Role  string `json:"role"`
}

// Session is a login: the token and when it expires.
type Session struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
	User      User      `json:"user"`
}

// Login exchanges an email and password for a login token.
func (c *Client) Login(ctx context.Context, email, password string) (*Session, error) {
	var s Session
	err := c.call(ctx, http.MethodPost, "/auth/login", nil, map[string]string{"email": email, "password": password}, &s)
	if err != nil {
		return nil, err
	}
	if s.Token == "" {
		return nil, fmt.Errorf("the wallet answered the login without a token")
	}
	return &s, nil
}

// Logout revokes the user's login tokens.
func (c *Client) Logout(ctx context.Context) error {
	return c.call(ctx, http.MethodPost, "/auth/logout", nil, nil, nil)
}

// Me is the user the token belongs to.
func (c *Client) Me(ctx context.Context) (*User, error) {
	var u User
	return &u, c.call(ctx, http.MethodGet, "/auth/me", nil, nil, &u)
}

// KeyMetadata is the seed's key metadata.
type KeyMetadata struct {
	Type        string `json:"type,omitempty"`
	Quota       *int64 `json:"quota,omitempty"`
	Description string `json:"description,omitempty"`
}

// Key is a stored upstream key as the wallet shows it: masked, never the
// secret.
type Key struct {
	ID          string      `json:"id"`
	Service     string      `json:"service"`
	Tier        string      `json:"tier"`
	Metadata    KeyMetadata `json:"metadata"`
	Label       string      `json:"label"`
	Priority    int         `json:"priority"`
	Enabled     bool        `json:"enabled"`
	Status      string      `json:"status"`
	MaskedKey   string      `json:"maskedKey"`
	Fingerprint string      `json:"fingerprint"`
	Version     int         `json:"version"`
	CreatedAt   time.Time   `json:"createdAt"`
	LastUsedAt  *time.Time  `json:"lastUsedAt"`
	RotatedAt   *time.Time  `json:"rotatedAt"`
}

// KeyCreate is a new key. Secret is sent once, in the body, and kept by
// the client no longer than the call.
type KeyCreate struct {
	Secret   string       `json:"key"`
	Service  string       `json:"service"`
	Tier     string       `json:"tier"`
	Metadata *KeyMetadata `json:"metadata,omitempty"`
	Label    string       `json:"label,omitempty"`
	Priority int          `json:"priority,omitempty"`
	Enabled  *bool        `json:"enabled,omitempty"`
}

// CreateKey stores a key.
func (c *Client) CreateKey(ctx context.Context, in KeyCreate) (*Key, error) {
	var k Key
	return &k, c.call(ctx, http.MethodPost, "/keys", nil, in, &k)
}

// KeyFilter narrows ListKeys; empty fields match everything.
type KeyFilter struct {
	Service, Tier string
	Enabled       *bool
}

// ListKeys lists every key of the workspace, page by page.
func (c *Client) ListKeys(ctx context.Context, f KeyFilter) ([]Key, error) {
	q := url.Values{"limit": {"500"}}
	if f.Service != "" {
		q.Set("service", f.Service)
	}
	if f.Tier != "" {
		q.Set("tier", f.Tier)
	}
	if f.Enabled != nil {
		q.Set("enabled", strconv.FormatBool(*f.Enabled))
	}
	var all []Key
	for {
		var page struct {
			Keys      []Key  `json:"keys"`
			NextAfter string `json:"nextAfter"`
		}
		if err := c.call(ctx, http.MethodGet, "/keys", q, nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Keys...)
		if page.NextAfter == "" || page.NextAfter == q.Get("after") {
			return all, nil
		}
		q.Set("after", page.NextAfter)
	}
}

// RotateKey replaces a key's secret, keeping its ID and settings.
func (c *Client) RotateKey(ctx context.Context, id, secret string) (*Key, error) {
	var k Key
	return &k, c.call(ctx, http.MethodPost, "/keys/"+url.PathEscape(id)+"/rotate", nil, map[string]string{"key": secret}, &k)
}

// SetKeyEnabled turns a key on or off for routing.
func (c *Client) SetKeyEnabled(ctx context.Context, id string, enabled bool) (*Key, error) {
	var k Key
	return &k, c.call(ctx, http.MethodPatch, "/keys/"+url.PathEscape(id), nil, map[string]bool{"enabled": enabled}, &k)
}

// Token is a wallet access token. Secret is set only by CreateToken.
type Token struct {
	ID                 string     `json:"id"`
	Name               string     `json:"name"`
	Secret             string     `json:"token"`
	Masked             string     `json:"masked"`
	Services           []string   `json:"services"`
	RateLimitPerMinute int        `json:"rateLimitPerMinute"`
	Status             string     `json:"status"`
	CreatedAt          time.Time  `json:"createdAt"`
	ExpiresAt          *time.Time `json:"expiresAt"`
	LastUsedAt         *time.Time `json:"lastUsedAt"`
}

// TokenCreate is a new access token.
type TokenCreate struct {
	Name               string   `json:"name"`
	Services           []string `json:"services,omitempty"`
	ExpiresAt          string   `json:"expires_at,omitempty"`
	RateLimitPerMinute *int     `json:"rate_limit_per_minute,omitempty"`
}

// CreateToken creates an access token; its secret is in the answer only.
func (c *Client) CreateToken(ctx context.Context, in TokenCreate) (*Token, error) {
	var t Token
	return &t, c.call(ctx, http.MethodPost, "/tokens", nil, in, &t)
}

// ListTokens lists every access token of the workspace, revoked ones
// included, page by page.
func (c *Client) ListTokens(ctx context.Context) ([]Token, error) {
	q := url.Values{"limit": {"499"}}
	var all []Token
	for {
		var page struct {
			Tokens    []Token `json:"tokens"`
			NextAfter string  `json:"nextAfter"`
		}
		if err := c.call(ctx, http.MethodGet, "/tokens", q, nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Tokens...)
		if page.NextAfter == "" || page.NextAfter == q.Get("after") {
			return all, nil
		}
		q.Set("after", page.NextAfter)
	}
}

// RevokeToken stops an access token at once.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, "/tokens/"+url.PathEscape(id), nil, nil, nil)
}

// UsageQuery selects a usage report; empty fields take the wallet's
// defaults (this month, by service).
type UsageQuery struct {
	From, To, GroupBy, Service, TZ string
}

func (q UsageQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"from": q.From, "to": q.To, "group_by": q.GroupBy, "service": q.Service, "tz": q.TZ} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// Figures are one row's (or the totals') numbers.
type Figures struct {
	Calls     int64 `json:"calls"`
	Successes int64 `json:"successes"`
	Errors    struct {
		Client  int64 `json:"client"`
		Server  int64 `json:"server"`
		Network int64 `json:"network"`
		Refused int64 `json:"refused"`
	} `json:"errors"`
	RateLimited int64 `json:"rateLimited"`
	LatencyMs   struct {
		P50 float64 `json:"p50"`
		P95 float64 `json:"p95"`
		P99 float64 `json:"p99"`
	} `json:"latencyMs"`
	CostMicros     int64   `json:"costMicros"`
	SavingsMicros  int64   `json:"savingsMicros"`
	SavingsPercent float64 `json:"savingsPercent"`
}

// UsageRow is one group of a usage report.
type UsageRow struct {
	Group string `json:"group"`
	Label string `json:"label"`
	Figures
}

// Usage is a usage report.
type Usage struct {
	From    time.Time  `json:"from"`
	To      time.Time  `json:"to"`
	TZ      string     `json:"tz"`
	GroupBy string     `json:"groupBy"`
	Totals  Figures    `json:"totals"`
	Rows    []UsageRow `json:"rows"`
}

// UsageJSON is the usage report exactly as the wallet sent it.
func (c *Client) UsageJSON(ctx context.Context, q UsageQuery) (json.RawMessage, error) {
	_, b, err := c.do(ctx, http.MethodGet, "/usage", q.values(), nil)
	if err != nil {
		return nil, err
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("the usage report is not JSON")
	}
	return b, nil
}

// Usage is the decoded usage report.
func (c *Client) Usage(ctx context.Context, q UsageQuery) (*Usage, error) {
	var u Usage
	return &u, c.call(ctx, http.MethodGet, "/usage", q.values(), nil, &u)
}

// Health is the wallet's health report.
type Health struct {
	Status    string `json:"status"`
	Timestamp string `json:"timestamp"`
	Services  struct {
		Database string `json:"database"`
		Redis    string `json:"redis"`
	} `json:"services"`
}

// Health reads /monitoring/health. An unhealthy wallet answers 503 with
// the same report, which is returned without an error: the report says
// what is wrong.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var h Health
	_, b, err := c.do(ctx, http.MethodGet, "/monitoring/health", nil, nil)
	if err != nil && StatusOf(err) != http.StatusServiceUnavailable {
		return nil, err
	}
	if jerr := json.Unmarshal(b, &h); jerr != nil || h.Status == "" {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("the health report is not the JSON expected")
	}
	return &h, nil
}
