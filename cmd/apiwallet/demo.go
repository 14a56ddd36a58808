package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/auth"
	"github.com/apikeywallet/apiwallet/internal/progress"
	"github.com/apikeywallet/apiwallet/internal/wallet"
)

// demoWorkspaceEmail is the account apiwallet seed --demo fills.
const demoWorkspaceEmail = "demo-usage@apiwallet.local"

// demoKey is one key of the demo workspace. The secrets are random and
// reach no provider: the demo's usage is generated, not proxied.
type demoKey struct {
	service, prefix string
	tier            apiwallet.KeyTier
	quota           int64 // per month; 0: none recorded
	label           string
	quarantined     bool
	id              string
	price           int64
}

// seedDemo creates a demo account whose workspace holds free and paid
// keys of several services, tokens for two apps, and a month of usage
// with daily and hourly patterns, errors, 429s and a quarantined key,
// written through InsertUsage, so that the dashboard makes sense at
// first sight. It prints the login.
func seedDemo(ctx context.Context, stdout, stderr io.Writer, environ []string) error {
	a, err := openApp(ctx, stderr, environ)
	if err != nil {
		return err
	}
	defer a.close()
	if _, err := a.db.FindUserByEmail(ctx, demoWorkspaceEmail); err == nil {
		fmt.Fprintf(stdout, "demo account %s already exists; delete it to seed again\n", demoWorkspaceEmail)
		return nil
	} else if apiwallet.ErrorCode(err) != apiwallet.ENOTFOUND {
		return err
	}
	w, err := wallet.New(ctx, wallet.Deps{Config: a.cfg, DB: a.db, Log: a.log, Limiter: a.limiter, Quota: a.quota})
	if err != nil {
		return err
	}
	defer w.Close(context.Background())

	b := make([]byte, 12)
	_, _ = rand.Read(b)
	password := base64.RawURLEncoding.EncodeToString(b)
	u, err := w.Auth.CreateUser(ctx, demoWorkspaceEmail, password, "Dana Demo", apiwallet.RoleUser)
	if err != nil {
		return describe(err)
	}
	m, err := w.Auth.Workspace(ctx, u, "")
	if err != nil {
		return err
	}
	ws := m.Workspace.ID
	keys := []*demoKey{
		{service: "stripe", prefix: "sk_test_", tier: apiwallet.TierPaid, label: "Stripe live account"},
		{service: "openai", prefix: "sk-proj-", tier: apiwallet.TierFree, quota: 20_000, label: "OpenAI trial credits"},
		{service: "openai", prefix: "sk-proj-", tier: apiwallet.TierPaid, label: "OpenAI production"},
		{service: "openweather", prefix: "", tier: apiwallet.TierFree, label: "OpenWeather free"},
		{service: "openweather", prefix: "", tier: apiwallet.TierPaid, label: "OpenWeather One Call"},
		{service: "googlemaps", prefix: "AIza", tier: apiwallet.TierFree, label: "Maps free allowance"},
		{service: "googlemaps", prefix: "AIza", tier: apiwallet.TierPaid, label: "Maps billing account"},
		{service: "anthropic", prefix: "sk-ant-", tier: apiwallet.TierPaid, label: "Anthropic (old)", quarantined: true},
	}
	for i, k := range keys {
		sb := make([]byte, 16)
		_, _ = rand.Read(sb)
		meta := apiwallet.KeyMetadata{Description: k.label}
		if k.quota > 0 {
			q := k.quota
			meta.Quota = &q
		}
		created, err := w.Keys.CreateKey(ctx, apiwallet.KeyCreate{WorkspaceID: ws, Secret: k.prefix + "demo" + hex.EncodeToString(sb),
			Service: k.service, Tier: k.tier, Metadata: meta, Label: k.label, Priority: i, Enabled: true, CreatedBy: u.ID},
			apiwallet.NewAuditEvent(ctx, ws, apiwallet.ActorUser, u.ID, "key.create", "key", ""))
		if err != nil {
			return describe(err)
		}
		k.id = created.ID
		if svc, ok := w.Catalog.Get(k.service); ok {
			k.price = svc.PriceMicros
		}
		if k.quarantined {
			// The health state the proxy would have left after the
			// upstream refused the key.
			if _, err := a.db.SQL().ExecContext(ctx, `UPDATE api_keys SET status = 'quarantined' WHERE id = $1`, k.id); err != nil {
				return err
			}
		}
	}
	type app struct {
		token    string
		services []string
		weight   float64
	}
	apps := []*app{{services: []string{"stripe", "openai", "anthropic"}, weight: 0.55}, {services: []string{"openweather", "googlemaps"}, weight: 0.35}}
	for i, name := range []string{"checkout-service", "delivery-tracker"} {
		t, _, err := w.Auth.CreateToken(ctx, m, auth.TokenInput{Name: name, Services: apps[i].services})
		if err != nil {
			return describe(err)
		}
		apps[i].token = t.ID
	}
	bar := progress.New(stdout, 30*24, "generating a month of usage")
	n, err := demoUsage(ctx, a, ws, u.ID, keys, []string{apps[0].token, apps[1].token}, time.Now().UTC(), bar)
	if err != nil {
		bar.Abandon()
		return err
	}
	bar.Finish()
	fmt.Fprintf(stdout, "created demo account %s (%s) with %d keys, 2 tokens and %d calls over the last 30 days\n",
		demoWorkspaceEmail, u.ID, len(keys), n)
	fmt.Fprintf(stdout, "log in with: %s\npassword: %s\n", demoWorkspaceEmail, password)
	return nil
}

