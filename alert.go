package apiwallet

import (
	"context"
	"time"
)

// Alert kinds.
const (
	// AlertPlanQuota: the workspace's calls this month crossed a threshold
	// (a percentage) of its plan's included calls. Subject "plan", period
	// "YYYY-MM".
	AlertPlanQuota = "plan_quota"
	// AlertKeyQuota: a key's calls in its quota period crossed a threshold
	// of its quota (metadata.quota, or the service's free tier). Subject
	// the key id, period "YYYY-MM", "YYYY-MM-DD" or "YYYY-MM-DDTHH".
	AlertKeyQuota = "key_quota"
	// AlertKeyQuarantined: the proxy took a key out of rotation because
	// the upstream refused it (401/402/403). Subject the key id, period
	// the UTC day: at most one alert per key and day.
	AlertKeyQuarantined = "key_quarantined"
	// AlertPaymentFailed: Stripe could not collect an invoice. Subject the
	// invoice id: one alert per invoice, whatever the number of attempts.
	AlertPaymentFailed = "payment_failed"
)

// Alert delivery states: how far the POST to the workspace's webhook got.
const (
	DeliveryNone      = "none"      // no webhook was configured when the alert was raised
	DeliveryPending   = "pending"   // to be sent, or being retried
	DeliveryDelivered = "delivered" // the receiver answered 2xx
	DeliveryFailed    = "failed"    // every attempt failed
)

// DefaultAlertThresholds are the thresholds of a workspace that never set
// its own: 80% and 100% of each quota.
var DefaultAlertThresholds = []int{80, 100}

// Bounds on alert settings.
const (
	MaxAlertThresholds = 10
	MaxWebhookURLLen   = 2048
)

// Alert is one crossing, raised once: the store keeps at most one alert
// per (workspace, kind, subject, period, threshold), so instances that
// notice the same crossing at once raise it once between them.
type Alert struct {
	ID          string
	WorkspaceID string
	Kind        string
	Subject     string
	Period      string
	// Threshold is the percentage crossed; 0 for kinds without one.
	Threshold int
	// Used and Limit are the counts at the crossing (0 when not a quota).
	Used    int64
	Limit   int64
	Message string
	// Details holds kind-specific ids and reasons: never a secret.
	Details   map[string]string
	CreatedAt time.Time
	Delivery  AlertDelivery
}

// AlertDelivery is the state of an alert's webhook POST.
type AlertDelivery struct {
	State    string
	Attempts int
	// NextAt is when the next attempt may start; while an attempt is in
	// flight it is the end of the sender's lease.
	NextAt      time.Time
	LastStatus  int // the receiver's last HTTP status; 0 when it was not reached
	LastError   string
	DeliveredAt time.Time
}

// AlertFilter selects a workspace's alerts, newest first.
type AlertFilter struct {
	WorkspaceID string
	Kind        string // optional
	Before      string // cursor: alerts with an ID before this one
	Limit       int
}

// AlertSettings are a workspace's alert thresholds and webhook.
type AlertSettings struct {
	WorkspaceID string
	Thresholds  []int // percentages, ascending, 1 to 1000
	WebhookURL  string
	// WebhookSecret is the sealed signing secret (see internal/alerts);
	// nil when there is no webhook.
	WebhookSecret []byte
	UpdatedAt     time.Time
}

// AlertStore persists alerts and alert settings.
type AlertStore interface {
	// FindAlertSettings returns a workspace's settings, or ENOTFOUND when
	// it never set any (the defaults apply).
	FindAlertSettings(ctx context.Context, workspaceID string) (*AlertSettings, error)
	// PutAlertSettings replaces a workspace's settings, recording ev.
	PutAlertSettings(ctx context.Context, s *AlertSettings, ev *AuditEvent) error
	// CreateAlert inserts a (filling ID and CreatedAt) unless an alert with
	// the same workspace, kind, subject, period and threshold exists, and
	// reports whether it did: exactly one of any number of concurrent
	// callers gets true, and only that one delivers it. ev, when not nil,
	// is recorded with an inserted alert only.
	CreateAlert(ctx context.Context, a *Alert, ev *AuditEvent) (bool, error)
	// FindAlerts lists alerts newest first.
	FindAlerts(ctx context.Context, f AlertFilter) ([]*Alert, error)
	// FindAlertByID returns one alert of any workspace. ENOTFOUND.
	FindAlertByID(ctx context.Context, id string) (*Alert, error)
	// ClaimAlertDelivery starts delivery attempt number n (returned) of a
	// pending alert whose NextAt has come and that has had fewer than max
	// attempts, and leases it until leaseUntil. At most one caller claims
	// an attempt; ok is false for every other, and when nothing is due.
	ClaimAlertDelivery(ctx context.Context, id string, now, leaseUntil time.Time, max int) (n int, ok bool, err error)
	// RecordAlertDelivery stores the outcome of an attempt.
	RecordAlertDelivery(ctx context.Context, id string, d AlertDelivery) error
	// FindDueAlertDeliveries lists pending alerts whose NextAt has come,
	// oldest first: those whose sender stopped (an instance that died).
	FindDueAlertDeliveries(ctx context.Context, now time.Time, limit int) ([]*Alert, error)
	// WorkspacesWithUsageSince lists the workspaces with usage in the hour
	// of since or later, for the background quota evaluator.
	WorkspacesWithUsageSince(ctx context.Context, since time.Time) ([]string, error)
}
