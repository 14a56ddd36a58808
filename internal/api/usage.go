package api

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/analytics"
)

var errNoAnalytics = apiwallet.Errorf(apiwallet.EUNAVAILABLE, "analytics is not configured")

type percentilesJSON struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
}

type errorsJSON struct {
	Client  int64 `json:"client"`
	Server  int64 `json:"server"`
	Network int64 `json:"network"`
	Refused int64 `json:"refused"`
}

type figuresJSON struct {
	Calls          int64           `json:"calls"`
	Successes      int64           `json:"successes"`
	Errors         errorsJSON      `json:"errors"`
	RateLimited    int64           `json:"rateLimited"`
	LatencyMs      percentilesJSON `json:"latencyMs"`
	AvgLatencyMs   float64         `json:"avgLatencyMs"`
	OverheadMs     percentilesJSON `json:"overheadMs"`
	BytesIn        int64           `json:"bytesIn"`
	BytesOut       int64           `json:"bytesOut"`
	CostMicros     int64           `json:"costMicros"`
	SavingsMicros  int64           `json:"savingsMicros"`
	SavingsPercent float64         `json:"savingsPercent"`
}

func toFiguresJSON(f analytics.Figures) figuresJSON {
	return figuresJSON{Calls: f.Calls, Successes: f.Successes,
		Errors:      errorsJSON{f.Client, f.Server, f.Network, f.Refused},
		RateLimited: f.RateLimited, LatencyMs: percentilesJSON(f.Latency), AvgLatencyMs: f.AvgLatencyMs,
		OverheadMs: percentilesJSON(f.Overhead), BytesIn: f.BytesIn, BytesOut: f.BytesOut,
		CostMicros: f.CostMicros, SavingsMicros: f.SavingsMicros, SavingsPercent: f.SavingsPercent}
}

type usageRowJSON struct {
	Group string `json:"group"`
	Label string `json:"label"`
	figuresJSON
}

type previousJSON struct {
	From   time.Time   `json:"from"`
	To     time.Time   `json:"to"`
	Totals figuresJSON `json:"totals"`
}

type usageJSON struct {
	From     time.Time      `json:"from"`
	To       time.Time      `json:"to"`
	TZ       string         `json:"tz"`
	GroupBy  string         `json:"groupBy"`
	Totals   figuresJSON    `json:"totals"`
	Previous previousJSON   `json:"previous"`
	Rows     []usageRowJSON `json:"rows"`
}

// reportingZone is the time zone a request names (tz), else the
// workspace's reporting time zone, else UTC.
func (s *Server) reportingZone(r *http.Request, p *Principal, v *apiwallet.ValidationError) *time.Location {
	name := r.URL.Query().Get("tz")
	if name == "" && s.Billing != nil {
		if _, st, err := s.Billing.EffectivePlan(r.Context(), p.Membership.Workspace.ID); err == nil {
			name = st.Timezone
		}
	}
	if name == "" {
		return time.UTC
	}
	loc, err := apiwallet.LoadTimezone(name)
	if err != nil {
		v.Add("tz", "must be an IANA time zone name such as Europe/Paris")
		return time.UTC
	}
	return loc
}

// parseBound reads from or to: RFC 3339, or a date YYYY-MM-DD in loc (a
// date "to" includes that whole day).
func parseBound(v *apiwallet.ValidationError, field, s string, loc *time.Location, end bool) time.Time {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC()
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
		if end {
			t = t.AddDate(0, 0, 1)
		}
		return t.UTC()
	}
	v.Add(field, "must be an RFC 3339 time or a date YYYY-MM-DD")
	return time.Time{}
}

// usageRequest reads GET /usage's query. A wallet access token sees only
// its own calls: token_id is forced to it, and naming another is 403.
func (s *Server) usageRequest(r *http.Request, p *Principal) (analytics.Request, error) {
	var v apiwallet.ValidationError
	q := r.URL.Query()
	loc := s.reportingZone(r, p, &v)
	now := s.Now().UTC()
	req := analytics.Request{WorkspaceID: p.Membership.Workspace.ID, Loc: loc, GroupBy: q.Get("group_by"),
		Service: q.Get("service"), KeyID: q.Get("key_id"), TokenID: q.Get("token_id")}
	if req.GroupBy == "" {
		req.GroupBy = analytics.GroupService
	}
	local := now.In(loc)
	req.From = time.Date(local.Year(), local.Month(), 1, 0, 0, 0, 0, loc).UTC()
	req.To = now
	if f := q.Get("from"); f != "" {
		req.From = parseBound(&v, "from", f, loc, false)
	}
	if t := q.Get("to"); t != "" {
		req.To = parseBound(&v, "to", t, loc, true)
	}
	if p.Token != nil {
		if req.TokenID != "" && req.TokenID != p.Token.ID {
			return req, apiwallet.Errorf(apiwallet.EFORBIDDEN, "a wallet access token may read only its own usage")
		}
		req.TokenID = p.Token.ID
	}
	if err := v.Err(); err != nil {
		return req, err
	}
	return req, req.Validate()
}