var demoEndpoints = map[string][]string{
	"stripe":      {"POST /v1/charges", "POST /v1/payment_intents", "GET /v1/customers/{id}", "POST /v1/refunds"},
	"openai":      {"POST /v1/chat/completions", "POST /v1/embeddings", "GET /v1/models"},
	"anthropic":   {"POST /v1/messages"},
	"openweather": {"GET /data/3.0/onecall", "GET /data/2.5/weather"},
	"googlemaps":  {"GET /maps/api/geocode/json", "GET /maps/api/directions/json", "GET /maps/api/distancematrix/json"},
}

// demoLatency is each service's typical answer time in milliseconds.
var demoLatency = map[string]float64{"stripe": 280, "openai": 900, "anthropic": 1100, "openweather": 120, "googlemaps": 95}

// demoUsage writes about 120,000 calls over the 30 days before now and
// returns how many, counting each hour done on bar.
func demoUsage(ctx context.Context, a *app, ws, userID string, keys []*demoKey, tokens []string, now time.Time, bar *progress.Bar) (int, error) {
	rng := mrand.New(mrand.NewPCG(uint64(now.UnixNano()), 2026))
	byService := map[string][]*demoKey{}
	for _, k := range keys {
		byService[k.service] = append(byService[k.service], k)
	}
	services := []struct {
		name   string
		weight float64
		token  int // index into tokens; -1 for calls from the dashboard user
	}{{"stripe", 0.25, 0}, {"openai", 0.3, 0}, {"anthropic", 0.02, 0}, {"openweather", 0.23, 1}, {"googlemaps", 0.2, 1}}
	start := now.Add(-30 * 24 * time.Hour).Truncate(time.Hour)
	used := map[string]int64{} // free calls per key in its period
	period := map[string]string{}
	var batch []apiwallet.Usage
	total := 0
	lastUsed := map[string]time.Time{} // what the proxy's key-use flusher would have written
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := a.db.InsertUsage(ctx, batch)
		total += len(batch)
		batch = batch[:0]
		return err
	}
	for h := start; h.Before(now); h = h.Add(time.Hour) {
		bar.Add(1)
		// Busy on weekday working hours (UTC), quiet at night and at
		// weekends, and growing over the month.
		hod := h.Hour()
		rate := 80 + 400*math.Exp(-math.Pow(float64(hod-14)/4, 2))
		if wd := h.Weekday(); wd == time.Saturday || wd == time.Sunday {
			rate *= 0.35
		}
		rate *= 0.8 + 0.4*float64(h.Sub(start))/float64(30*24*time.Hour)
		calls := int(rate + rng.Float64()*20)
		for range calls {
			r := rng.Float64()
			si := 0
			for acc := 0.0; si < len(services)-1; si++ {
				acc += services[si].weight
				if r < acc {
					break
				}
			}
			svc := services[si]
			at := h.Add(time.Duration(rng.Int64N(int64(time.Hour))))
			if at.After(now) {
				continue
			}
			u := apiwallet.Usage{ID: apiwallet.NewID("use"), WorkspaceID: ws, Service: svc.name, UserID: userID,
				Method: "POST", Attempts: 1, Strategy: "cost", Premium: true, CreatedAt: at,
				BytesIn: int64(200 + rng.IntN(2000)), BytesOut: int64(500 + rng.IntN(20_000)),
				OverheadMicros: int64(150 + rng.ExpFloat64()*400)}
			if rng.Float64() < 0.85 {
				u.TokenID = tokens[svc.token]
			}
			eps := demoEndpoints[svc.name]
			u.Endpoint = eps[rng.IntN(len(eps))]
			if len(u.Endpoint) > 3 && u.Endpoint[:3] == "GET" {
				u.Method = "GET"
			}
			// Free key first while its quota lasts, then the paid key.
			var key *demoKey
			for _, k := range byService[svc.name] {
				if k.tier == apiwallet.TierFree {
					q, per := demoQuota(k)
					pk := per + ":" + periodOf(at, per)
					if period[k.id] != pk {
						period[k.id], used[k.id] = pk, 0
					}
					if used[k.id] < q {
						used[k.id]++
						key = k
						break
					}
					continue
				}
				key = k
				break
			}
			lat := demoLatency[svc.name] * math.Exp(rng.NormFloat64()*0.5)
			u.LatencyMicros = int64(lat*1000) + u.OverheadMicros
			u.Status = 200
			x := rng.Float64()
			switch {
			case key == nil:
				u.Status, u.Failed = 503, true
			case key.quarantined && at.After(now.Add(-5*24*time.Hour)):
				u.Status, u.Failed = 401, false
			case key.tier == apiwallet.TierFree && x < 0.03:
				u.Status, u.Failed = 429, true
			case x < 0.045:
				u.Status = []int{400, 404, 402}[rng.IntN(3)]
			case x < 0.055:
				u.Status, u.Failed = 500+rng.IntN(4), true
			case x < 0.058:
				u.Status, u.Failed = 502, true
				u.Attempted = key.id + ":network_error"
			case x < 0.06:
				u.Status, u.Failed, u.Unreached, key = 503, true, true, nil
			}
			if key != nil {
				u.KeyID = key.id
				if u.Status < 500 && u.Status != 429 && at.After(lastUsed[key.id]) {
					lastUsed[key.id] = at
				}
				if u.Attempted == "" {
					u.Attempted = fmt.Sprintf("%s:%d", key.id, u.Status)
				}
				if !u.Failed {
					if key.tier == apiwallet.TierFree {
						u.SavedMicros = key.price
					} else {
						u.CostMicros = key.price
					}
				}
			}
			if u.Unreached || u.Status == 503 {
				u.LatencyMicros = u.OverheadMicros
			}
			batch = append(batch, u)
			if len(batch) == 2000 {
				if err := flush(); err != nil {
					return total, err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return total, err
	}
	for id, at := range lastUsed {
		if err := a.db.TouchKey(ctx, ws, id, at); err != nil {
			return total, err
		}
	}
	return total, nil
}

// demoQuota is a free key's quota and period: its own (per month), or
// the catalog's free allowance.
func demoQuota(k *demoKey) (int64, string) {
	if k.quota > 0 {
		return k.quota, "month"
	}
	switch k.service {
	case "openweather":
		return 1000, "day"
	case "googlemaps":
		return 10_000, "month"
	}
	return 0, "month"
}

func periodOf(t time.Time, per string) string {
	if per == "day" {
		return t.Format(time.DateOnly)
	}
	return t.Format("2006-01")
}
