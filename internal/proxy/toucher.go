package proxy

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// toucher records key use off the hot path: each key's last-used time and
// one audit event per key and minute with the number of calls.
type toucher struct {
	p    *Proxy
	uses sync.Map // [2]string{workspace, key} → *atomic.Int64 calls since the last flush
	stop chan struct{}
	done chan struct{}
}

func newToucher(p *Proxy) *toucher {
	t := &toucher{p: p, stop: make(chan struct{}), done: make(chan struct{})}
	go t.loop()
	return t
}

func (t *toucher) use(workspaceID, keyID string) {
	k := [2]string{workspaceID, keyID}
	v, ok := t.uses.Load(k)
	if !ok {
		v, _ = t.uses.LoadOrStore(k, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

func (t *toucher) loop() {
	defer close(t.done)
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			t.flush()
		case <-t.stop:
			t.flush()
			return
		}
	}
}

func (t *toucher) flush() {
	uses := map[[2]string]int64{}
	t.uses.Range(func(k, v any) bool {
		if n := v.(*atomic.Int64).Swap(0); n > 0 {
			uses[k.([2]string)] = n
		} else {
			t.uses.Delete(k) // idle for a whole minute
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := t.p.now()
	for k, n := range uses {
		if err := t.p.keys.TouchKey(ctx, k[0], k[1], now); err != nil && apiwallet.ErrorCode(err) != apiwallet.ENOTFOUND {
			t.p.log.Warn("proxy: touch key", "key_id", k[1], "err", err)
		}
		if t.p.audit != nil {
			ev := apiwallet.NewAuditEvent(ctx, k[0], apiwallet.ActorSystem, "proxy", "key.use", "key", k[1])
			ev.Details = map[string]string{"calls": strconv.FormatInt(n, 10)}
			if err := t.p.audit.AppendAudit(ctx, ev); err != nil {
				t.p.log.Warn("proxy: audit key use", "key_id", k[1], "err", err)
			}
		}
	}
}

func (t *toucher) close() {
	select {
	case <-t.stop:
	default:
		close(t.stop)
	}
	<-t.done
}
