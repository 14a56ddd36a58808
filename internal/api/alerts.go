package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/alerts"
)

var errAlertsUnavailable = apiwallet.Errorf(apiwallet.EUNAVAILABLE, "alerts are not available on this wallet")

// alertJSON is an alert as GET /alerts shows it: the webhook payload plus
// its delivery state.
type alertJSON struct {
	alerts.Payload
	Delivery deliveryJSON `json:"delivery"`
}

type deliveryJSON struct {
	State       string     `json:"state"`
	Attempts    int        `json:"attempts"`
	LastStatus  int        `json:"lastStatus,omitempty"`
	LastError   string     `json:"lastError,omitempty"`
	NextAt      *time.Time `json:"nextAttemptAt,omitempty"`
	DeliveredAt *time.Time `json:"deliveredAt,omitempty"`
}

func toAlertJSON(a *apiwallet.Alert) alertJSON {
	d := deliveryJSON{State: a.Delivery.State, Attempts: a.Delivery.Attempts, LastStatus: a.Delivery.LastStatus,
		LastError: a.Delivery.LastError, DeliveredAt: tokenTime(a.Delivery.DeliveredAt)}
	if a.Delivery.State == apiwallet.DeliveryPending {
		d.NextAt = tokenTime(a.Delivery.NextAt)
	}
	return alertJSON{Payload: alerts.NewPayload(a), Delivery: d}
}

// listAlerts is GET /alerts?kind=&before=<id>&limit=<1..500>: the acting
// workspace's alerts, newest first. nextBefore, when present, is the
// before value of the next page.
func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if s.Alerts == nil {
		return errAlertsUnavailable
	}
	q := r.URL.Query()
	limit := 50
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 500 {
			var v apiwallet.ValidationError
			v.Add("limit", "must be a whole number from 1 to 500")
			return v.Err()
		}
		limit = n
	}
	list, err := s.Alerts.List(r.Context(), apiwallet.AlertFilter{WorkspaceID: p.Membership.Workspace.ID,
		Kind: q.Get("kind"), Before: q.Get("before"), Limit: limit + 1})
	if err != nil {
		return err
	}
	out := struct {
		Alerts     []alertJSON `json:"alerts"`
		NextBefore string      `json:"nextBefore,omitempty"`
	}{Alerts: []alertJSON{}}
	if len(list) > limit {
		list = list[:limit]
		out.NextBefore = list[limit-1].ID
	}
	for _, a := range list {
		out.Alerts = append(out.Alerts, toAlertJSON(a))
	}
	return writeJSON(w, http.StatusOK, out)
}

// alertSettingsJSON is the settings as the API shows them. WebhookSecret
// appears once: in the PUT response that generated it.
type alertSettingsJSON struct {
	Thresholds       []int      `json:"thresholds"`
	WebhookURL       *string    `json:"webhookUrl"`
	HasWebhookSecret bool       `json:"hasWebhookSecret"`
	WebhookSecret    string     `json:"webhookSecret,omitempty"`
	SignatureHeader  string     `json:"signatureHeader"`
	UpdatedAt        *time.Time `json:"updatedAt"`
}

func toAlertSettingsJSON(st *alerts.Settings) alertSettingsJSON {
	return alertSettingsJSON{Thresholds: st.Thresholds, WebhookURL: nonEmpty(st.WebhookURL),
		HasWebhookSecret: st.HasSecret, SignatureHeader: alerts.SignatureHeader, UpdatedAt: tokenTime(st.UpdatedAt)}
}

// getAlertSettings is GET /alerts/settings.
func (s *Server) getAlertSettings(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if s.Alerts == nil {
		return errAlertsUnavailable
	}
	st, err := s.Alerts.Settings(r.Context(), p.Membership.Workspace.ID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toAlertSettingsJSON(st))
}

// putAlertSettings is PUT /alerts/settings {thresholds?, webhookUrl?,
// webhookSecret?} (owner or admin). It replaces the settings: thresholds
// default to [80, 100] and no webhookUrl means no webhook. A webhook
// without webhookSecret keeps its secret, or gets a generated one that
// this response shows, once.
func (s *Server) putAlertSettings(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := p.require(apiwallet.WorkspaceAdmin, "change alert settings"); err != nil {
		return err
	}
	if s.Alerts == nil {
		return errAlertsUnavailable
	}
	var in struct {
		Thresholds    []int   `json:"thresholds"`
		WebhookURL    *string `json:"webhookUrl"`
		WebhookSecret *string `json:"webhookSecret"`
	}
	if err := decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	ev := p.auditEvent(r, "alert.settings", "workspace", p.Membership.Workspace.ID)
	st, secret, err := s.Alerts.PutSettings(r.Context(), p.Membership.Workspace.ID,
		alerts.SettingsInput{Thresholds: in.Thresholds, WebhookURL: in.WebhookURL, WebhookSecret: in.WebhookSecret}, ev)
	if err != nil {
		return err
	}
	out := toAlertSettingsJSON(st)
	out.WebhookSecret = secret
	return writeJSON(w, http.StatusOK, out)
}
