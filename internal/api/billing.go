package api

import (
	"encoding/csv"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/analytics"
	"github.com/apikeywallet/apiwallet/internal/billing"
)

// errNoBilling answers billing routes on a server wired without billing.
var errNoBilling = apiwallet.Errorf(apiwallet.EUNAVAILABLE, "billing is not configured on this server")

// planJSON is a plan with its prices both exact (micros) and as dollars.
type planJSON struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	PriceMicros   int64  `json:"priceMicros"`
	Price         string `json:"price"`
	IncludedCalls int64  `json:"includedCalls"`
	// IncludedCallsFrom names the setting that overrides the stored
	// included calls ("DEFAULT_FREE_QUOTA"), if one does.
	IncludedCallsFrom    string    `json:"includedCallsFrom,omitempty"`
	HardStop             bool      `json:"hardStop"`
	RatePerMinute        int       `json:"ratePerMinute"`
	OverageMicrosPerCall int64     `json:"overageMicrosPerCall"`
	OveragePerCall       string    `json:"overagePerCall"`
	PremiumMicrosPerCall int64     `json:"premiumMicrosPerCall"`
	PremiumPerCall       string    `json:"premiumPerCall"`
	AnalyticsAddonMicros int64     `json:"analyticsAddonMicros"`
	AnalyticsAddon       string    `json:"analyticsAddon"`
	Active               bool      `json:"active"`
	CreatedAt            time.Time `json:"createdAt"`
	UpdatedAt            time.Time `json:"updatedAt"`
}

