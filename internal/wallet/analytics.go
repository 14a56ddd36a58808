package wallet

import (
	"time"

	"github.com/apikeywallet/apiwallet/internal/analytics"
	"github.com/apikeywallet/apiwallet/internal/catalog"
	"github.com/apikeywallet/apiwallet/internal/routing"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
)

// catalogServices shows the catalog to analytics.
type catalogServices struct{ c *catalog.Catalog }

func (s catalogServices) Service(name string) (analytics.ServiceInfo, bool) {
	svc, ok := s.c.Get(name)
	if !ok {
		return analytics.ServiceInfo{}, false
	}
	return analytics.ServiceInfo{DisplayName: svc.DisplayName, PriceMicros: svc.PriceMicros,
		FreeQuota: svc.FreeQuota, FreePeriod: svc.FreePeriod}, true
}

// routerStates shows this instance's routing state of each key to
// analytics: cooldowns and quarantines as the proxy here last saw them.
type routerStates struct{ r *routing.Router }

func (s routerStates) KeyState(keyID string, now time.Time) analytics.KeyState {
	st := s.r.Status(keyID, now)
	switch {
	case st.Quarantined != "":
		return analytics.KeyState{Status: "quarantined", Reason: string(st.Quarantined)}
	case !st.CooldownUntil.IsZero():
		return analytics.KeyState{Status: "cooldown", Until: st.CooldownUntil.UTC(), Reason: "upstream asked to slow down"}
	}
	return analytics.KeyState{}
}

// newAnalytics reads the usage rollups from read (the primary, or its
// read replica) and the keys, tokens and members that label them from db,
// so that a key made a moment ago already has its name.
func newAnalytics(db, read *sqldb.DB, cat *catalog.Catalog, router *routing.Router, w *Wallet) *analytics.Service {
	return &analytics.Service{Store: read, Keys: db, Tokens: db, Members: db, Services: catalogServices{cat},
		States: routerStates{router}, Plans: w.Billing, Fleet: read}
}
