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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/auth"
	"github.com/apikeywallet/apiwallet/internal/config"
	"github.com/apikeywallet/apiwallet/internal/gcfloor"
	"github.com/apikeywallet/apiwallet/internal/proxy"
	"github.com/apikeywallet/apiwallet/internal/quota"
	"github.com/apikeywallet/apiwallet/internal/ratelimit"
	"github.com/apikeywallet/apiwallet/internal/redisconn"
	"github.com/apikeywallet/apiwallet/internal/server"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
	"github.com/apikeywallet/apiwallet/internal/wallet"
)

// app is the wired wallet: configuration, storage and services.
type app struct {
	cfg     *config.Config
	log     *slog.Logger
	db      *sqldb.DB
	redis   redis.UniversalClient
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
	redisMode := "none"
	local := ratelimit.NewMemory(time.Now)
	a.limiter = local
	a.quota = quota.NewMemory(a.db, 1)
	if cfg.RedisURL != "" {
		opts, err := redisconn.Parse(cfg.RedisURL)
		if err != nil {
			a.close()
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		opts.SetTimeouts(2*time.Second, time.Second, time.Second)
		a.redis = opts.NewClient()
		redisMode = string(opts.Mode)
		fb := ratelimit.NewFallback(ratelimit.NewRedis(a.redis, "apiwallet:rl:"), local, cfg.Instances, log)
		a.limiter = fb
		qf := quota.NewFallback(quota.NewRedis(a.redis, "apiwallet:quota:", a.db), quota.NewMemory(a.db, cfg.Instances), log)
		a.quota = qf
		a.closers = append(a.closers, a.redis.Close, fb.Close, qf.Close)
	}
	log.Info("storage ready", "database", a.db.Dialect(), "read_replica", cfg.DatabaseReadURL != "", "redis", redisMode)
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
	return wallet.NewAuth(a.cfg, a.db, a.limiter, a.log)
}

// invalidationChannel carries cache invalidations between instances. It
// is a plain (not sharded) channel: on a Redis Cluster a PUBLISH reaches
// the subscribers on every node, wherever each instance subscribed.
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
type redisPinger struct{ c redis.UniversalClient }

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

	deps := wallet.Deps{Config: a.cfg, DB: a.db, Log: a.log, Limiter: a.limiter, Quota: a.quota}
	// The replica serves only; migrations reach it through replication.
	if a.cfg.DatabaseReadURL != "" {
		if deps.ReadDB, err = sqldb.OpenReadReplica(ctx, a.cfg.DatabaseReadURL); err != nil {
			return fmt.Errorf("DATABASE_READ_URL: %w", err)
		}
		a.closers = append(a.closers, deps.ReadDB.Close)
	}
	if a.redis != nil {
		deps.Redis = redisPinger{a.redis}
	}
	w, err := wallet.New(ctx, deps)
	if err != nil {
		return err
	}
	server.RouteStdLog(a.log)
	// The port's server is built first: a TLS pair that does not load
	// stops the start before anything runs.
	srv, err := server.New(a.cfg, w.Handler, a.log)
	if err != nil {
		_ = w.Close(context.Background())
		return err
	}
	a.invalidateOnCommit(ctx, w.Proxy.Epoch(), func() {
		// Another instance changed something, perhaps the catalog.
		if err := w.ReloadCatalog(context.Background()); err != nil {
			a.log.Warn("reload service catalog", "err", err)
		}
	})
	evalCtx, stopEval := context.WithCancel(context.Background())
	evalDone := make(chan struct{})
	go func() { defer close(evalDone); w.AlertEvaluator().Run(evalCtx) }()
	if !slices.ContainsFunc(environ, func(kv string) bool { return strings.HasPrefix(kv, "GOGC=") }) {
		go gcfloor.Run(evalCtx, time.Second) // an operator's GOGC wins
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
	// Whatever way serve returns, the evaluator stops and the usage
	// records queued so far are written before the database closes.
	closed := false
	closeWallet := func(ctx context.Context) {
		if closed {
			return
		}
		closed = true
		stopEval()
		<-evalDone
		if err := w.Close(ctx); err != nil {
			a.log.Error("usage records not flushed", "err", err)
		}
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
		defer cancel()
		closeWallet(ctx)
	}()
	ln, err := net.Listen("tcp", net.JoinHostPort(a.cfg.Host, strconv.Itoa(a.cfg.Port)))
	if err != nil {
		return err
	}
	a.log.Info("listening", "addr", ln.Addr().String(), "version", version, "production", a.cfg.Production,
		"tls", srv.TLS(), "h2c", srv.H2C(), "trusted_proxies", len(a.cfg.TrustedProxies))

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
	closeWallet(sctx)
	a.log.Info("stopped")
	return nil
}