func (s *Server) toPlanJSON(p *apiwallet.Plan) planJSON {
	out := planJSON{
		ID: p.ID, Name: p.Name, PriceMicros: p.PriceMicros, Price: billing.Dollars(p.PriceMicros),
		IncludedCalls: p.IncludedCalls, HardStop: p.HardStop, RatePerMinute: p.RatePerMinute,
		OverageMicrosPerCall: p.OverageMicrosPerCall, OveragePerCall: billing.Dollars(p.OverageMicrosPerCall),
		PremiumMicrosPerCall: p.PremiumMicrosPerCall, PremiumPerCall: billing.Dollars(p.PremiumMicrosPerCall),
		AnalyticsAddonMicros: p.AnalyticsAddonMicros, AnalyticsAddon: billing.Dollars(p.AnalyticsAddonMicros),
		Active: p.Active, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
	if _, ok := s.Billing.FreeQuotaOverride(); ok && p.ID == apiwallet.PlanFree {
		out.IncludedCallsFrom = "DEFAULT_FREE_QUOTA"
	}
	return out
}

type billingSettingsJSON struct {
	AnalyticsAddon bool   `json:"analyticsAddon"`
	PremiumRouting bool   `json:"premiumRouting"`
	Timezone       string `json:"timezone"`
}

type periodJSON struct {
	Month string    `json:"month"`
	Start time.Time `json:"start"`
	// End is exclusive: the first instant of the next month.
	End time.Time `json:"end"`
}

func toPeriodJSON(start, end time.Time) periodJSON {
	return periodJSON{Month: start.Format(billing.MonthLayout), Start: start, End: end}
}

// getBillingPlan answers the acting workspace's plan and its use this
// month; any member may read it.
func (s *Server) getBillingPlan(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if s.Billing == nil {
		return errNoBilling
	}
	st, err := s.Billing.Plan(r.Context(), p.Membership.Workspace.ID)
	if err != nil {
		return err
	}
	pr := st.Projected
	type projectedJSON struct {
		Calls         int64  `json:"calls"`
		PremiumCalls  int64  `json:"premiumCalls"`
		OverageCalls  int64  `json:"overageCalls"`
		OverageMicros int64  `json:"overageMicros"`
		Overage       string `json:"overage"`
		PremiumMicros int64  `json:"premiumMicros"`
		Premium       string `json:"premium"`
		TotalMicros   int64  `json:"totalMicros"`
		Total         string `json:"total"`
	}
	return writeJSON(w, http.StatusOK, struct {
		WorkspaceID    string              `json:"workspaceId"`
		Timezone       string              `json:"timezone"`
		Plan           planJSON            `json:"plan"`
		RatePerMinute  int                 `json:"ratePerMinute"`
		Settings       billingSettingsJSON `json:"settings"`
		Period         periodJSON          `json:"period"`
		UsedCalls      int64               `json:"usedCalls"`
		PremiumCalls   int64               `json:"premiumCalls"`
		IncludedCalls  int64               `json:"includedCalls"`
		RemainingCalls int64               `json:"remainingCalls"`
		OverageCalls   int64               `json:"overageCalls"`
		OverageMicros  int64               `json:"overageMicros"`
		Overage        string              `json:"overage"`
		Projected      projectedJSON       `json:"projected"`
	}{
		WorkspaceID: st.WorkspaceID, Timezone: st.Settings.Timezone, Plan: s.toPlanJSON(st.Plan), RatePerMinute: st.RatePerMinute,
		Settings:  billingSettingsJSON{st.Settings.AnalyticsAddon, st.Settings.PremiumRouting, st.Settings.Timezone},
		Period:    toPeriodJSON(st.PeriodStart, st.PeriodEnd),
		UsedCalls: st.UsedCalls, PremiumCalls: st.PremiumCalls, IncludedCalls: st.IncludedCalls,
		RemainingCalls: st.RemainingCalls, OverageCalls: st.OverageCalls, OverageMicros: st.OverageMicros,
		Overage: billing.Dollars(st.OverageMicros),
		Projected: projectedJSON{
			Calls: pr.Calls, PremiumCalls: pr.PremiumCalls, OverageCalls: pr.OverageCalls,
			OverageMicros: pr.OverageMicros, Overage: billing.Dollars(pr.OverageMicros),
			PremiumMicros: pr.PremiumMicros, Premium: billing.Dollars(pr.PremiumMicros),
			TotalMicros: pr.TotalMicros, Total: billing.Dollars(pr.TotalMicros),
		},
	})
}

// getInvoice answers the acting workspace's invoice for a month, as JSON,
// or as CSV when the client prefers text/csv (or asks ?format=csv).
func (s *Server) getInvoice(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if s.Billing == nil {
		return errNoBilling
	}
	asCSV, err := wantsCSV(r)
	if err != nil {
		return err
	}
	inv, err := s.Billing.Invoice(r.Context(), p.Membership.Workspace.ID, r.PathValue("month"))
	if err != nil {
		return err
	}
	w.Header().Add("Vary", "Accept")
	if asCSV {
		return writeInvoiceCSV(w, inv)
	}
	type lineJSON struct {
		Kind            string `json:"kind"`
		Description     string `json:"description"`
		Quantity        int64  `json:"quantity"`
		UnitPriceMicros int64  `json:"unitPriceMicros"`
		UnitPrice       string `json:"unitPrice"`
		AmountMicros    int64  `json:"amountMicros"`
		Amount          string `json:"amount"`
	}
	type usageJSON struct {
		Calls         int64 `json:"calls"`
		IncludedCalls int64 `json:"includedCalls"`
		OverageCalls  int64 `json:"overageCalls"`
		PremiumCalls  int64 `json:"premiumCalls"`
	}
	type planRefJSON struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	lines := make([]lineJSON, 0, len(inv.Lines))
	for _, l := range inv.Lines {
		lines = append(lines, lineJSON{Kind: l.Kind, Description: l.Description, Quantity: l.Quantity,
			UnitPriceMicros: l.UnitPriceMicros, UnitPrice: billing.Dollars(l.UnitPriceMicros),
			AmountMicros: l.AmountMicros, Amount: billing.Dollars(l.AmountMicros)})
	}
	return writeJSON(w, http.StatusOK, struct {
		WorkspaceID    string      `json:"workspaceId"`
		Month          string      `json:"month"`
		Status         string      `json:"status"`
		Period         periodJSON  `json:"period"`
		Currency       string      `json:"currency"`
		Plan           planRefJSON `json:"plan"`
		AnalyticsAddon bool        `json:"analyticsAddon"`
		Usage          usageJSON   `json:"usage"`
		Lines          []lineJSON  `json:"lines"`
		TotalMicros    int64       `json:"totalMicros"`
		Total          string      `json:"total"`
	}{
		WorkspaceID: inv.WorkspaceID, Month: inv.Month, Status: inv.Status,
		Period: toPeriodJSON(inv.PeriodStart, inv.PeriodEnd), Currency: "USD",
		Plan: planRefJSON{inv.Plan.ID, inv.Plan.Name}, AnalyticsAddon: inv.AnalyticsAddon,
		Usage: usageJSON{Calls: inv.Calls, IncludedCalls: inv.IncludedCalls, OverageCalls: inv.OverageCalls,
			PremiumCalls: inv.PremiumCalls},
		Lines: lines, TotalMicros: inv.TotalMicros, Total: billing.Dollars(inv.TotalMicros),
	})
}

// invoiceCSVHeader names the invoice CSV's columns. Amounts are exact
// decimal dollars; amount_micros repeats them as integers for machines.
var invoiceCSVHeader = []string{"kind", "description", "quantity", "unit_price_usd", "amount_usd", "amount_micros"}

// writeInvoiceCSV writes the header, one row per line and a total row.
func writeInvoiceCSV(w http.ResponseWriter, inv *billing.Invoice) error {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", `attachment; filename="invoice-`+inv.Month+`.csv"`)
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	_ = cw.Write(invoiceCSVHeader)
	for _, l := range inv.Lines {
		_ = cw.Write([]string{l.Kind, csvText(l.Description), strconv.FormatInt(l.Quantity, 10),
			billing.Dollars(l.UnitPriceMicros), billing.Dollars(l.AmountMicros), strconv.FormatInt(l.AmountMicros, 10)})
	}
	_ = cw.Write([]string{"total", "Total for " + inv.Month, "", "", billing.Dollars(inv.TotalMicros),
		strconv.FormatInt(inv.TotalMicros, 10)})
	cw.Flush()
	return cw.Error()
}

// csvText keeps a spreadsheet from reading free text (a plan name an
// administrator chose) as a formula.
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// wantsCSV reports whether the client asked for CSV: ?format=csv, or an
// Accept header that prefers text/csv to application/json (by q, then by
// how specifically each is named). JSON is the default.
func wantsCSV(r *http.Request) (bool, error) {
	switch f := r.URL.Query().Get("format"); f {
	case "csv":
		return true, nil
	case "json":
		return false, nil
	case "":
	default:
		return false, &apiwallet.Error{Code: apiwallet.EINVALID, Message: "the request has invalid fields",
			Fields: []apiwallet.FieldError{{Field: "format", Detail: `must be "json" or "csv"`}}}
	}
	csvQ, csvSpec := acceptQ(r, "text", "csv")
	jsonQ, jsonSpec := acceptQ(r, "application", "json")
	if csvQ != jsonQ {
		return csvQ > jsonQ, nil
	}
	return csvQ > 0 && csvSpec > jsonSpec, nil
}

// acceptQ returns the q the Accept header gives type/sub, and how
// specific the range that gave it was (3 exact, 2 type/*, 1 */*, 0 none).
// Without an Accept header everything is acceptable at q=1 via */*.
func acceptQ(r *http.Request, typ, sub string) (q float64, spec int) {
	header := strings.Join(r.Header.Values("Accept"), ",")
	if strings.TrimSpace(header) == "" {
		return 1, 1
	}
	for _, part := range strings.Split(header, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		t, st, _ := strings.Cut(mt, "/")
		s := 0
		switch {
		case t == typ && st == sub:
			s = 3
		case t == typ && st == "*":
			s = 2
		case t == "*" && st == "*":
			s = 1
		default:
			continue
		}
		if s < spec {
			continue
		}
		pq := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f <= 1 {
				pq = f
			}
		}
		q, spec = pq, s
	}
	return q, spec
}

