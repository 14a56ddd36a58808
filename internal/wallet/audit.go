package wallet

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apikeywallet/apiwallet"
)

// countingAudit counts the audit events that could not be written on
// their own (AppendAudit). Those are the events of actions that change
// nothing else (a failed login, a key's use), whose callers log the
// failure and go on: the metric is what tells an operator the audit log
// has gaps. Events written with a change share its transaction and fail
// it instead.
type countingAudit struct {
	apiwallet.AuditStore
	failures prometheus.Counter
}

func newCountingAudit(store apiwallet.AuditStore, reg prometheus.Registerer) *countingAudit {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "apiwallet_audit_write_failures_total",
		Help: "Audit events that could not be written.",
	})
	reg.MustRegister(c)
	return &countingAudit{AuditStore: store, failures: c}
}

func (a *countingAudit) AppendAudit(ctx context.Context, ev *apiwallet.AuditEvent) error {
	err := a.AuditStore.AppendAudit(ctx, ev)
	if err != nil {
		a.failures.Inc()
	}
	return err
}
