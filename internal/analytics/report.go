package analytics

import (
	"context"
	"slices"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// Request selects a report. From and To bound it ([From, To), rounded
// to whole UTC hours: From down, To up); Loc is the reporting time zone.
type Request struct {
	WorkspaceID string
	From, To    time.Time
	Loc         *time.Location
	GroupBy     string
	Service     string
	KeyID       string
	TokenID     string
}

// Row is one group of a report.
type Row struct {
	Group string
	Label string
	Figures
}

// Report is the answer to a Request.
type Report struct {
	From, To time.Time
	TZ       string
	GroupBy  string
	Totals   Figures
	// Previous covers the period of equal length just before From.
	PreviousFrom, PreviousTo time.Time
	Previous                 Figures
	Rows                     []Row
}

// Validate checks a request's grouping and period.
func (r *Request) Validate() error {
	var v apiwallet.ValidationError
	if !slices.Contains(Groupings, r.GroupBy) {
		v.Add("group_by", "must be one of service, key, tier, token, member, endpoint, day, hour")
	}
	switch {
	case !r.To.After(r.From):
		v.Add("to", "must be after from")
	case r.To.Sub(r.From) > MaxRange:
		v.Add("from", "the period may be at most 366 days")
	case r.GroupBy == GroupHour && r.To.Sub(r.From) > MaxHourRange:
		v.Add("from", "an hourly report may cover at most 31 days")
	}
	return v.Err()
}

// Report computes the figures of r: one rollup read for the period's
// groups, one for the previous period's totals.
func (s *Service) Report(ctx context.Context, r Request) (*Report, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if r.Loc == nil {
		r.Loc = time.UTC
	}
	q := apiwallet.UsageQuery{WorkspaceID: r.WorkspaceID, From: r.From, To: r.To,
		Service: r.Service, KeyID: r.KeyID, TokenID: r.TokenID}
	switch r.GroupBy {
	case GroupService:
		q.GroupBy = apiwallet.DimService
	case GroupKey, GroupTier:
		q.GroupBy = apiwallet.DimKey
	case GroupToken:
		q.GroupBy = apiwallet.DimToken
	case GroupMember:
		q.GroupBy = apiwallet.DimUser
	case GroupEndpoint:
		q.GroupBy = apiwallet.DimEndpoint
	default:
		q.GroupBy = apiwallet.DimHour
	}
	groups, err := s.Store.UsageGroups(ctx, q)
	if err != nil {
		return nil, err
	}
	rows, err := s.rows(ctx, r, groups)
	if err != nil {
		return nil, err
	}
	out := &Report{From: r.From, To: r.To, TZ: r.Loc.String(), GroupBy: r.GroupBy}
	var total apiwallet.UsageFigures
	for i := range groups {
		total.Add(&groups[i].UsageFigures)
	}
	out.Totals = FiguresOf(&total)
	out.Rows = rows

	length := r.To.Sub(r.From)
	out.PreviousFrom, out.PreviousTo = r.From.Add(-length), r.From
	pq := q
	pq.From, pq.To, pq.GroupBy = out.PreviousFrom, out.PreviousTo, apiwallet.DimNone
	prev, err := s.Store.UsageGroups(ctx, pq)
	if err != nil {
		return nil, err
	}
	var pt apiwallet.UsageFigures
	for i := range prev {
		pt.Add(&prev[i].UsageFigures)
	}
	out.Previous = FiguresOf(&pt)
	return out, nil
}

// rows turns rollup groups into report rows with labels, merging key
// groups into tiers and hours into the time zone's days.
func (s *Service) rows(ctx context.Context, r Request, groups []apiwallet.UsageGroup) ([]Row, error) {
	switch r.GroupBy {
	case GroupDay, GroupHour:
		return timeRows(r, groups), nil
	case GroupTier:
		keys, err := s.keyMap(ctx, r.WorkspaceID)
		if err != nil {
			return nil, err
		}
		merged := map[string]*apiwallet.UsageFigures{}
		var order []string
		for i := range groups {
			t := TierOf(keys, groups[i].Group)
			if merged[t] == nil {
				merged[t] = &apiwallet.UsageFigures{}
				order = append(order, t)
			}
			merged[t].Add(&groups[i].UsageFigures)
		}
		slices.Sort(order)
		out := make([]Row, 0, len(order))
		for _, t := range order {
			out = append(out, Row{Group: t, Label: tierLabels[t], Figures: FiguresOf(merged[t])})
		}
		return out, nil
	}
	label, err := s.labeller(ctx, r)
	if err != nil {
		return nil, err
	}
	out := make([]Row, 0, len(groups))
	for i := range groups {
		g := &groups[i]
		out = append(out, Row{Group: g.Group, Label: label(g.Group), Figures: FiguresOf(&g.UsageFigures)})
	}
	return out, nil
}

var tierLabels = map[string]string{"free": "Free tier", "paid": "Paid", "none": "No key (refused)",
	"fallback": "Operator fallback key", "deleted": "Deleted key"}

// TierOf is the tier a key group belongs to: the key's tier, "none" for
// calls no key served, "fallback" for operator fallback keys and
// "deleted" for a key no longer stored.
func TierOf(keys map[string]*apiwallet.Key, keyID string) string {
	switch keyID {
	case "":
		return "none"
	case apiwallet.FallbackKeyID:
		return "fallback"
	}
	if k, ok := keys[keyID]; ok {
		return string(k.Tier)
	}
	return "deleted"
}

// keyMap returns every key of a workspace by id.
func (s *Service) keyMap(ctx context.Context, workspaceID string) (map[string]*apiwallet.Key, error) {
	out := map[string]*apiwallet.Key{}
	after := ""
	for {
		page, err := s.Keys.FindKeys(ctx, apiwallet.KeyFilter{WorkspaceID: workspaceID, After: after, Limit: 500})
		if err != nil {
			return nil, err
		}
		for _, k := range page {
			out[k.ID] = k
		}
		if len(page) < 500 {
			return out, nil
		}
		after = page[len(page)-1].ID
	}
}

// labeller returns the label of a group value for r's grouping.
func (s *Service) labeller(ctx context.Context, r Request) (func(string) string, error) {
	switch r.GroupBy {
	case GroupService:
		return func(name string) string {
			if info, ok := s.Services.Service(name); ok && info.DisplayName != "" {
				return info.DisplayName
			}
			return name
		}, nil
	case GroupKey:
		keys, err := s.keyMap(ctx, r.WorkspaceID)
		if err != nil {
			return nil, err
		}
		return func(id string) string {
			if k, ok := keys[id]; ok {
				return KeyLabel(k)
			}
			return tierLabels[TierOf(keys, id)]
		}, nil
	case GroupToken:
		names := map[string]string{}
		after := ""
		for {
			page, err := s.Tokens.FindAccessTokens(ctx, apiwallet.AccessTokenFilter{WorkspaceID: r.WorkspaceID, After: after, Limit: 500})
			if err != nil {
				return nil, err
			}
			for _, t := range page {
				names[t.ID] = t.Name
			}
			if len(page) < 500 {
				break
			}
			after = page[len(page)-1].ID
		}
		return func(id string) string {
			if id == "" {
				return "Login session"
			}
			if n, ok := names[id]; ok {
				return n
			}
			return "Revoked token"
		}, nil
	case GroupMember:
		members, err := s.Members.FindMembers(ctx, r.WorkspaceID)
		if err != nil {
			return nil, err
		}
		names := map[string]string{}
		for _, m := range members {
			names[m.UserID] = m.Name
			if m.Name == "" {
				names[m.UserID] = m.Email
			}
		}
		return func(id string) string {
			if n, ok := names[id]; ok {
				return n
			}
			return "Former member"
		}, nil
	}
	return func(g string) string { return g }, nil
}

// KeyLabel is a key's display form: the masked secret and its label or
// description.
func KeyLabel(k *apiwallet.Key) string {
	l := k.Label
	if l == "" {
		l = k.Metadata.Description
	}
	if l == "" {
		return k.Masked
	}
	return k.Masked + " " + l
}

// timeRows buckets hourly groups into r's day or hour buckets in r.Loc,
// every bucket present, in time order. A UTC hour goes to the bucket its
// start falls in, so in a zone whose offset is not a whole number of
// hours a day boundary rounds to the UTC hour.
func timeRows(r Request, groups []apiwallet.UsageGroup) []Row {
	var starts []time.Time
	start := r.From.In(r.Loc)
	if r.GroupBy == GroupDay {
		start = time.Date(start.Year(), start.Month(), start.Day(), 0, 0, 0, 0, r.Loc)
		for t := start; t.Before(r.To); t = t.AddDate(0, 0, 1) {
			starts = append(starts, t)
		}
	} else {
		start = r.From.UTC().Truncate(time.Hour).In(r.Loc)
		for t := start; t.Before(r.To); t = t.Add(time.Hour) {
			starts = append(starts, t)
		}
	}
	sums := make([]apiwallet.UsageFigures, len(starts))
	for i := range groups {
		h := groups[i].Hour
		// The last bucket that starts at or before h.
		j, found := slices.BinarySearchFunc(starts, h, func(a, b time.Time) int { return a.Compare(b) })
		if !found {
			j--
		}
		if j < 0 {
			j = 0
		}
		sums[j].Add(&groups[i].UsageFigures)
	}
	out := make([]Row, len(starts))
	for i, t := range starts {
		g := t.Format(time.RFC3339)
		out[i] = Row{Group: g, Label: g, Figures: FiguresOf(&sums[i])}
	}
	return out
}
