// Package wallet wires the wallet's services (vault, auth, catalog, proxy,
// metering, billing, alerts, teams, accounts) into its HTTP API. The binary
// and the API tests both build the wallet here, so what the tests exercise
// is what runs.
package wallet

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apikeywallet/apiwallet/internal/account"
	"github.com/apikeywallet/apiwallet/internal/alerts"
	"github.com/apikeywallet/apiwallet/internal/api"
	"github.com/apikeywallet/apiwallet/internal/auth"
	"github.com/apikeywallet/apiwallet/internal/billing"
	"github.com/apikeywallet/apiwallet/internal/catalog"
	"github.com/apikeywallet/apiwallet/internal/config"
	"github.com/apikeywallet/apiwallet/internal/metering"
	"github.com/apikeywallet/apiwallet/internal/proxy"
	"github.com/apikeywallet/apiwallet/internal/quota"
	"github.com/apikeywallet/apiwallet/internal/ratelimit"
	"github.com/apikeywallet/apiwallet/internal/routing"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
	"github.com/apikeywallet/apiwallet/internal/stripebilling"
	"github.com/apikeywallet/apiwallet/internal/team"
	"github.com/apikeywallet/apiwallet/internal/vault"
	"github.com/apikeywallet/apiwallet/internal/web"
)

// Deps are what a wallet is built on.
type Deps struct {
	Config *config.Config
	DB     *sqldb.DB // migrated
	Log    *slog.Logger
	// Limiter and Quota count rate limits and monthly plan quotas; nil
	// means in this process only (a single instance).
	Limiter ratelimit.Limiter
	Quota   quota.Counter
	// ReadDB, when set, is a read replica of DB (DATABASE_READ_URL) that
	// serves the usage analytics: /usage and its reports and the business
	// report's figures. They may lag DB by the replica's replay delay;
	// everything that writes, or reads back what it wrote, uses DB.
	ReadDB *sqldb.DB
	// Redis, when set, is reported by the health check.
	Redis api.Pinger
	// Metering and Alerts tune the background writers (tests shorten
	// their intervals); AllowPrivate always comes from the configuration.
	Metering metering.Options
	Alerts   alerts.Options
	// Transport makes the proxy's upstream calls; nil means
	// proxy.NewTransport.
	Transport http.RoundTripper
}

// Wallet is a wired wallet. Close it after its HTTP server has stopped.
type Wallet struct {
	Handler  http.Handler
	Auth     *auth.Service
	Keys     *vault.Service
	Catalog  *catalog.Catalog
	Proxy    *proxy.Proxy
	Recorder *metering.Recorder
	Billing  *billing.Service
	Alerts   *alerts.Service
	Registry *prometheus.Registry

	db  *sqldb.DB
	log *slog.Logger
	cfg *config.Config
}

