package api

import (
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// auditEventJSON is an audit event as the API shows it.
type auditEventJSON struct {
	ID          string            `json:"id"`
	Seq         int64             `json:"seq"`
	WorkspaceID string            `json:"workspaceId"`
	ActorType   string            `json:"actorType"`
	ActorID     string            `json:"actorId"`
	Action      string            `json:"action"`
	TargetType  string            `json:"targetType"`
	TargetID    string            `json:"targetId"`
	Outcome     string            `json:"outcome"`
	ClientIP    string            `json:"clientIp"`
	RequestID   string            `json:"requestId"`
	Details     map[string]string `json:"details"`
	CreatedAt   time.Time         `json:"createdAt"`
	Hash        string            `json:"hash"`
}

func toAuditEventJSON(ev *apiwallet.AuditEvent) auditEventJSON {
	details := ev.Details
	if details == nil {
		details = map[string]string{}
	}
	return auditEventJSON{ID: ev.ID, Seq: ev.Seq, WorkspaceID: ev.WorkspaceID, ActorType: ev.ActorType,
		ActorID: ev.ActorID, Action: ev.Action, TargetType: ev.TargetType, TargetID: ev.TargetID,
		Outcome: ev.Outcome, ClientIP: ev.ClientIP, RequestID: ev.RequestID, Details: details,
		CreatedAt: ev.CreatedAt, Hash: ev.Hash}
}

// auditActionRE accepts an action ("key.create") or a prefix of one that
// ends in a dot ("key.").
var auditActionRE = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\.?$`)

// maxAuditPage is the largest page: the store answers at most 500 rows and
// one more than the page tells whether there is a next one.
const maxAuditPage = 499

// listAudit is GET /audit: newest first, paged with ?before=<seq> and
// ?limit=; next, when not null, is the before value of the next page.
//
// A caller sees the events of the workspace it acts in and the events it
// caused anywhere. A global ADMIN sees every event. Both may narrow with
// ?user=<id>, ?action=<action or prefix ending in ".">, ?since= and
// ?until= (RFC 3339); narrowing never widens a caller's scope.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, p *Principal) error {
	q := r.URL.Query()
	f := apiwallet.AuditFilter{UserID: q.Get("user"), Action: q.Get("action"), Limit: 100}
	var v apiwallet.ValidationError
	if f.Action != "" && (len(f.Action) > 64 || !auditActionRE.MatchString(f.Action)) {
		v.Add("action", `must be an action such as key.create, or a prefix ending in a dot such as key.`)
	}
	parseTime := func(name string) time.Time {
		val := q.Get(name)
		if val == "" {
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339, val)
		if err != nil {
			v.Add(name, "must be an RFC 3339 time such as 2030-01-31T12:00:00Z")
		}
		return t
	}
	f.Since, f.Until = parseTime("since"), parseTime("until")
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		v.Add("until", "must be after since")
	}
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 1 {
			v.Add("before", "must be a positive event seq, such as the next value of the previous page")
		}
		f.Before = n
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxAuditPage {
			v.Add("limit", "must be a whole number from 1 to "+strconv.Itoa(maxAuditPage))
		}
		f.Limit = n
	}
	if err := v.Err(); err != nil {
		return err
	}
	if p.User.Role != apiwallet.RoleAdmin {
		f.WorkspaceID, f.ActorID = p.Membership.Workspace.ID, p.User.ID
	}
	limit := f.Limit
	f.Limit++
	evs, err := s.Auth.Audit.FindAuditEvents(r.Context(), f)
	if err != nil {
		return err
	}
	out := struct {
		Events []auditEventJSON `json:"events"`
		Next   *int64           `json:"next"`
	}{Events: []auditEventJSON{}}
	if len(evs) > limit {
		evs = evs[:limit]
		out.Next = &evs[limit-1].Seq
	}
	for _, ev := range evs {
		out.Events = append(out.Events, toAuditEventJSON(ev))
	}
	return writeJSON(w, http.StatusOK, out)
}
