package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/apikeywallet/apiwallet"
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
)

// app is the wired wallet: configuration, storage and services.
type app struct {
	cfg     *config.Config
	log     *slog.Logger
	db      *sqldb.DB
	redis   *redis.Client
	limiter ratelimit.Limiter
	// quota counts monthly plan quotas: in process, or in Redis (falling
	// back to per-instance shares while Redis is down).
	quota   quota.Counter
	closers []func() error
}

// loadConfig reads and validates the configuration and sets up logging;
// the returned writer must be closed to write out the last log lines.
func loadConfig(stderr io.Writer, environ []string) (*config.Config, *slog.Logger, *logWriter, error) {
	cfg, err := config.Load(environ)
	if err != nil {
		return nil, nil, nil, err
	}
	lw := newLogWriter(stderr, 100*time.Millisecond)
	log := slog.New(slog.NewJSONHandler(lw, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if err := cfg.LoadSecrets(log); err != nil {
		lw.Close()
		return nil, nil, nil, err
	}
	return cfg, log, lw, nil
}

// openApp connects to the database (migrating it) and to Redis.
func openApp(ctx context.Context, stderr io.Writer, environ []string) (*app, error) {
	cfg, log, lw, err := loadConfig(stderr, environ)
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: log, closers: []func() error{lw.Close}}
	a.db, err = sqldb.Open(ctx, cfg.DatabaseURL, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.db.Close)
	if err := a.db.Migrate(ctx, log); err != nil {
		a.close()
		return nil, err
	}
	local := ratelimit.NewMemory(time.Now)
	a.limiter = local
	a.quota = quota.NewMemory(a.db, 1)
	if cfg.RedisURL != "" {
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			a.close()
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 2*time.Second, time.Second, time.Second
		a.redis = redis.NewClient(opts)
		fb := ratelimit.NewFallback(ratelimit.NewRedis(a.redis, "apiwallet:rl:"), local, cfg.Instances, log)
		a.limiter = fb
		qf := quota.NewFallback(quota.NewRedis(a.redis, "apiwallet:quota:", a.db), quota.NewMemory(a.db, cfg.Instances), log)
		a.quota = qf
		a.closers = append(a.closers, a.redis.Close, fb.Close, qf.Close)
	}
	log.Info("storage ready", "database", a.db.Dialect(), "redis", cfg.RedisURL != "")
	return a, nil
}

func (a *app) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i](); err != nil {
			a.log.Warn("close", "err", err)
		}
	}
}

func (a *app) authService() *auth.Service {
	return &auth.Service{
		Users:      a.db,
		Workspaces: a.db,
		Audit:      a.db,
		Tokens:     a.db,
		Limiter:    a.limiter,
		Log:        a.log,
		JWT: &auth.JWT{Secret: a.cfg.JWTSecret, Issuer: a.cfg.JWTIssuer, Audience: a.cfg.JWTAudience,
			TTL: a.cfg.JWTExpiresIn, Now: time.Now},
	}
}

// keyService opens the vault with ENCRYPTION_KEY; it fails if that is not
// the root key the database is encrypted with.
func (a *app) keyService(ctx context.Context) (*vault.Service, error) {
	root, err := vault.ParseRootKey(a.cfg.EncryptionKey)
	if err != nil {
		return nil, err
	}
	defer vault.Zero(root)
	return vault.NewService(ctx, a.db, root)
}

// accountService serves data export, erasure and user administration.
func (a *app) accountService() *account.Service {
	return &account.Service{Users: a.db, Workspaces: a.db, Teams: a.db, Accounts: a.db, Audit: a.db,
		Limiter: a.limiter, Sections: []account.Section{account.KeysSection(a.db), account.TokensSection(a.db)}}
}

// billingService computes plans, invoices and the business report;
// DEFAULT_FREE_QUOTA sets the free plan's included calls.
func (a *app) billingService() *billing.Service {
	freeQuota := int64(a.cfg.DefaultFreeQuota)
	return billing.New(a.db, a.db, billing.Options{FreeQuota: &freeQuota, RatePerMinute: a.cfg.MaxRequestsPerMinute})
}

// invalidationChannel carries cache invalidations between instances.
const invalidationChannel = "apiwallet:invalidate"

// invalidateOnCommit empties the proxy's caches after every committed
// change, here and, through Redis, on every other instance.
func (a *app) invalidateOnCommit(ctx context.Context, epoch *proxy.Epoch, onRemote func()) {
	if a.redis == nil {
		a.db.OnCommit = epoch.Bump
		return
	}
	self := apiwallet.NewID("inst")
	a.db.OnCommit = func() {
		epoch.Bump()
		pctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := a.redis.Publish(pctx, invalidationChannel, self).Err(); err != nil {
			a.log.Warn("cache invalidation not published; other instances catch up within the cache TTL", "err", err)
		}
	}
	sub := a.redis.Subscribe(ctx, invalidationChannel)
	a.closers = append(a.closers, sub.Close)
	go func() {
		for msg := range sub.Channel() {
			if msg.Payload != self {
				epoch.Bump()
				onRemote()
			}
		}
	}()
}

