package proxy

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/routing"
)

// The proxy's metrics. Every label value comes from a small closed set or
// from the service catalog: never a key id, a token, a workspace id or a
// path, so the series stay bounded however many keys and callers there
// are. Each service's children are resolved once and kept, so a proxied
// call increments counters it already holds: no label lookup, no
// allocation.

// Tiers of the key that answered a call, as the calls counter labels them.
const (
	tierFree = iota
	tierPaid
	tierFallback // the operator's <SERVICE>_FALLBACK_KEY
	tierNone     // no key answered
	nTiers
)

var tierNames = [nTiers]string{"free", "paid", "fallback", "none"}

// Status classes of a call's final answer; none: the client went away
// before one was sent.
const (
	class1xx = iota
	class2xx
	class3xx
	class4xx
	class5xx
	classNone
	nClasses
)

var classNames = [nClasses]string{"1xx", "2xx", "3xx", "4xx", "5xx", "none"}

// Upstream error classes.
const (
	upTimeout = iota // no answer in time
	upConnect        // the connection could not be made
	upReset          // the connection broke: reset, closed, cut mid-body
	up5xx
	up429
	nUpErrors
)

var upErrorNames = [nUpErrors]string{"timeout", "connect", "reset", "5xx", "429"}

// Limits a call is refused by.
const (
	limitWorkspaceRate = iota // the workspace's calls per minute
	limitTokenRate            // the access token's calls per minute
	limitMonthlyQuota         // the plan's monthly calls
	limitKeyQuota             // every key's own quota is used up
	nLimits
)

var limitNames = [nLimits]string{"workspace_per_minute", "token_per_minute", "monthly_quota", "key_quota"}

// maxPlanLabels bounds the plans the quota gauge names; beyond it (an
// operator with very many custom plans) the rest are "other".
const maxPlanLabels = 64

type metrics struct {
	calls     *prometheus.CounterVec
	upstream  *prometheus.HistogramVec
	upErrors  *prometheus.CounterVec
	fallbacks *prometheus.CounterVec
	overhead  prometheus.Histogram
	attempts  *prometheus.HistogramVec
	refusals  [nLimits]prometheus.Counter
	// refusalsVec holds the refusals children, for registration.
	refusalsVec *prometheus.CounterVec
	ksHits      prometheus.Counter
	ksMisses    prometheus.Counter

	byStrategy [len(strategies)]prometheus.Observer

	// services maps a service name to its children. It is replaced, never
	// changed, when a service is added: a call reads a plain map, which
	// allocates nothing (a sync.Map boxes its string key).
	services  atomic.Pointer[map[string]*serviceMetrics]
	servicesM sync.Mutex

	quota quotaUse
}

// serviceMetrics are one service's children, resolved once.
type serviceMetrics struct {
	calls     [nTiers][nClasses]prometheus.Counter
	upstream  prometheus.Observer
	upErrors  [nUpErrors]prometheus.Counter
	fallbacks prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiwallet_proxy_calls_total",
			Help: "Proxied calls that went to an upstream, by service, tier of the key that answered (free, paid, fallback, none) and status class of the answer.",
		}, []string{"service", "tier", "class"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiwallet_proxy_upstream_duration_seconds",
			Help:    "Time an upstream took to answer one attempt (to its response headers), by service.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"service"}),
		upErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiwallet_proxy_upstream_errors_total",
			Help: "Failed upstream attempts, by service and class (timeout, connect, reset, 5xx, 429).",
		}, []string{"service", "class"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiwallet_proxy_fallbacks_total",
			Help: "Proxied calls that moved on from their first key to another, by service.",
		}, []string{"service"}),
		overhead: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "apiwallet_proxy_overhead_seconds",
			Help:    "Time a proxied call spent in the wallet itself, upstream time excluded, until its answer's headers were sent.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
		attempts: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiwallet_proxy_attempts_per_call",
			Help:    "Keys tried per proxied call, by routing strategy.",
			Buckets: []float64{1, 2, 3, 4},
		}, []string{"strategy"}),
		ksHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "apiwallet_keyset_cache_hits_total",
			Help: "Proxied calls whose workspace key set was in the cache.",
		}),
		ksMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "apiwallet_keyset_cache_misses_total",
			Help: "Proxied calls that had to load their workspace key set.",
		}),
	}
	refusals := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apiwallet_proxy_refusals_total",
		Help: "Proxied calls refused by a limit (workspace_per_minute, token_per_minute, monthly_quota, key_quota).",
	}, []string{"limit"})
	for i := range m.refusals {
		m.refusals[i] = refusals.WithLabelValues(limitNames[i])
	}
	m.refusalsVec = refusals
	for i, s := range strategies {
		m.byStrategy[i] = m.attempts.WithLabelValues(string(s))
	}
	m.services.Store(&map[string]*serviceMetrics{})
	return m
}

