package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// Who may do what with keys, by workspace role:
//
//	viewer        list keys and read their metadata
//	member        also add, update and rotate keys (and use them through the proxy)
//	admin, owner  also delete keys
//
// A key of another workspace is 404, exactly like a missing one; a role
// that may not do something gets 403 before the key is even looked up, so
// that answer tells nothing about the key either.
const (
	keyReadRole   = apiwallet.WorkspaceViewer
	keyWriteRole  = apiwallet.WorkspaceMember
	keyDeleteRole = apiwallet.WorkspaceAdmin
)

// fingerprintChars is how much of the fingerprint responses show: enough to
// tell two keys apart at a glance.
const fingerprintChars = 16

type keyMetadataJSON struct {
	Type        string `json:"type"`
	Quota       *int64 `json:"quota"`
	Description string `json:"description"`
}

func (m *keyMetadataJSON) domain() apiwallet.KeyMetadata {
	if m == nil {
		return apiwallet.KeyMetadata{}
	}
	return apiwallet.KeyMetadata{Type: m.Type, Quota: m.Quota, Description: m.Description}
}

// keyJSON is a key as the API shows it: never the secret, only its masked
// form and a short fingerprint.
type keyJSON struct {
	ID          string          `json:"id"`
	WorkspaceID string          `json:"workspaceId"`
	Service     string          `json:"service"`
	Tier        string          `json:"tier"`
	Metadata    keyMetadataJSON `json:"metadata"`
	Label       string          `json:"label"`
	Priority    int             `json:"priority"`
	Enabled     bool            `json:"enabled"`
	Status      string          `json:"status"`
	MaskedKey   string          `json:"maskedKey"`
	Fingerprint string          `json:"fingerprint"`
	Version     int             `json:"version"`
	CreatedBy   string          `json:"createdBy"`
	CreatedAt   time.Time       `json:"createdAt"`
	UpdatedAt   time.Time       `json:"updatedAt"`
	LastUsedAt  *time.Time      `json:"lastUsedAt"`
	RotatedAt   *time.Time      `json:"rotatedAt"`
}

func toKeyJSON(k *apiwallet.Key) keyJSON {
	fp := k.Fingerprint
	if len(fp) > fingerprintChars {
		fp = fp[:fingerprintChars]
	}
	return keyJSON{
		ID: k.ID, WorkspaceID: k.WorkspaceID, Service: k.Service, Tier: string(k.Tier),
		Metadata: keyMetadataJSON{Type: k.Metadata.Type, Quota: k.Metadata.Quota, Description: k.Metadata.Description},
		Label:    k.Label, Priority: k.Priority, Enabled: k.Enabled, Status: k.DisplayStatus(),
		MaskedKey: k.Masked, Fingerprint: fp, Version: k.Version, CreatedBy: k.CreatedBy,
		CreatedAt: k.CreatedAt, UpdatedAt: k.UpdatedAt, LastUsedAt: keyTime(k.LastUsedAt), RotatedAt: keyTime(k.RotatedAt),
	}
}

func keyTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// createKey stores an upstream key. The body is the seed's payload,
// verbatim: {"key","service","tier","metadata":{"type","quota","description"}},
// with optional label, priority and enabled.
func (s *Server) createKey(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := p.require(keyWriteRole, "add keys"); err != nil {
		return err
	}
	var in struct {
		Key      string           `json:"key"`
		Service  string           `json:"service"`
		Tier     string           `json:"tier"`
		Metadata *keyMetadataJSON `json:"metadata"`
		Label    string           `json:"label"`
		Priority int              `json:"priority"`
		Enabled  *bool            `json:"enabled"`
	}
	if err := decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	c := apiwallet.KeyCreate{
		WorkspaceID: p.Membership.Workspace.ID, Secret: in.Key, Service: strings.ToLower(in.Service),
		Tier: apiwallet.KeyTier(in.Tier), Metadata: in.Metadata.domain(), Label: in.Label,
		Priority: in.Priority, Enabled: in.Enabled == nil || *in.Enabled, CreatedBy: p.User.ID,
	}
	k, err := s.Keys.CreateKey(r.Context(), c, p.auditEvent(r, "key.create", "key", ""))
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/keys/"+k.ID)
	return writeJSON(w, http.StatusCreated, toKeyJSON(k))
}