// redisPinger adapts a go-redis client to api.Pinger.
type redisPinger struct{ c *redis.Client }

func (p redisPinger) Ping(ctx context.Context) error { return p.c.Ping(ctx).Err() }

func serve(ctx context.Context, args []string, stderr io.Writer, environ []string) error {
	if len(args) > 0 {
		return usageError{"apiwallet serve takes no arguments; configure it with environment variables"}
	}
	a, err := openApp(ctx, stderr, environ)
	if err != nil {
		return err
	}
	defer a.close()

	keys, err := a.keyService(ctx)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	authSvc := a.authService()
	cat := catalog.New()
	if err := catalog.Restore(ctx, a.db, cat); err != nil {
		return err
	}
	if err := cat.ApplyEnv(a.cfg.BaseURLs); err != nil {
		return err
	}
	recorder := metering.NewRecorder(a.db, a.log, metering.Options{Registerer: reg})
	// Plans are cached until a committed change (on any instance) bumps
	// the proxy's epoch.
	epoch := &proxy.Epoch{}
	bill := a.billingService()
	plans := quota.NewCachedPlans(bill, time.Minute, epoch)
	// Alerts: raised once across instances, delivered to each workspace's
	// webhook; the evaluator finds quota crossings from the usage records.
	alertSvc := alerts.New(a.db, keys, a.log, alerts.Options{AllowPrivate: a.cfg.AlertWebhookAllowPrivate})
	px := proxy.New(proxy.Deps{Catalog: cat, Router: routing.NewRouter(), Auth: authSvc, Keys: keys,
		Counter: a.db, Recorder: recorder, Audit: a.db, Limiter: a.limiter, Log: a.log, Epoch: epoch,
		Quota: a.quota, Plans: plans, Alerts: alertSvc, Policies: bill},
		proxy.Options{FallbackKeys: a.cfg.FallbackKeys, RatePerMinute: a.cfg.MaxRequestsPerMinute})
	a.invalidateOnCommit(ctx, px.Epoch(), func() {
		// Another instance changed something, perhaps the catalog.
		if err := catalog.Restore(context.Background(), a.db, cat); err != nil {
			a.log.Warn("reload service catalog", "err", err)
		}
	})
	deps := api.Deps{Config: a.cfg, Log: a.log, Auth: authSvc, DB: a.db, Keys: keys,
		Teams: &team.Service{Store: a.db}, Accounts: a.accountService(), Registry: reg,
		Proxy: px, Catalog: cat, CatalogStore: a.db, Billing: bill, Alerts: alertSvc,
		Stripe: stripebilling.New(stripebilling.ConfigFrom(a.cfg), a.db, alertSvc, a.log)}
	evaluator := &alerts.Evaluator{Alerts: alertSvc, Store: a.db, Usage: a.db, Log: a.log, Interval: a.cfg.AlertEvalInterval,
		IncludedCalls: func(ctx context.Context, workspaceID string) (int64, error) {
			p, _, err := bill.EffectivePlan(ctx, workspaceID)
			if err != nil {
				return 0, err
			}
			return p.IncludedCalls, nil
		},
		KeyPeriod: func(service string) string {
			if svc, ok := cat.Get(service); ok && svc.FreePeriod != "" {
				return svc.FreePeriod
			}
			return alerts.PeriodMonth
		}}
	evalCtx, stopEval := context.WithCancel(context.Background())
	evalDone := make(chan struct{})
	go func() { defer close(evalDone); evaluator.Run(evalCtx) }()
	defer func() { stopEval(); <-evalDone; alertSvc.Close() }()
	if a.redis != nil {
		deps.Redis = redisPinger{a.redis}
	}
	srv := &http.Server{
		Handler:           api.NewServer(deps),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	if a.cfg.PprofAddr != "" {
		go func() {
			a.log.Info("pprof listening", "addr", a.cfg.PprofAddr)
			mux := http.NewServeMux()
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			if err := http.ListenAndServe(a.cfg.PprofAddr, mux); err != nil {
				a.log.Error("pprof", "err", err)
			}
		}()
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(a.cfg.Host, strconv.Itoa(a.cfg.Port)))
	if err != nil {
		return err
	}
	a.log.Info("listening", "addr", ln.Addr().String(), "version", version, "production", a.cfg.Production)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Stop accepting, let in-flight requests finish, then close storage.
	a.log.Info("shutting down", "timeout", a.cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	// In-flight calls are done: their usage records are flushed before the
	// database closes.
	px.Close()
	if err := recorder.Close(sctx); err != nil {
		a.log.Error("usage records not flushed", "err", err)
	}
	authSvc.Wait()
	a.log.Info("stopped")
	return nil
}

func migrate(ctx context.Context, stderr io.Writer, environ []string) error {
	a, err := openApp(ctx, stderr, environ)
	if err != nil {
		return err
	}
	a.close()
	return nil
}