// register adds the proxy's collectors to reg, with a zero series for
// every catalog service, so that dashboards and alerts see each from the
// start, before any traffic.
func (p *Proxy) registerMetrics(reg prometheus.Registerer) {
	m := p.metrics
	for _, s := range p.catalog.List() {
		m.service(s.Name)
	}
	reg.MustRegister(m.calls, m.upstream, m.upErrors, m.fallbacks, m.overhead, m.attempts, m.refusalsVec,
		m.ksHits, m.ksMisses, &keyHealthCollector{p: p}, &quotaCollector{q: &m.quota})
}

// service returns the children of a catalog service, creating them the
// first time (a service an admin added since the start).
func (m *metrics) service(name string) *serviceMetrics {
	if sm, ok := (*m.services.Load())[name]; ok {
		return sm
	}
	m.servicesM.Lock()
	defer m.servicesM.Unlock()
	cur := *m.services.Load()
	if sm, ok := cur[name]; ok {
		return sm
	}
	sm := &serviceMetrics{upstream: m.upstream.WithLabelValues(name), fallbacks: m.fallbacks.WithLabelValues(name)}
	for t := range sm.calls {
		for c := range sm.calls[t] {
			sm.calls[t][c] = m.calls.WithLabelValues(name, tierNames[t], classNames[c])
		}
	}
	for i := range sm.upErrors {
		sm.upErrors[i] = m.upErrors.WithLabelValues(name, upErrorNames[i])
	}
	next := make(map[string]*serviceMetrics, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	next[name] = sm
	m.services.Store(&next)
	return sm
}

// strategies are the routing strategies, in the order of byStrategy.
var strategies = [...]routing.Strategy{routing.StrategyCost, routing.StrategyPriority, routing.StrategyRoundRobin, routing.StrategyLeastUsed}

// svc returns the children of the call's service, resolved once a call.
func (m *metrics) svc(c *call) *serviceMetrics {
	if c.metrics == nil {
		c.metrics = m.service(c.svc.Name)
	}
	return c.metrics
}

func statusClass(status int) int {
	if status < 100 || status > 599 {
		return classNone
	}
	return status/100 - 1
}

// observeCall counts a call that went to an upstream, once, when its
// outcome is known (record). A call no upstream answered (every attempt
// failed, or the client went away) has tier none.
func (m *metrics) observeCall(c *call, now time.Time) {
	sm := m.svc(c)
	tier := tierNone
	switch {
	case c.res == nil:
	case c.keyID == apiwallet.FallbackKeyID:
		tier = tierFallback
	case c.ks.Tier(c.keyID) == routing.TierFree:
		tier = tierFree
	default:
		tier = tierPaid
	}
	sm.calls[tier][statusClass(c.status)].Inc()
	if len(c.tried) > 1 {
		sm.fallbacks.Inc()
	}
	for i, s := range strategies {
		if s == c.strategy {
			m.byStrategy[i].Observe(float64(len(c.tried)))
		}
	}
	if !c.overheadSeen {
		m.overhead.Observe(max(now.Sub(c.start)-c.upstreamDur, 0).Seconds())
	}
}

// observeOverhead records the wallet's own time of a call whose answer's
// headers are about to be sent.
func (m *metrics) observeOverhead(c *call, d time.Duration) {
	c.overheadSeen = true
	m.overhead.Observe(max(d, 0).Seconds())
}

// upstreamError classifies an attempt that got no answer.
func upstreamError(err error) int {
	var ne net.Error
	switch {
	case isDialError(err):
		return upConnect
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return upTimeout
	}
	return upReset
}

// quotaUse keeps, per workspace, the last monthly quota figures the proxy
// saw, so that the quota gauge is computed from memory at a scrape.
type quotaUse struct {
	m sync.Map // workspace id → *workspaceQuota
}

type workspaceQuota struct {
	plan     atomic.Pointer[string]
	period   atomic.Int64 // the month, Unix seconds
	used     atomic.Int64
	included atomic.Int64
}

// observe notes a workspace's count against its plan. It allocates only
// for a workspace first seen, or one that changed plan.
func (q *quotaUse) observe(workspaceID, plan string, period time.Time, used, included int64) {
	if included <= 0 {
		return
	}
	v, ok := q.m.Load(workspaceID)
	if !ok {
		v, _ = q.m.LoadOrStore(workspaceID, &workspaceQuota{})
	}
	w := v.(*workspaceQuota)
	if cur := w.plan.Load(); cur == nil || *cur != plan {
		name := plan
		w.plan.Store(&name)
	}
	w.period.Store(period.Unix())
	w.used.Store(used)
	w.included.Store(included)
}

var quotaDesc = prometheus.NewDesc("apiwallet_quota_used_ratio",
	"Highest share of its plan's monthly calls used by a workspace on the plan, among the workspaces this instance served this month.",
	[]string{"plan"}, nil)

// quotaCollector computes the quota gauge at a scrape from quotaUse,
// forgetting workspaces not seen this month.
type quotaCollector struct{ q *quotaUse }

func (c *quotaCollector) Describe(ch chan<- *prometheus.Desc) { ch <- quotaDesc }

func (c *quotaCollector) Collect(ch chan<- prometheus.Metric) {
	month := time.Now().UTC()
	month = time.Date(month.Year(), month.Month(), 1, 0, 0, 0, 0, time.UTC)
	ratios := map[string]float64{}
	// The built-in plans with a quota are always there, at 0 until a
	// workspace on them calls.
	for _, p := range []string{apiwallet.PlanFree, apiwallet.PlanProfessional, apiwallet.PlanEnterprise} {
		ratios[p] = 0
	}
	c.q.m.Range(func(k, v any) bool {
		w := v.(*workspaceQuota)
		if w.period.Load() < month.Unix() {
			c.q.m.Delete(k)
			return true
		}
		plan := "other"
		if p := w.plan.Load(); p != nil {
			if _, known := ratios[*p]; known || len(ratios) < maxPlanLabels {
				plan = *p
			}
		}
		if r := float64(w.used.Load()) / float64(w.included.Load()); r > ratios[plan] {
			ratios[plan] = r
		}
		return true
	})
	for plan, r := range ratios {
		ch <- prometheus.MustNewConstMetric(quotaDesc, prometheus.GaugeValue, r, plan)
	}
}

var keyHealthDesc = prometheus.NewDesc("apiwallet_keys_unavailable",
	"Keys this instance skips now, by service and reason (cooldown, quarantined, quota_exhausted), among the key sets it holds.",
	[]string{"service", "reason"}, nil)

// keyHealthCollector counts, at a scrape, the keys in cooldown, in
// quarantine or out of quota in the key sets the proxy holds: O(keys held),
// in memory, no database read.
type keyHealthCollector struct{ p *Proxy }

var keyHealthReasons = [3]string{"cooldown", "quarantined", "quota_exhausted"}

func (c *keyHealthCollector) Describe(ch chan<- *prometheus.Desc) { ch <- keyHealthDesc }

func (c *keyHealthCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.p.keyHealth(c.p.now())
	for _, s := range c.p.catalog.List() {
		n := counts[s.Name]
		for i, reason := range keyHealthReasons {
			ch <- prometheus.MustNewConstMetric(keyHealthDesc, prometheus.GaugeValue, float64(n[i]), s.Name, reason)
		}
	}
}

// keyHealth counts the unusable keys of every key set held, by service.
func (p *Proxy) keyHealth(now time.Time) map[string][3]int {
	out := map[string][3]int{}
	p.keysets.each(func(k string, e *keySetEntry) {
		_, svc, _ := strings.Cut(k, "\x00")
		h := e.ks.Health(now)
		n := out[svc]
		n[0] += h.Cooldown
		n[1] += h.Quarantined
		n[2] += h.QuotaExhausted
		out[svc] = n
	})
	return out
}
