// Package config reads the wallet's configuration from the environment once,
// at start-up, and reports every problem at once.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apikeywallet/apiwallet/internal/redisconn"
	"github.com/apikeywallet/apiwallet/internal/vault"
)

// Config is the wallet's whole configuration.
type Config struct {
	Production  bool
	Host        string // HOST: the interface to listen on; empty means all
	Port        int
	DataDir     string
	DatabaseURL string // empty: SQLite under DataDir
	RedisURL    string // empty: in-process limits and caches
	GatewayURL  string

	// DatabaseReadURL is a PostgreSQL read replica of DatabaseURL that
	// serves the usage analytics (empty: DatabaseURL serves them).
	DatabaseReadURL string

	JWTSecret    []byte
	JWTExpiresIn time.Duration
	JWTIssuer    string
	JWTAudience  string
	// EncryptionKey is ENCRYPTION_KEY as given; vault.ParseRootKey decodes it.
	EncryptionKey string

	MaxRequestsPerMinute int
	DefaultFreeQuota     int
	EnableMetrics        bool
	LogLevel             slog.Level
	MaxBodyBytes         int64
	// MaxKeysPerWorkspace and MaxTokensPerWorkspace (MAX_KEYS_PER_WORKSPACE,
	// MAX_TOKENS_PER_WORKSPACE) cap what one workspace may store, so that
	// no tenant can grow the key cache every instance holds, or the token
	// table, without bound. Revoked tokens do not count.
	MaxKeysPerWorkspace   int
	MaxTokensPerWorkspace int
	// TrustedProxies (TRUSTED_PROXIES) are the peers whose X-Forwarded-For
	// and X-Forwarded-Proto count: the load balancers in front of the
	// wallet. From any other peer those headers are ignored, since a client
	// can send them too.
	TrustedProxies []netip.Prefix
	// TLSCertFile and TLSKeyFile (TLS_CERT_FILE, TLS_KEY_FILE) make the
	// port serve HTTPS, with HTTP/2; the pair is reloaded when the files
	// change.
	TLSCertFile string
	TLSKeyFile  string
	// H2C (H2C=true) serves unencrypted HTTP/2 beside HTTP/1.1, for a
	// TLS-terminating proxy in front that speaks HTTP/2 to the wallet.
	H2C bool
	// ReadTimeout (READ_TIMEOUT, default 60s) bounds reading a request's
	// body, from the end of its header.
	ReadTimeout time.Duration
	// WriteTimeout (WRITE_TIMEOUT, default 30s) bounds writing an answer
	// from the end of the request's header; a streamed answer extends it
	// as bytes flow, so only a stalled one is cut.
	WriteTimeout time.Duration
	// UpstreamTimeout (UPSTREAM_TIMEOUT, default 60s) bounds the wait for
	// an upstream's response headers; the attempt then counts as failed
	// and the call falls back to another key. A streamed body is bounded
	// by the stream's idle time instead.
	UpstreamTimeout time.Duration
	ShutdownTimeout time.Duration
	// PprofAddr, when set (PPROF_ADDR, e.g. 127.0.0.1:6060), serves
	// net/http/pprof there for profiling; never on the public port.
	PprofAddr string
	// Instances is how many wallet processes share one Redis: when Redis is
	// unreachable each enforces its share of every limit.
	Instances int

	StripeWebhookSecret string
	// StripeSecretKey (STRIPE_SECRET_KEY) lets workspaces subscribe
	// through Stripe Checkout; without it admins change plans.
	StripeSecretKey string
	// StripeAPIBaseURL (STRIPE_API_BASE_URL) replaces
	// https://api.stripe.com, e.g. with stripe-mock.
	StripeAPIBaseURL string
	// StripePrices maps a plan id to its Stripe price id
	// (STRIPE_PRICE_<PLAN>, e.g. STRIPE_PRICE_PROFESSIONAL=price_…).
	StripePrices map[string]string
	// StripeSuccessURL and StripeCancelURL are where Checkout sends the
	// customer back (default: GATEWAY_URL, or http://localhost:PORT).
	StripeSuccessURL string
	StripeCancelURL  string
	// AlertWebhookAllowPrivate lets alert webhooks reach loopback and
	// private addresses (ALERT_WEBHOOK_ALLOW_PRIVATE; off: SSRF).
	AlertWebhookAllowPrivate bool
	// AlertEvalInterval is how often each instance looks for quota
	// crossings (ALERT_EVAL_INTERVAL, default 30s).
	AlertEvalInterval time.Duration
	// FallbackKeys maps a service name (lower case) to <SERVICE>_FALLBACK_KEY.
	FallbackKeys map[string]string
	// BaseURLs maps a service name (lower case) to <SERVICE>_BASE_URL.
	BaseURLs map[string]string

	// GeneratedSecrets is set when the secrets came from DataDir, not the
	// environment.
	GeneratedSecrets bool
}

