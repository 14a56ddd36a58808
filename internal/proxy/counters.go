package proxy

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/catalog"
	"github.com/apikeywallet/apiwallet/internal/routing"
)

// countUse counts a served call against its key: the per-key quota
// counters the router reads, and the key's last use, written later.
func (p *Proxy) countUse(c *call) {
	if c.keyID == apiwallet.FallbackKeyID {
		return
	}
	p.used.add(&c.svc, c.ks, c.keyID, p.now())
	p.touches.use(c.caller.workspaceID, c.keyID)
}

// usedCounters count each key's calls in its current quota period in this
// process, on top of what the usage records held when the key was first
// seen, so per-key quotas hold across key-set reloads and restarts. They
// are lock-free: add runs on every proxied call.
type usedCounters struct {
	m sync.Map // key id → *usedCounter
}

type usedCounter struct {
	mu     sync.Mutex // guards a period change only
	period atomic.Int64
	n      atomic.Int64
}

// count returns keyID's counter for period, starting it at base when the
// key is new or its period has changed.
func (u *usedCounters) count(keyID string, period time.Time, base func() int64) *usedCounter {
	ps := period.Unix()
	v, ok := u.m.Load(keyID)
	if !ok {
		c := &usedCounter{}
		c.period.Store(ps)
		c.n.Store(base())
		v, _ = u.m.LoadOrStore(keyID, c)
	}
	c := v.(*usedCounter)
	if c.period.Load() != ps {
		c.mu.Lock()
		if c.period.Load() != ps {
			c.n.Store(base())
			c.period.Store(ps)
		}
		c.mu.Unlock()
	}
	return c
}

func (u *usedCounters) fill(ctx context.Context, counter UsageCounter, workspaceID string, svc *catalog.Service,
	cands []routing.Candidate, now time.Time) error {
	period := periodStart(svc.FreePeriod, now)
	var counts map[string]int64
	for i := range cands {
		if v, ok := u.m.Load(cands[i].ID); ok && v.(*usedCounter).period.Load() == period.Unix() {
			cands[i].Used = v.(*usedCounter).n.Load()
			continue
		}
		if cands[i].Quota <= 0 {
			continue
		}
		if counts == nil && counter != nil {
			var err error
			if counts, err = counter.KeyUsageSince(ctx, workspaceID, svc.Name, period); err != nil {
				return err
			}
		}
		n := counts[cands[i].ID]
		cands[i].Used = u.count(cands[i].ID, period, func() int64 { return n }).n.Load()
	}
	return nil
}

func (u *usedCounters) add(svc *catalog.Service, ks *routing.KeySet, keyID string, now time.Time) {
	u.count(keyID, periodStart(svc.FreePeriod, now), func() int64 { return 0 }).n.Add(1)
	ks.AddUsed(keyID, 1)
}