// updateBillingSettings changes the acting workspace's billing settings:
// workspace admins and owners only.
func (s *Server) updateBillingSettings(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if s.Billing == nil {
		return errNoBilling
	}
	var in struct {
		AnalyticsAddon *bool   `json:"analyticsAddon"`
		PremiumRouting *bool   `json:"premiumRouting"`
		Timezone       *string `json:"timezone"`
	}
	if err := decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	b, err := s.Billing.UpdateSettings(r.Context(), p.User, p.Membership,
		apiwallet.BillingSettingsUpdate{AnalyticsAddon: in.AnalyticsAddon, PremiumRouting: in.PremiumRouting, Timezone: in.Timezone})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, billingSettingsJSON{b.Settings.AnalyticsAddon, b.Settings.PremiumRouting, b.Settings.Timezone})
}

// planInput is the body of POST /admin/plans and PUT /admin/plans/{id}.
type planInput struct {
	ID                   *string `json:"id"`
	Name                 *string `json:"name"`
	PriceMicros          *int64  `json:"priceMicros"`
	IncludedCalls        *int64  `json:"includedCalls"`
	HardStop             *bool   `json:"hardStop"`
	RatePerMinute        *int    `json:"ratePerMinute"`
	OverageMicrosPerCall *int64  `json:"overageMicrosPerCall"`
	PremiumMicrosPerCall *int64  `json:"premiumMicrosPerCall"`
	AnalyticsAddonMicros *int64  `json:"analyticsAddonMicros"`
	Active               *bool   `json:"active"`
}

