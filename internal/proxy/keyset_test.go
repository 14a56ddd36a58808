package proxy

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/catalog"
	"github.com/apikeywallet/apiwallet/internal/routing"
)

// slowKeys serves one key; while gate is set, FindKeys waits for it. Its
// set version is version (0, the default, makes every reload read the
// keys).
type slowKeys struct {
	finds    atomic.Int64
	version  atomic.Int64
	versions atomic.Int64 // KeySetVersion calls
	mu       sync.Mutex
	gate     chan struct{}
}

func (k *slowKeys) KeySetVersion(context.Context, string, string) (int64, error) {
	k.versions.Add(1)
	return k.version.Load(), nil
}

func (k *slowKeys) FindKeys(ctx context.Context, f apiwallet.KeyFilter) ([]*apiwallet.Key, error) {
	k.finds.Add(1)
	k.mu.Lock()
	gate := k.gate
	k.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return []*apiwallet.Key{{ID: "key_1", WorkspaceID: f.WorkspaceID, Service: f.Service, Tier: apiwallet.TierPaid, Enabled: true}}, nil
}

func (k *slowKeys) Reveal(context.Context, string, string) ([]byte, error) { return nil, nil }

func (k *slowKeys) TouchKey(context.Context, string, string, time.Time) error { return nil }

func (k *slowKeys) block() chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.gate = make(chan struct{})
	return k.gate
}

// A key set in the last fifth of its TTL is reloaded in the background:
// calls keep the cached set and never wait for the load. An invalidation
// still makes the next call load the set before it goes on.
func TestKeySetReloadsAhead(t *testing.T) {
	keys := &slowKeys{}
	var nowNanos atomic.Int64
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	nowNanos.Store(t0.UnixNano())
	at := func(d time.Duration) { nowNanos.Store(t0.Add(d).UnixNano()) }
	p := New(Deps{
		Router: routing.NewRouter(), Keys: keys, Log: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return time.Unix(0, nowNanos.Load()).UTC() },
	}, Options{CacheTTL: 10 * time.Second})
	defer p.Close()
	svc := &catalog.Service{Name: "stripe"}
	ctx := context.Background()

	get := func() *routing.KeySet {
		t.Helper()
		type result struct {
			ks  *routing.KeySet
			err error
		}
		done := make(chan result, 1)
		go func() {
			ks, err := p.keySet(ctx, "wsp_1", svc)
			done <- result{ks, err}
		}()
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatal(r.err)
			}
			return r.ks
		case <-time.After(5 * time.Second):
			t.Fatal("keySet waited for a load")
			return nil
		}
	}
	waitFinds := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for keys.finds.Load() < n && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if got := keys.finds.Load(); got != n {
			t.Fatalf("FindKeys called %d times, want %d", got, n)
		}
	}

	first := get()
	at(5 * time.Second)
	if get() != first || keys.finds.Load() != 1 {
		t.Fatalf("a fresh set was not served from the cache (%d loads)", keys.finds.Load())
	}

	// Aging: the cached set is served at once while one reload waits.
	gate := keys.block()
	at(9 * time.Second)
	for range 20 {
		if get() != first {
			t.Fatal("an aging set was replaced before its reload finished")
		}
	}
	waitFinds(2)
	close(gate)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if e, _ := p.keysets.get("wsp_1\x00stripe", nowNanos.Load()); e != nil && e.ks != first {
			break
		}
		time.Sleep(time.Millisecond)
	}
	keys.block() // later loads would wait again: none is expected until the bump

	// The reload, stamped at 9s, outlives the first set's expiry at 10s.
	at(12 * time.Second)
	second := get()
	if second == first || keys.finds.Load() != 2 {
		t.Fatalf("after the reload: same set %v, %d loads; want a new set from 2 loads", second == first, keys.finds.Load())
	}

	// An invalidation is not served stale: the next call waits for a load.
	p.Epoch().Bump()
	done := make(chan *routing.KeySet, 1)
	go func() {
		ks, _ := p.keySet(ctx, "wsp_1", svc)
		done <- ks
	}()
	waitFinds(3)
	select {
	case <-done:
		t.Fatal("a call after an invalidation went on without loading the set")
	case <-time.After(50 * time.Millisecond):
	}
	keys.mu.Lock()
	close(keys.gate)
	keys.gate = nil
	keys.mu.Unlock()
	if third := <-done; third == nil || third == second {
		t.Fatal("the call after an invalidation did not get a newly loaded set")
	}
}

// A refresh that finds the keys unchanged keeps the set, and its live
// counts, without reading the keys; a changed version, a new quota period,
// an edited service or an invalidation reads them again. An expired set is
// checked the same way before it is read again.
func TestKeySetKeptWhileUnchanged(t *testing.T) {
	keys := &slowKeys{}
	keys.version.Store(7)
	var nowNanos atomic.Int64
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) { nowNanos.Store(t0.Add(d).UnixNano()) }
	at(0)
	p := New(Deps{
		Router: routing.NewRouter(), Keys: keys, Log: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return time.Unix(0, nowNanos.Load()).UTC() },
	}, Options{CacheTTL: 10 * time.Second})
	defer p.Close()
	svc := &catalog.Service{Name: "stripe", PriceMicros: 100, FreeQuota: 5, FreePeriod: catalog.PeriodHour}
	ctx := context.Background()
	get := func() *routing.KeySet {
		t.Helper()
		ks, err := p.keySet(ctx, "wsp_1", svc)
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	// settle waits until the background refresh started at the last get
	// has put its result.
	settle := func() {
		t.Helper()
		if _, err, _ := p.loads.Do("ksr\x00wsp_1\x00stripe", func() (any, error) { return nil, nil }); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if _, _, aging := p.keysets.lookup("wsp_1\x00stripe", nowNanos.Load()); !aging {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	want := func(what string, finds int64) {
		t.Helper()
		if got := keys.finds.Load(); got != finds {
			t.Fatalf("%s: %d key reads, want %d", what, got, finds)
		}
	}

	first := get()
	want("first load", 1)

	// Aging, unchanged: the same set is renewed for another TTL.
	at(9 * time.Second)
	get()
	settle()
	want("refresh of an unchanged set", 1)
	at(15 * time.Second) // past the first expiry, within the renewed one
	if get() != first || keys.versions.Load() != 2 {
		t.Fatalf("renewed set not kept (%d version reads)", keys.versions.Load())
	}

	// Expired long ago, unchanged: checked, not read.
	at(5 * time.Minute)
	if get() != first {
		t.Fatal("an expired but unchanged set was not kept")
	}
	want("expired unchanged set", 1)

	// A change of the keys is read.
	keys.version.Store(8)
	at(5*time.Minute + 9*time.Second)
	get()
	settle()
	want("refresh after a change", 2)
	second := get()
	if second == first {
		t.Fatal("a changed set was kept")
	}

	// A new quota period starts the counts again: read.
	at(time.Hour + time.Second)
	if get() == second {
		t.Fatal("a set was kept into a new quota period")
	}
	want("new quota period", 3)

	// An edited service prices the keys again: read.
	at(time.Hour + 20*time.Second)
	svc = &catalog.Service{Name: "stripe", PriceMicros: 200, FreeQuota: 5, FreePeriod: catalog.PeriodHour}
	get()
	settle()
	want("edited service", 4)

	// An invalidation is never answered from the old set.
	p.Epoch().Bump()
	get()
	want("after an invalidation", 5)

	// Without a version (0) every reload reads.
	keys.version.Store(0)
	at(time.Hour + 29*time.Second)
	get()
	settle()
	want("refresh without a version", 6)
}