// getUsage answers GET /usage, as JSON or CSV.
func (s *Server) getUsage(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if s.Analytics == nil {
		return errNoAnalytics
	}
	req, err := s.usageRequest(r, p)
	if err != nil {
		return err
	}
	rep, err := s.Analytics.Report(r.Context(), req)
	if err != nil {
		return err
	}
	w.Header().Add("Vary", "Accept")
	w.Header().Set("Cache-Control", "private, no-store")
	csvOut, err := wantsCSV(r)
	if err != nil {
		return err
	}
	if csvOut {
		return writeUsageCSV(w, rep)
	}
	out := usageJSON{From: rep.From, To: rep.To, TZ: rep.TZ, GroupBy: rep.GroupBy, Totals: toFiguresJSON(rep.Totals),
		Previous: previousJSON{From: rep.PreviousFrom, To: rep.PreviousTo, Totals: toFiguresJSON(rep.Previous)},
		Rows:     make([]usageRowJSON, 0, len(rep.Rows))}
	for _, row := range rep.Rows {
		out.Rows = append(out.Rows, usageRowJSON{Group: row.Group, Label: row.Label, figuresJSON: toFiguresJSON(row.Figures)})
	}
	return writeJSON(w, http.StatusOK, out)
}

var usageCSVHeader = []string{"group", "label", "calls", "successes", "errors_client", "errors_server",
	"errors_network", "errors_refused", "rate_limited", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
	"overhead_p50_ms", "overhead_p95_ms", "overhead_p99_ms", "bytes_in", "bytes_out", "cost_micros",
	"savings_micros", "savings_percent"}