func (in *planInput) update() apiwallet.PlanUpdate {
	return apiwallet.PlanUpdate{Name: in.Name, PriceMicros: in.PriceMicros, IncludedCalls: in.IncludedCalls,
		HardStop: in.HardStop, RatePerMinute: in.RatePerMinute, OverageMicrosPerCall: in.OverageMicrosPerCall,
		PremiumMicrosPerCall: in.PremiumMicrosPerCall, AnalyticsAddonMicros: in.AnalyticsAddonMicros, Active: in.Active}
}

func (s *Server) adminListPlans(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if s.Billing == nil {
		return errNoBilling
	}
	plans, err := s.Billing.Plans(r.Context(), p.User)
	if err != nil {
		return err
	}
	out := struct {
		Plans []planJSON `json:"plans"`
	}{Plans: []planJSON{}}
	for _, pl := range plans {
		out.Plans = append(out.Plans, s.toPlanJSON(pl))
	}
	return writeJSON(w, http.StatusOK, out)
}

// adminCreatePlan adds a plan. id, name, priceMicros and includedCalls are
// required; the per-call prices and the add-on default to DESIGN.md's
// ($0.0001, $0.0002, $5), ratePerMinute to 0 (the operator's default),
// hardStop to false and active to true.
func (s *Server) adminCreatePlan(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if s.Billing == nil {
		return errNoBilling
	}
	if err := requireAdmin(p); err != nil {
		return err
	}
	var in planInput
	if err := decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	var v apiwallet.ValidationError
	for _, req := range []struct {
		field   string
		missing bool
	}{{"id", in.ID == nil}, {"name", in.Name == nil}, {"priceMicros", in.PriceMicros == nil},
		{"includedCalls", in.IncludedCalls == nil}} {
		if req.missing {
			v.Add(req.field, "is required")
		}
	}
	if err := v.Err(); err != nil {
		return err
	}
	pl := &apiwallet.Plan{ID: *in.ID, OverageMicrosPerCall: 100, PremiumMicrosPerCall: 200,
		AnalyticsAddonMicros: 5 * billing.MicrosPerDollar, Active: true}
	in.update().Apply(pl)
	if err := s.Billing.CreatePlan(r.Context(), p.User, pl); err != nil {
		return err
	}
	w.Header().Set("Location", "/admin/plans/"+pl.ID)
	return writeJSON(w, http.StatusCreated, s.toPlanJSON(pl))
}

// adminUpdatePlan changes the fields of plan {id} that the body names;
// the others stay.
func (s *Server) adminUpdatePlan(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if s.Billing == nil {
		return errNoBilling
	}
	if err := requireAdmin(p); err != nil {
		return err
	}
	var in planInput
	if err := decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	if in.ID != nil && *in.ID != r.PathValue("id") {
		return &apiwallet.Error{Code: apiwallet.EINVALID, Message: "the request has invalid fields",
			Fields: []apiwallet.FieldError{{Field: "id", Detail: "must match the id in the path; a plan's id cannot change"}}}
	}
	pl, err := s.Billing.UpdatePlan(r.Context(), p.User, r.PathValue("id"), in.update())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.toPlanJSON(pl))
}