// New builds the wallet. It fails if ENCRYPTION_KEY is not the root key
// the database is encrypted with, or if the saved service catalog or the
// <SERVICE>_BASE_URL settings are invalid.
func New(ctx context.Context, d Deps) (*Wallet, error) {
	cfg, db, log := d.Config, d.DB, d.Log
	if d.Limiter == nil {
		d.Limiter = ratelimit.NewMemory(time.Now)
	}
	if d.Quota == nil {
		d.Quota = quota.NewMemory(db, 1)
	}
	root, err := vault.ParseRootKey(cfg.EncryptionKey)
	if err != nil {
		return nil, err
	}
	defer vault.Zero(root)
	keys, err := vault.NewService(ctx, db, root)
	if err != nil {
		return nil, err
	}
	keys.MaxKeys = cfg.MaxKeysPerWorkspace
	cat := catalog.New()
	if err := catalog.Restore(ctx, db, cat); err != nil {
		return nil, err
	}
	if err := cat.ApplyEnv(cfg.BaseURLs); err != nil {
		return nil, err
	}
	w := &Wallet{Keys: keys, Catalog: cat, Registry: prometheus.NewRegistry(), db: db, log: log, cfg: cfg}
	audit := newCountingAudit(db, w.Registry)
	w.Auth = NewAuth(cfg, db, d.Limiter, log)
	w.Auth.Audit = audit
	mo := d.Metering
	mo.Registerer = w.Registry
	w.Recorder = metering.NewRecorder(db, log, mo)
	freeQuota := int64(cfg.DefaultFreeQuota)
	w.Billing = billing.New(db, db, billing.Options{FreeQuota: &freeQuota, RatePerMinute: cfg.MaxRequestsPerMinute})
	// Alerts: raised once across instances, delivered to each workspace's
	// webhook.
	ao := d.Alerts
	ao.AllowPrivate = cfg.AlertWebhookAllowPrivate
	w.Alerts = alerts.New(db, keys, log, ao)
	// Plans are cached until a committed change (on any instance) bumps
	// the proxy's epoch.
	epoch := &proxy.Epoch{}
	router := routing.NewRouter()
	w.Proxy = proxy.New(proxy.Deps{Catalog: cat, Router: router, Auth: w.Auth, Keys: keys,
		Counter: db, Recorder: w.Recorder, Audit: audit, Limiter: d.Limiter, Log: log, Epoch: epoch,
		Quota: d.Quota, Plans: quota.NewCachedPlans(w.Billing, time.Minute, epoch), Alerts: w.Alerts, Policies: w.Billing,
		Transport: d.Transport, Registerer: w.Registry},
		proxy.Options{FallbackKeys: cfg.FallbackKeys, RatePerMinute: cfg.MaxRequestsPerMinute, WriteTimeout: cfg.WriteTimeout,
			UpstreamTimeout: cfg.UpstreamTimeout})
	w.Handler = api.NewServer(api.Deps{Config: cfg, Log: log, Auth: w.Auth, DB: db, Redis: d.Redis, Keys: keys,
		Teams: &team.Service{Store: db},
		Accounts: &account.Service{Users: db, Workspaces: db, Teams: db, Accounts: db, Audit: audit, Limiter: d.Limiter,
			Sections: []account.Section{account.KeysSection(db), account.TokensSection(db)}},
		Web: web.New(), Registry: w.Registry, Proxy: w.Proxy, Catalog: cat, CatalogStore: db, Billing: w.Billing, Alerts: w.Alerts,
		Analytics: newAnalytics(db, cmp.Or(d.ReadDB, db), cat, router, w),
		Stripe:    stripebilling.New(stripebilling.ConfigFrom(cfg), db, w.Alerts, log)})
	return w, nil
}

// NewAuth returns the account and credential service, for the commands
// that create users without serving.
func NewAuth(cfg *config.Config, db *sqldb.DB, limiter ratelimit.Limiter, log *slog.Logger) *auth.Service {
	return &auth.Service{
		Users: db, Workspaces: db, Audit: db, Tokens: db, MaxTokens: cfg.MaxTokensPerWorkspace, Limiter: limiter, Log: log,
		JWT: &auth.JWT{Secret: cfg.JWTSecret, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
			TTL: cfg.JWTExpiresIn, Now: time.Now},
	}
}

// ReloadCatalog reads the saved service catalog again, after another
// instance changed it.
func (w *Wallet) ReloadCatalog(ctx context.Context) error {
	return catalog.Restore(ctx, w.db, w.Catalog)
}

// AlertEvaluator finds quota crossings from the usage records, every
// ALERT_EVAL_INTERVAL; run it with Run.
func (w *Wallet) AlertEvaluator() *alerts.Evaluator {
	return &alerts.Evaluator{Alerts: w.Alerts, Store: w.db, Usage: w.db, Log: w.log, Interval: w.cfg.AlertEvalInterval,
		IncludedCalls: func(ctx context.Context, workspaceID string) (int64, error) {
			p, _, err := w.Billing.EffectivePlan(ctx, workspaceID)
			if err != nil {
				return 0, err
			}
			return p.IncludedCalls, nil
		},
		KeyPeriod: func(service string) string {
			if svc, ok := w.Catalog.Get(service); ok && svc.FreePeriod != "" {
				return svc.FreePeriod
			}
			return alerts.PeriodMonth
		}}
}

// Close stops the proxy's background work, writes every queued usage
// record (until ctx ends), stops alert delivery and waits for the auth
// service's background writes. In-flight calls must be done.
func (w *Wallet) Close(ctx context.Context) error {
	w.Proxy.Close()
	err := w.Recorder.Close(ctx)
	w.Alerts.Close()
	w.Auth.Wait()
	return err
}
