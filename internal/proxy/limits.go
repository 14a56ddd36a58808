package proxy

import (
	"context"
	"errors"
	"fmt"
	"github.com/apikeywallet/apiwallet"
	"net/http"
	"strconv"
	"time"

	"github.com/apikeywallet/apiwallet/internal/quota"
	"github.com/apikeywallet/apiwallet/internal/ratelimit"
	"github.com/apikeywallet/apiwallet/internal/routing"
)

// policy is a workspace's cached Policies answer.
type policy struct {
	premium bool
	rate    int
	plan    string
}

// limit applies what the workspace's plan allows: the routing the client
// asked for (a cost strategy and cross-key fallback only with premium
// routing), the rate limits, and the monthly quota, reserved here.
func (p *Proxy) limit(c *call) error {
	c.strategy = routing.StrategyCost
	if s := c.r.Header.Get("X-Wallet-Strategy"); s != "" {
		st, ok := routing.ParseStrategy(s)
		if !ok {
			return refusal(apiwallet.EINVALID, "invalid_strategy", "", "X-Wallet-Strategy must be one of cost, priority, round-robin, least-used")
		}
		c.strategy = st
	}
	pol, err := p.workspacePolicy(c.ctx, c.caller.workspaceID)
	if err != nil {
		return err
	}
	c.premium, c.maxAttempts = pol.premium, routing.MaxAttempts
	if !c.premium {
		c.strategy, c.maxAttempts = routing.StrategyPriority, 1
	}
	if err := p.rateLimit(c.ctx, c.w.Header(), c.caller, pol.rate); err != nil {
		return err
	}
	c.reservation, err = p.reserve(c.ctx, c.w.Header(), c.caller, pol.plan)
	return err
}

// workspacePolicy reads the workspace's policy, cached.
func (p *Proxy) workspacePolicy(ctx context.Context, workspaceID string) (policy, error) {
	if p.policies == nil {
		return policy{premium: true}, nil
	}
	now := p.now().UnixNano()
	if v, ok := p.policy.get(workspaceID, now); ok {
		return v, nil
	}
	epoch := p.epoch.Load()
	premium, rate, plan, err := p.policies.WorkspacePolicy(ctx, workspaceID)
	if err != nil {
		return policy{}, err
	}
	v := policy{premium: premium, rate: rate, plan: plan}
	p.policy.put(workspaceID, v, epoch, now)
	return v, nil
}

// rateLimit applies the workspace's limit and, when the token sets one, the
// token's; it sets the RateLimit-* headers of the tighter one. A refusal
// names the limit that fired, its window, what remains and when it resets.
func (p *Proxy) rateLimit(ctx context.Context, h http.Header, c *caller, rate int) error {
	if rate <= 0 {
		rate = p.opts.RatePerMinute
	}
	if p.limiter == nil || rate <= 0 {
		return nil
	}
	type check struct {
		name, key string
		limit     ratelimit.Limit
		metric    int
	}
	checks := [2]check{{"workspace-rate", "rl:ws:" + c.workspaceID, ratelimit.PerMinute(rate), limitWorkspaceRate}}
	n := 1
	if c.token != nil && c.token.RateLimitPerMinute > 0 {
		checks[1] = check{"token-rate", "rl:tok:" + c.token.ID, ratelimit.PerMinute(c.token.RateLimitPerMinute), limitTokenRate}
		n = 2
	}
	var shown ratelimit.Decision
	for i := range n {
		d, err := p.limiter.Allow(ctx, checks[i].key, checks[i].limit, 1)
		if err != nil {
			return err
		}
		if i == 0 || d.Remaining < shown.Remaining {
			shown = d
		}
		if !d.Allowed {
			p.metrics.refusals[checks[i].metric].Inc()
			setRateHeaders(h, d)
			secs := int((d.RetryAfter + time.Second - 1) / time.Second)
			h.Set("X-Wallet-Limit", checks[i].name)
			return withDetails(refusal(apiwallet.ERATELIMIT, "rate_limit_exceeded", "rate-limited",
				fmt.Sprintf("%s limit of %d calls per minute reached; retry in %d s", checks[i].name, d.Limit, secs)), secs,
				map[string]any{"limit": checks[i].name, "window": "1m", "max": d.Limit,
					"remaining": d.Remaining, "resetSeconds": int(d.ResetAfter.Seconds())})
		}
	}
	setRateHeaders(h, shown)
	return nil
}

func setRateHeaders(h http.Header, d ratelimit.Decision) {
	setHeaders(h, "Ratelimit-Limit", strconv.Itoa(d.Limit),
		"Ratelimit-Remaining", strconv.Itoa(d.Remaining),
		"Ratelimit-Reset", strconv.Itoa(int((d.ResetAfter+time.Second-1)/time.Second)))
}

// setHeaders sets each header (named in canonical form) to its value. It
// makes one allocation for all the values where Header.Set makes one
// each: it runs on every proxied call.
func setHeaders(h http.Header, kv ...string) {
	vals := make([]string, len(kv)/2)
	for i := range vals {
		vals[i] = kv[2*i+1]
		h[kv[2*i]] = vals[i : i+1 : i+1]
	}
}

// reserve counts the call against the workspace's monthly plan quota. A
// hard stop answers 429 quota-exceeded, naming the limit, the numbers,
// when it resets and how to upgrade.
func (p *Proxy) reserve(ctx context.Context, h http.Header, c *caller, plan string) (quota.Reservation, error) {
	if p.quota == nil || p.plans == nil {
		return quota.Reservation{}, nil
	}
	included, hardStop, err := p.plans.PlanFor(ctx, c.workspaceID)
	if err != nil {
		return quota.Reservation{}, err
	}
	now := p.now()
	res, err := p.quota.Reserve(ctx, c.workspaceID, now, included, hardStop)
	var ex *quota.Exceeded
	if !errors.As(err, &ex) {
		if err == nil {
			p.metrics.quota.observe(c.workspaceID, plan, res.Period, res.Used, res.Included)
		}
		return res, err
	}
	p.metrics.refusals[limitMonthlyQuota].Inc()
	p.metrics.quota.observe(c.workspaceID, plan, quota.MonthStart(now), ex.Used, ex.Included)
	secs := max(int(ex.ResetAt.Sub(now).Seconds()+0.999), 1)
	h.Set("X-Wallet-Limit", "plan-quota")
	return res, withDetails(refusal(apiwallet.ERATELIMIT, "quota_exceeded", "quota-exceeded",
		fmt.Sprintf("this workspace's plan includes %d calls a month and %d are used; the quota resets at %s. "+
			"Upgrade the plan to keep calling: GET /billing/plan shows it, POST /billing/checkout changes it",
			ex.Included, ex.Used, ex.ResetAt.Format(time.RFC3339))), secs,
		map[string]any{"limit": "plan-quota", "window": "month", "included": ex.Included, "used": ex.Used,
			"remaining": max(ex.Included-ex.Used, 0), "resetAt": ex.ResetAt.Format(time.RFC3339), "resetSeconds": secs,
			"upgrade": map[string]string{"plan": "GET /billing/plan", "checkout": "POST /billing/checkout"}})
}

// settle completes the call's reservation: a call that never reached an
// upstream is refunded.
func (p *Proxy) settle(c *call) {
	res := c.reservation
	if c.sent || !res.Valid() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), 5*time.Second)
	defer cancel()
	if err := p.quota.Settle(ctx, res, false); err != nil {
		p.log.WarnContext(ctx, "proxy: quota refund failed", "workspace_id", res.WorkspaceID, "err", err)
	}
}