// adminBusinessReport answers MRR, ARPU, active workspaces, churn and the
// plan mix of the current month; see billing.BusinessReport.
func (s *Server) adminBusinessReport(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if s.Billing == nil {
		return errNoBilling
	}
	rep, err := s.Billing.BusinessReport(r.Context(), p.User)
	if err != nil {
		return err
	}
	// BusinessReport refused anyone but an ADMIN above.
	var fleet analytics.FleetFigures
	if s.Analytics != nil {
		if fleet, err = s.Analytics.FleetMonth(r.Context()); err != nil {
			return err
		}
	}
	type mixJSON struct {
		Plan           string `json:"plan"`
		Name           string `json:"name,omitempty"`
		Workspaces     int64  `json:"workspaces"`
		AnalyticsAddon int64  `json:"analyticsAddon"`
		MRRMicros      int64  `json:"mrrMicros"`
		MRR            string `json:"mrr"`
	}
	type churnJSON struct {
		PaidAtMonthStart int64  `json:"paidAtMonthStart"`
		Churned          int64  `json:"churned"`
		Rate             string `json:"rate"`
		RateBasisPoints  int64  `json:"rateBasisPoints"`
	}
	mix := make([]mixJSON, 0, len(rep.PlanMix))
	for _, m := range rep.PlanMix {
		mix = append(mix, mixJSON{Plan: m.Plan, Name: m.Name, Workspaces: m.Workspaces,
			AnalyticsAddon: m.AnalyticsAddon, MRRMicros: m.MRRMicros, MRR: billing.Dollars(m.MRRMicros)})
	}
	return writeJSON(w, http.StatusOK, struct {
		GeneratedAt      time.Time  `json:"generatedAt"`
		Period           periodJSON `json:"period"`
		Currency         string     `json:"currency"`
		MRRMicros        int64      `json:"mrrMicros"`
		MRR              string     `json:"mrr"`
		PlanFeesMicros   int64      `json:"planFeesMicros"`
		AddonFeesMicros  int64      `json:"addonFeesMicros"`
		ARPUMicros       int64      `json:"arpuMicros"`
		ARPU             string     `json:"arpu"`
		Workspaces       int64      `json:"workspaces"`
		PayingWorkspaces int64      `json:"payingWorkspaces"`
		ActiveWorkspaces int64      `json:"activeWorkspaces"`
		Churn            churnJSON  `json:"churn"`
		PlanMix          []mixJSON  `json:"planMix"`
		KeyUtilisation   float64    `json:"keyUtilisation"`
		SuccessRate      float64    `json:"successRate"`
		AvgResponseMs    float64    `json:"avgResponseMs"`
	}{
		GeneratedAt: rep.GeneratedAt, Period: toPeriodJSON(rep.PeriodStart, rep.PeriodEnd), Currency: "USD",
		MRRMicros: rep.MRRMicros, MRR: billing.Dollars(rep.MRRMicros),
		PlanFeesMicros: rep.PlanFeesMicros, AddonFeesMicros: rep.AddonFeesMicros,
		ARPUMicros: rep.ARPUMicros, ARPU: billing.Dollars(rep.ARPUMicros),
		Workspaces: rep.Workspaces, PayingWorkspaces: rep.PayingWorkspaces, ActiveWorkspaces: rep.ActiveWorkspaces,
		Churn: churnJSON{PaidAtMonthStart: rep.Churn.PaidAtStart, Churned: rep.Churn.Churned,
			Rate: rep.Churn.Rate(), RateBasisPoints: rep.Churn.RateBasisPoints},
		PlanMix:        mix,
		KeyUtilisation: fleet.KeyUtilisation, SuccessRate: fleet.SuccessRate, AvgResponseMs: fleet.AvgResponseMs,
	})
}