func writeUsageCSV(w http.ResponseWriter, rep *analytics.Report) error {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="usage-`+rep.GroupBy+`.csv"`)
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	_ = cw.Write(usageCSVHeader)
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
	for _, row := range rep.Rows {
		g := row.Figures
		_ = cw.Write([]string{csvText(row.Group), csvText(row.Label), i(g.Calls), i(g.Successes), i(g.Client), i(g.Server),
			i(g.Network), i(g.Refused), i(g.RateLimited), f(g.Latency.P50), f(g.Latency.P95), f(g.Latency.P99),
			f(g.Overhead.P50), f(g.Overhead.P95), f(g.Overhead.P99), i(g.BytesIn), i(g.BytesOut), i(g.CostMicros),
			i(g.SavingsMicros), f(g.SavingsPercent)})
	}
	cw.Flush()
	return nil
}

// getUsageRecommendations answers GET /usage/recommendations.
func (s *Server) getUsageRecommendations(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if s.Analytics == nil {
		return errNoAnalytics
	}
	recs, err := s.Analytics.Recommendations(r.Context(), p.Membership.Workspace.ID)
	if err != nil {
		return err
	}
	type recJSON struct {
		Kind          string         `json:"kind"`
		Severity      string         `json:"severity"`
		Title         string         `json:"title"`
		Detail        string         `json:"detail"`
		SavingsMicros int64          `json:"savingsMicros"`
		KeyID         string         `json:"keyId,omitempty"`
		Service       string         `json:"service,omitempty"`
		Figures       map[string]any `json:"figures"`
	}
	out := make([]recJSON, 0, len(recs))
	for _, rc := range recs {
		if rc.Figures == nil {
			rc.Figures = map[string]any{}
		}
		out = append(out, recJSON{rc.Kind, rc.Severity, rc.Title, rc.Detail, rc.SavingsMicros, rc.KeyID, rc.Service, rc.Figures})
	}
	return writeJSON(w, http.StatusOK, map[string]any{"recommendations": out})
}

// getUsageKeys answers GET /usage/keys: key health.
func (s *Server) getUsageKeys(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if s.Analytics == nil {
		return errNoAnalytics
	}
	h, err := s.Analytics.KeyHealth(r.Context(), p.Membership.Workspace.ID)
	if err != nil {
		return err
	}
	type keyJSON struct {
		ID              string    `json:"id"`
		Service         string    `json:"service"`
		Tier            string    `json:"tier"`
		Masked          string    `json:"masked"`
		Label           string    `json:"label"`
		Status          string    `json:"status"`
		Until           time.Time `json:"until,omitzero"`
		Reason          string    `json:"reason,omitempty"`
		FreeQuota       int64     `json:"freeQuota"`
		FreeUsed        int64     `json:"freeUsed"`
		FreeLeft        int64     `json:"freeLeft"`
		FreePeriodEnd   time.Time `json:"freePeriodEnd,omitzero"`
		Calls           int64     `json:"calls"`
		ErrorRate       float64   `json:"errorRate"`
		RateLimitedRate float64   `json:"rateLimitedRate"`
		LastUsedAt      time.Time `json:"lastUsedAt,omitzero"`
	}
	keys := make([]keyJSON, 0, len(h.Keys))
	for _, k := range h.Keys {
		keys = append(keys, keyJSON{ID: k.Key.ID, Service: k.Key.Service, Tier: string(k.Key.Tier), Masked: k.Key.Masked,
			Label: analytics.KeyLabel(k.Key), Status: k.Status, Until: k.Until, Reason: k.Reason,
			FreeQuota: k.FreeQuota, FreeUsed: k.FreeUsed, FreeLeft: k.FreeLeft, FreePeriodEnd: k.FreePeriodEnd,
			Calls: k.Calls, ErrorRate: k.ErrorRate, RateLimitedRate: k.RateLimited, LastUsedAt: k.LastUsedAt})
	}
	return writeJSON(w, http.StatusOK, map[string]any{"keys": keys, "summary": map[string]any{
		"registered": h.Summary.Registered, "active": h.Summary.Active, "utilisation": h.Summary.Utilisation,
		"successRate": h.Summary.SuccessRate, "avgResponseMs": h.Summary.AvgResponseMs}})
}

// liveInterval is how often GET /usage/live looks for new calls.
const liveInterval = time.Second

// getUsageLive streams the workspace's calls as Server-Sent Events: each
// second with calls, their count, errors, cost and savings by service.
// It reads the rollup (which the recorder fills a moment after each
// call), so events trail the calls by the recorder's flush interval.
func (s *Server) getUsageLive(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if s.Analytics == nil {
		return errNoAnalytics
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		return apiwallet.Errorf(apiwallet.EUNAVAILABLE, "streaming is not supported here")
	}
	rc := http.NewResponseController(w)
	ctx := r.Context()
	q := apiwallet.UsageQuery{WorkspaceID: p.Membership.Workspace.ID, From: s.Now().UTC().Truncate(time.Hour),
		GroupBy: apiwallet.DimService}
	if p.Token != nil {
		q.TokenID = p.Token.ID
	}
	read := func() (map[string]apiwallet.UsageFigures, error) {
		q.To = s.Now().UTC().Add(time.Hour)
		groups, err := s.Analytics.Store.UsageGroups(ctx, q)
		if err != nil {
			return nil, err
		}
		m := make(map[string]apiwallet.UsageFigures, len(groups))
		for _, g := range groups {
			m[g.Group] = g.UsageFigures
		}
		return m, nil
	}
	last, err := read()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprint(w, ": connected\n\n")
	fl.Flush()
	tick := time.NewTicker(liveInterval)
	defer tick.Stop()
	quiet := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		cur, err := read()
		if err != nil {
			s.log.WarnContext(ctx, "usage live: read failed", "err", err)
			continue
		}
		type event struct {
			At            time.Time        `json:"at"`
			Calls         int64            `json:"calls"`
			Errors        int64            `json:"errors"`
			CostMicros    int64            `json:"costMicros"`
			SavingsMicros int64            `json:"savingsMicros"`
			ByService     map[string]int64 `json:"byService"`
		}
		ev := event{At: s.Now().UTC().Truncate(time.Second), ByService: map[string]int64{}}
		for svc, f := range cur {
			prev := last[svc]
			if d := f.Calls - prev.Calls; d > 0 {
				ev.Calls += d
				ev.ByService[svc] = d
				ev.Errors += (f.Calls - f.Successes) - (prev.Calls - prev.Successes)
				ev.CostMicros += f.CostMicros - prev.CostMicros
				ev.SavingsMicros += f.SavedMicros - prev.SavedMicros
			}
		}
		last = cur
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if ev.Calls > 0 {
			quiet = 0
			b, _ := json.Marshal(ev)
			if _, err := fmt.Fprintf(w, "event: usage\ndata: %s\n\n", b); err != nil {
				return nil
			}
		} else if quiet++; quiet%15 == 0 {
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return nil
			}
		}
		fl.Flush()
	}
}

// listPublicPlans answers GET /plans for anyone: the active plans as
// they apply now, read from the plans data on every request.
func (s *Server) listPublicPlans(w http.ResponseWriter, r *http.Request) error {
	if s.Billing == nil {
		return errNoBilling
	}
	plans, err := s.Billing.PublicPlans(r.Context())
	if err != nil {
		return err
	}
	type planJSON struct {
		ID            string `json:"id"`
		Name          string `json:"name"`
		PriceMicros   int64  `json:"priceMicros"`
		IncludedCalls int64  `json:"includedCalls"`
		OverageMicros int64  `json:"overageMicros"`
		HardStop      bool   `json:"hardStop"`
		Custom        bool   `json:"custom"`
	}
	out := make([]planJSON, 0, len(plans))
	var premium, addon int64
	for _, p := range plans {
		out = append(out, planJSON{ID: p.ID, Name: p.Name, PriceMicros: p.PriceMicros, IncludedCalls: p.IncludedCalls,
			OverageMicros: p.OverageMicrosPerCall, HardStop: p.HardStop, Custom: p.ID == "custom"})
		premium = max(premium, p.PremiumMicrosPerCall)
		addon = max(addon, p.AnalyticsAddonMicros)
	}
	w.Header().Set("Cache-Control", "no-cache")
	return writeJSON(w, http.StatusOK, map[string]any{"plans": out, "premiumRoutingMicros": premium, "analyticsAddonMicros": addon})
}