// Problems lists every configuration error found; its Error joins them one
// per line so the operator sees all of them in one start.
type Problems []string

func (p Problems) Error() string {
	return "invalid configuration:\n  - " + strings.Join(p, "\n  - ")
}

// Load reads the configuration from environ (as os.Environ returns it).
// Secrets missing outside production are not an error: LoadSecrets fills
// them in afterwards.
func Load(environ []string) (*Config, error) {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	var probs Problems
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	readSecretFiles(env, bad)

	mode := strings.ToLower(firstNonEmpty(env["APP_ENV"], env["NODE_ENV"], "development"))
	c := &Config{
		Production:   mode == "production",
		DataDir:      firstNonEmpty(env["APIWALLET_DATA_DIR"], "data"),
		DatabaseURL:  env["DATABASE_URL"],
		RedisURL:     env["REDIS_URL"],
		GatewayURL:   strings.TrimRight(env["GATEWAY_URL"], "/"),
		JWTAudience:  firstNonEmpty(env["JWT_AUDIENCE"], "apiwallet"),
		FallbackKeys: map[string]string{},
		BaseURLs:     map[string]string{},

		StripeWebhookSecret: env["STRIPE_WEBHOOK_SECRET"],
		StripeSecretKey:     env["STRIPE_SECRET_KEY"],
		StripeAPIBaseURL:    strings.TrimRight(env["STRIPE_API_BASE_URL"], "/"),
		StripePrices:        map[string]string{},
		EncryptionKey:       env["ENCRYPTION_KEY"],
	}
	c.Host = env["HOST"]
	c.PprofAddr = env["PPROF_ADDR"]
	c.Port = intVar(env, "PORT", 6789, 0, 65535, bad)
	c.Instances = intVar(env, "APIWALLET_INSTANCES", 1, 1, 1000, bad)
	c.MaxRequestsPerMinute = intVar(env, "MAX_REQUESTS_PER_MINUTE", 1000, 1, 1<<30, bad)
	c.DefaultFreeQuota = intVar(env, "DEFAULT_FREE_QUOTA", 1000, 0, 1<<40, bad)
	c.MaxKeysPerWorkspace = intVar(env, "MAX_KEYS_PER_WORKSPACE", 10_000, 1, 10_000_000, bad)
	c.MaxTokensPerWorkspace = intVar(env, "MAX_TOKENS_PER_WORKSPACE", 1_000, 1, 10_000_000, bad)
	c.MaxBodyBytes = int64(intVar(env, "MAX_BODY_BYTES", 1<<20, 1<<10, 1<<30, bad))
	c.EnableMetrics = boolVar(env, "ENABLE_METRICS", false, bad)
	if _, ok := env["TRUST_PROXY_HEADERS"]; ok {
		bad("TRUST_PROXY_HEADERS is no longer read: set TRUSTED_PROXIES to the addresses or CIDRs of the proxies in front of the wallet (e.g. TRUSTED_PROXIES=10.0.0.0/8)")
	}
	c.TrustedProxies = prefixesVar(env, "TRUSTED_PROXIES", bad)
	c.TLSCertFile, c.TLSKeyFile = env["TLS_CERT_FILE"], env["TLS_KEY_FILE"]
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("TLS_CERT_FILE and TLS_KEY_FILE go together: set both to serve HTTPS, or neither")
	}
	c.H2C = boolVar(env, "H2C", false, bad)
	if c.H2C && c.TLSCertFile != "" {
		bad("H2C is for plain HTTP behind a TLS-terminating proxy; with TLS_CERT_FILE the port speaks HTTP/2 over TLS already: unset one of them")
	}
	c.ReadTimeout = durationVar(env, "READ_TIMEOUT", 60*time.Second, bad)
	c.WriteTimeout = durationVar(env, "WRITE_TIMEOUT", 30*time.Second, bad)
	c.UpstreamTimeout = durationVar(env, "UPSTREAM_TIMEOUT", 60*time.Second, bad)
	c.JWTExpiresIn = durationVar(env, "JWT_EXPIRES_IN", 24*time.Hour, bad)
	c.ShutdownTimeout = durationVar(env, "SHUTDOWN_TIMEOUT", 30*time.Second, bad)
	c.JWTIssuer = firstNonEmpty(env["JWT_ISSUER"], c.GatewayURL, "apiwallet")
	c.AlertWebhookAllowPrivate = boolVar(env, "ALERT_WEBHOOK_ALLOW_PRIVATE", false, bad)
	c.AlertEvalInterval = durationVar(env, "ALERT_EVAL_INTERVAL", 30*time.Second, bad)
	home := firstNonEmpty(c.GatewayURL, "http://localhost:"+strconv.Itoa(c.Port))
	c.StripeSuccessURL = firstNonEmpty(env["STRIPE_SUCCESS_URL"], home+"/?checkout=success&session_id={CHECKOUT_SESSION_ID}")
	c.StripeCancelURL = firstNonEmpty(env["STRIPE_CANCEL_URL"], home+"/?checkout=cancelled")
	for _, k := range []string{"STRIPE_API_BASE_URL", "STRIPE_SUCCESS_URL", "STRIPE_CANCEL_URL"} {
		if v := env[k]; v != "" {
			if u, err := url.Parse(v); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
				bad("%s must be an absolute http(s) URL", k)
			}
		}
	}

	switch strings.ToLower(firstNonEmpty(env["LOG_LEVEL"], "info")) {
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "info":
		c.LogLevel = slog.LevelInfo
	case "warn", "warning":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		bad("LOG_LEVEL must be one of debug, info, warn, error (got %q)", env["LOG_LEVEL"])
	}
	if c.DatabaseURL != "" && !strings.Contains(c.DatabaseURL, "://") && !strings.HasPrefix(c.DatabaseURL, "file:") {
		// A bare path is a SQLite file; anything with a scheme must be one we know.
	} else if c.DatabaseURL != "" {
		u, err := url.Parse(c.DatabaseURL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql" && u.Scheme != "sqlite" && u.Scheme != "file") {
			bad("DATABASE_URL must be a postgres:// or postgresql:// URL, or a SQLite file path")
		}
	}
	c.DatabaseReadURL = env["DATABASE_READ_URL"]
	if c.DatabaseReadURL != "" {
		u, err := url.Parse(c.DatabaseReadURL)
		switch {
		case err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql"):
			bad("DATABASE_READ_URL must be a postgres:// or postgresql:// URL (a read replica of DATABASE_URL)")
		case !isPostgresURL(c.DatabaseURL):
			bad("DATABASE_READ_URL is a read replica of DATABASE_URL, which must then be a PostgreSQL URL as well")
		}
	}
	if c.RedisURL != "" {
		if _, err := redisconn.Parse(c.RedisURL); err != nil {
			bad("REDIS_URL: %v (want redis://host:port/db, redis+cluster://host:port,host:port or redis+sentinel://host:port,host:port/master/db)", err)
		}
	}
	if c.GatewayURL != "" {
		if u, err := url.Parse(c.GatewayURL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			bad("GATEWAY_URL must be an absolute http(s) URL such as https://wallet.example.com")
		}
	}

	if s, ok := env["JWT_SECRET"]; ok && s != "" {
		if len(s) < 32 {
			bad("JWT_SECRET is %d characters long; it must be at least 32", len(s))
		}
		c.JWTSecret = []byte(s)
	} else if c.Production {
		bad("JWT_SECRET is not set; production mode requires it (at least 32 characters)")
	}
	if c.EncryptionKey == "" && c.Production {
		bad("ENCRYPTION_KEY is not set; production mode requires it (32 bytes, or 64 hex characters, or 44 base64 characters)")
	} else if c.EncryptionKey != "" {
		if _, err := vault.ParseRootKey(c.EncryptionKey); err != nil {
			bad("ENCRYPTION_KEY: %v", err)
		}
	}

	for k, v := range env {
		if plan, ok := strings.CutPrefix(k, "STRIPE_PRICE_"); ok && plan != "" && v != "" {
			c.StripePrices[strings.ReplaceAll(strings.ToLower(plan), "_", "-")] = v
		}
		if svc, ok := strings.CutSuffix(k, "_FALLBACK_KEY"); ok && svc != "" && v != "" {
			c.FallbackKeys[strings.ToLower(svc)] = v
		}
		if svc, ok := strings.CutSuffix(k, "_BASE_URL"); ok && svc != "" && v != "" && k != "STRIPE_API_BASE_URL" {
			u, err := url.Parse(v)
			if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil {
				bad("%s must be an absolute http(s) URL without credentials", k)
				continue
			}
			c.BaseURLs[strings.ToLower(svc)] = strings.TrimRight(v, "/")
		}
	}
	if len(probs) > 0 {
		sort.Strings(probs)
		return nil, probs
	}
	return c, nil
}