// listKeys lists the workspace's keys by ID: ?service=&tier=&enabled=
// filter, ?after=<id>&limit=<1..500> page. nextAfter, when present, is the
// after value of the next page.
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := p.require(keyReadRole, "list keys"); err != nil {
		return err
	}
	q := r.URL.Query()
	f := apiwallet.KeyFilter{
		WorkspaceID: p.Membership.Workspace.ID, Service: strings.ToLower(q.Get("service")),
		Tier: apiwallet.KeyTier(q.Get("tier")), After: q.Get("after"), Limit: 100,
	}
	var v apiwallet.ValidationError
	if f.Tier != "" && !f.Tier.Valid() {
		v.Add("tier", `must be "free" or "paid"`)
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 500 {
			v.Add("limit", "must be a whole number from 1 to 500")
		}
		f.Limit = n
	}
	if e := q.Get("enabled"); e != "" {
		b, err := strconv.ParseBool(e)
		if err != nil {
			v.Add("enabled", "must be true or false")
		}
		f.Enabled = &b
	}
	if err := v.Err(); err != nil {
		return err
	}
	limit := f.Limit
	f.Limit++ // one more tells whether there is a next page
	keys, err := s.Keys.FindKeys(r.Context(), f)
	if err != nil {
		return err
	}
	out := struct {
		Keys      []keyJSON `json:"keys"`
		NextAfter string    `json:"nextAfter,omitempty"`
	}{Keys: []keyJSON{}}
	if len(keys) > limit {
		keys = keys[:limit]
		out.NextAfter = keys[limit-1].ID
	}
	for _, k := range keys {
		out.Keys = append(out.Keys, toKeyJSON(k))
	}
	return writeJSON(w, http.StatusOK, out)
}

// getKey shows one key's metadata and records the read.
func (s *Server) getKey(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := p.require(keyReadRole, "read keys"); err != nil {
		return err
	}
	k, err := s.Keys.ReadKey(r.Context(), p.Membership.Workspace.ID, r.PathValue("id"),
		p.auditEvent(r, "key.read", "key", r.PathValue("id")))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toKeyJSON(k))
}

// updateKey changes tier, metadata (replaced whole), enabled, priority or
// label. The secret is changed only by rotateKey.
func (s *Server) updateKey(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := p.require(keyWriteRole, "update keys"); err != nil {
		return err
	}
	var in struct {
		Tier     *string          `json:"tier"`
		Metadata *keyMetadataJSON `json:"metadata"`
		Enabled  *bool            `json:"enabled"`
		Priority *int             `json:"priority"`
		Label    *string          `json:"label"`
	}
	if err := decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	upd := apiwallet.KeyUpdate{Enabled: in.Enabled, Priority: in.Priority, Label: in.Label}
	if in.Tier != nil {
		t := apiwallet.KeyTier(*in.Tier)
		upd.Tier = &t
	}
	if in.Metadata != nil {
		m := in.Metadata.domain()
		upd.Metadata = &m
	}
	k, err := s.Keys.UpdateKey(r.Context(), p.Membership.Workspace.ID, r.PathValue("id"), upd,
		p.auditEvent(r, "key.update", "key", r.PathValue("id")))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toKeyJSON(k))
}

// rotateKey replaces a key's secret, keeping its ID, settings, usage and
// audit trail: {"key": "<new secret>"}.
func (s *Server) rotateKey(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := p.require(keyWriteRole, "rotate keys"); err != nil {
		return err
	}
	var in struct {
		Key string `json:"key"`
	}
	if err := decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	k, err := s.Keys.RotateKey(r.Context(), p.Membership.Workspace.ID, r.PathValue("id"), in.Key,
		p.auditEvent(r, "key.rotate", "key", r.PathValue("id")))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toKeyJSON(k))
}

// deleteKey deletes a key for good.
func (s *Server) deleteKey(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := p.require(keyDeleteRole, "delete keys"); err != nil {
		return err
	}
	if err := s.Keys.DeleteKey(r.Context(), p.Membership.Workspace.ID, r.PathValue("id"),
		p.auditEvent(r, "key.delete", "key", r.PathValue("id"))); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
