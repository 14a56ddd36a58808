package proxy

import (
	"strconv"
	"strings"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/routing"
)

// record hands the call's usage record to the recorder: ids and numbers
// only, never a secret, a body or a header.
func (p *Proxy) record(c *call) {
	now := p.now()
	p.metrics.observeCall(c, now)
	if p.recorder == nil {
		return
	}
	total := now.Sub(c.start)
	in := int64(len(c.buffered))
	if c.streamed != nil {
		in = c.length
	}
	u := apiwallet.Usage{
		WorkspaceID: c.caller.workspaceID, Service: c.svc.Name, KeyID: c.keyID, UserID: c.caller.userID,
		Method: c.method, Endpoint: apiwallet.UsageEndpoint(c.method, c.escPath), Status: c.status, Failed: c.failed, Attempts: len(c.tried), Unreached: !c.sent,
		Strategy: string(c.strategy), Premium: c.sent && (c.strategy != routing.StrategyPriority || len(c.tried) > 1),
		LatencyMicros: total.Microseconds(), OverheadMicros: (total - c.upstreamDur).Microseconds(),
		BytesIn: in, BytesOut: c.bytesOut, CreatedAt: now.UTC(),
	}
	if c.caller.token != nil {
		u.TokenID = c.caller.token.ID
	}
	var b strings.Builder
	for i, a := range c.tried {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(a.keyID)
		b.WriteByte(':')
		if a.status != 0 {
			b.WriteString(strconv.Itoa(a.status))
		} else {
			b.WriteString(a.reason)
		}
	}
	u.Attempted = b.String()
	if !c.failed && c.keyID != "" {
		if c.ks.Tier(c.keyID) == routing.TierFree {
			u.SavedMicros = c.svc.PriceMicros
		} else {
			u.CostMicros = c.svc.PriceMicros
		}
	}
	p.recorder.Record(u)
}