// fileSecrets are the variables that may instead name a file holding the
// value in VAR_FILE, as Docker and Kubernetes secrets are mounted: the
// secret then stays out of the environment, which /proc and `docker
// inspect` show.
var fileSecrets = []string{"JWT_SECRET", "ENCRYPTION_KEY", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"}

// readSecretFiles replaces each VAR_FILE in env with VAR read from that
// file, less the line ending editors and `echo` leave. Errors name the
// variable and the path, never what the file holds.
func readSecretFiles(env map[string]string, bad func(string, ...any)) {
	for _, name := range fileSecrets {
		path := env[name+"_FILE"]
		if path == "" {
			continue
		}
		if env[name] != "" {
			bad("%s and %s_FILE are both set: set one of them", name, name)
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the path is named once, below
			}
			bad("%s_FILE: cannot read %s: %v", name, path, err)
			continue
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			bad("%s_FILE: %s is empty", name, path)
			continue
		}
		env[name] = v
	}
}

// secretsFile is what LoadSecrets keeps under DataDir.
type secretsFile struct {
	JWTSecret     string `json:"jwtSecret"`
	EncryptionKey string `json:"encryptionKey"`
}

// LoadSecrets fills in JWT_SECRET and ENCRYPTION_KEY outside production when
// they are not set: it reads them from DataDir/secrets.json, or generates
// them there (mode 0600) on first start, so that a new wallet works with no
// configuration and keeps working across restarts.
func (c *Config) LoadSecrets(log *slog.Logger) error {
	if len(c.JWTSecret) > 0 && c.EncryptionKey != "" {
		return nil
	}
	if c.Production {
		return errors.New("production mode requires JWT_SECRET and ENCRYPTION_KEY")
	}
	path := filepath.Join(c.DataDir, "secrets.json")
	var s secretsFile
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &s); err != nil || len(s.JWTSecret) < 32 || len(s.EncryptionKey) != 64 {
			return fmt.Errorf("%s is damaged; restore it or remove it (removing it makes stored keys unreadable)", path)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("secrets file is readable by others; run chmod 600", "path", path)
		}
	case errors.Is(err, os.ErrNotExist):
		s = secretsFile{JWTSecret: randomHex(32), EncryptionKey: randomHex(32)}
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			return err
		}
		b, _ := json.MarshalIndent(s, "", "  ")
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("write generated secrets: %w", err)
		}
		if _, err := f.Write(append(b, '\n')); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		log.Warn("generated JWT_SECRET and ENCRYPTION_KEY for development; back this file up, "+
			"and set both variables explicitly in production", "path", path)
	default:
		return err
	}
	if len(c.JWTSecret) == 0 {
		c.JWTSecret = []byte(s.JWTSecret)
	}
	if c.EncryptionKey == "" {
		c.EncryptionKey = s.EncryptionKey
	}
	c.GeneratedSecrets = true
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func intVar(env map[string]string, name string, def, min, max int, bad func(string, ...any)) int {
	s, ok := env[name]
	if !ok || s == "" {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < min || n > max {
		bad("%s must be a whole number from %d to %d (got %q)", name, min, max, s)
		return def
	}
	return n
}

func boolVar(env map[string]string, name string, def bool, bad func(string, ...any)) bool {
	s, ok := env[name]
	if !ok || s == "" {
		return def
	}
	v, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		bad("%s must be true or false (got %q)", name, s)
		return def
	}
	return v
}

// prefixesVar reads a comma-separated list of CIDRs and single addresses
// (taken as /32 or /128).
func prefixesVar(env map[string]string, name string, bad func(string, ...any)) []netip.Prefix {
	var out []netip.Prefix
	for _, f := range strings.Split(env[name], ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(f); err == nil && a.Zone() == "" {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		bad("%s must list IP addresses or CIDRs separated by commas, such as 10.0.0.0/8,192.0.2.7 (got %q)", name, f)
	}
	return out
}

// durationVar accepts Go durations ("90m", "24h") and the seed's day form
// ("7d").
func durationVar(env map[string]string, name string, def time.Duration, bad func(string, ...any)) time.Duration {
	s := strings.TrimSpace(env[name])
	if s == "" {
		return def
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 {
			return time.Duration(n) * 24 * time.Hour
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		bad("%s must be a positive duration such as 24h, 90m or 7d (got %q)", name, s)
		return def
	}
	return d
}

// isPostgresURL reports whether a DATABASE_URL names PostgreSQL.
func isPostgresURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql")
}
