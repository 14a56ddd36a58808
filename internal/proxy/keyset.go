package proxy

import (
	"context"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/catalog"
	"github.com/apikeywallet/apiwallet/internal/routing"
)

// keySet returns the cached key set, loading it on a miss. Concurrent
// misses share one load: after an invalidation every in-flight call needs
// the set at once, and a workspace may hold 100,000 keys.
//
// A set that is merely getting old is refreshed in the background while
// calls go on with it: loading 100,000 keys takes a good part of a second,
// and at expiry every call for the workspace would wait for it. Only an
// invalidation (an epoch bump) makes calls wait for a load. A refresh
// usually finds the keys unchanged and keeps the set (refreshKeySet).
func (p *Proxy) keySet(ctx context.Context, workspaceID string, svc *catalog.Service) (*routing.KeySet, error) {
	ck := workspaceID + "\x00" + svc.Name
	if e, ok, aging := p.keysets.lookup(ck, p.now().UnixNano()); ok {
		p.metrics.ksHits.Inc()
		if aging {
			p.loads.DoChan("ksr\x00"+ck, func() (any, error) {
				e, err := p.refreshKeySet(context.WithoutCancel(ctx), ck, workspaceID, svc, e)
				if err != nil {
					// Calls go on with the cached set; the next one retries.
					p.log.Warn("proxy: reload key set", "workspace_id", workspaceID, "service", svc.Name, "err", err)
				}
				return e, err
			})
		}
		return e.ks, nil
	}
	p.metrics.ksMisses.Inc()
	v, err, _ := p.loads.Do("ks\x00"+ck, func() (any, error) {
		if e, ok := p.keysets.get(ck, p.now().UnixNano()); ok {
			return e, nil
		}
		// An expired set may still be current: a workspace idle for a
		// while should not read 100,000 keys to find they did not change.
		if e, ok := p.keysets.stale(ck); ok {
			return p.refreshKeySet(context.WithoutCancel(ctx), ck, workspaceID, svc, e)
		}
		return p.loadKeySet(context.WithoutCancel(ctx), ck, workspaceID, svc)
	})
	if err != nil {
		return nil, err
	}
	return v.(*keySetEntry).ks, nil
}

// keySetEntry is a cached key set and what it was built from, so that a
// reload can tell it is still current and keep it, with its live counts.
type keySetEntry struct {
	ks      *routing.KeySet
	epoch   uint64 // the generation it was cached at
	version int64  // the store's KeySetVersion read before the keys; 0: unknown
	period  int64  // start of the quota period of its used counts, Unix seconds
	// The service's terms the candidates were priced with; an edit of the
	// catalog changes them.
	price, quota int64
}

// current reports whether e still holds for svc at now, keys aside.
func (e *keySetEntry) current(svc *catalog.Service, epoch uint64, now time.Time) bool {
	return e.version > 0 && e.epoch == epoch && e.price == svc.PriceMicros && e.quota == svc.FreeQuota &&
		e.period == periodStart(svc.FreePeriod, now).Unix()
}

// refreshKeySet renews cur if the workspace's keys for svc did not change
// since it was loaded, which one single-row read tells, and otherwise
// loads the set again. Reading the keys of a large workspace costs a good
// part of a second and builds a second set beside the first; most reloads
// find nothing changed.
//
// The epoch is read before the version: revocations and rotations bump it
// after they commit, so either the version read sees their change or the
// entry is put under an older epoch and is stale at once.
func (p *Proxy) refreshKeySet(ctx context.Context, ck, workspaceID string, svc *catalog.Service, cur *keySetEntry) (*keySetEntry, error) {
	now := p.now()
	epoch := p.epoch.Load()
	if cur.current(svc, epoch, now) {
		v, err := p.keys.KeySetVersion(ctx, workspaceID, svc.Name)
		if err != nil {
			return nil, err
		}
		if v == cur.version {
			p.keysets.put(ck, cur, epoch, now.UnixNano())
			return cur, nil
		}
		return p.buildKeySet(ctx, ck, workspaceID, svc, now, epoch, v)
	}
	return p.loadKeySet(ctx, ck, workspaceID, svc)
}

// loadKeySet reads a workspace's keys for svc and caches their set.
func (p *Proxy) loadKeySet(ctx context.Context, ck, workspaceID string, svc *catalog.Service) (*keySetEntry, error) {
	now := p.now()
	epoch := p.epoch.Load()
	version, err := p.keys.KeySetVersion(ctx, workspaceID, svc.Name)
	if err != nil {
		return nil, err
	}
	return p.buildKeySet(ctx, ck, workspaceID, svc, now, epoch, version)
}

// buildKeySet reads the keys and caches their set under epoch and
// version, both read before the keys so that a change made meanwhile
// shows as a newer version or epoch at the next refresh.
func (p *Proxy) buildKeySet(ctx context.Context, ck, workspaceID string, svc *catalog.Service, now time.Time,
	epoch uint64, version int64) (*keySetEntry, error) {
	var cands []routing.Candidate
	enabled := true
	f := apiwallet.KeyFilter{WorkspaceID: workspaceID, Service: svc.Name, Enabled: &enabled, Limit: 500}
	for {
		keys, err := p.keys.FindKeys(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			c := routing.Candidate{ID: k.ID, Tier: string(k.Tier), Priority: k.Priority, Enabled: k.Enabled}
			if k.Tier != apiwallet.TierFree {
				c.PriceMicros = svc.PriceMicros
			}
			switch {
			case k.Metadata.Quota != nil:
				c.Quota = *k.Metadata.Quota
			case k.Tier == apiwallet.TierFree:
				c.Quota = svc.FreeQuota
			}
			cands = append(cands, c)
		}
		if len(keys) < f.Limit {
			break
		}
		f.After = keys[len(keys)-1].ID
	}
	if err := p.used.fill(ctx, p.counter, workspaceID, svc, cands, now); err != nil {
		return nil, err
	}
	e := &keySetEntry{
		ks: p.router.NewKeySet(cands), epoch: epoch, version: version,
		period: periodStart(svc.FreePeriod, now).Unix(), price: svc.PriceMicros, quota: svc.FreeQuota,
	}
	p.keysets.put(ck, e, epoch, now.UnixNano())
	return e, nil
}

// periodStart is the start (UTC) of the quota period containing now.
func periodStart(period string, now time.Time) time.Time {
	now = now.UTC()
	switch period {
	case catalog.PeriodHour:
		return now.Truncate(time.Hour)
	case catalog.PeriodDay:
		return time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	default:
		return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
}
