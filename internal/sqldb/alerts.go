package sqldb

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/apikeywallet/apiwallet"
)

var _ apiwallet.AlertStore = (*DB)(nil)

const alertColumns = `id, workspace_id, kind, subject, period, threshold, used, quota_limit, message, details,
	created_at, delivery_state, delivery_attempts, delivery_next_at, delivery_last_status, delivery_last_error,
	delivered_at`

func scanAlert(s scanner) (*apiwallet.Alert, error) {
	var (
		a         apiwallet.Alert
		details   string
		created   int64
		next      int64
		delivered sql.NullInt64
	)
	if err := s.Scan(&a.ID, &a.WorkspaceID, &a.Kind, &a.Subject, &a.Period, &a.Threshold, &a.Used, &a.Limit,
		&a.Message, &details, &created, &a.Delivery.State, &a.Delivery.Attempts, &next,
		&a.Delivery.LastStatus, &a.Delivery.LastError, &delivered); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(details), &a.Details); err != nil || a.Details == nil {
		a.Details = map[string]string{}
	}
	a.CreatedAt = fromMicros(created)
	if next > 0 {
		a.Delivery.NextAt = fromMicros(next)
	}
	a.Delivery.DeliveredAt = fromNullMicros(delivered)
	return &a, nil
}

// quietTx runs fn in a transaction like tx, without OnCommit: alert
// bookkeeping changes nothing the proxy caches. It still goes through
// runTx, which forgets the transaction's change mark (its audit event
// sets one) and rolls back on a panic.
func (db *DB) quietTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return db.runTx(ctx, false, fn)
}

// FindAlertSettings implements apiwallet.AlertStore.
func (db *DB) FindAlertSettings(ctx context.Context, workspaceID string) (_ *apiwallet.AlertSettings, err error) {
	defer apiwallet.Wrap(&err, "FindAlertSettings")
	var (
		s          apiwallet.AlertSettings
		thresholds string
		updated    int64
	)
	err = db.db.QueryRowContext(ctx, `SELECT workspace_id, thresholds, webhook_url, webhook_secret, updated_at
		FROM alert_settings WHERE workspace_id = $1`, workspaceID).
		Scan(&s.WorkspaceID, &thresholds, &s.WebhookURL, &s.WebhookSecret, &updated)
	if err != nil {
		return nil, notFound(err, "alert settings")
	}
	s.Thresholds = []int{}
	for _, f := range strings.Split(thresholds, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			s.Thresholds = append(s.Thresholds, n)
		}
	}
	s.UpdatedAt = fromMicros(updated)
	return &s, nil
}

// PutAlertSettings implements apiwallet.AlertStore.
func (db *DB) PutAlertSettings(ctx context.Context, s *apiwallet.AlertSettings, ev *apiwallet.AuditEvent) (err error) {
	defer apiwallet.Wrap(&err, "PutAlertSettings")
	parts := make([]string, len(s.Thresholds))
	for i, t := range s.Thresholds {
		parts[i] = strconv.Itoa(t)
	}
	now := db.now()
	var secret any
	if len(s.WebhookSecret) > 0 {
		secret = s.WebhookSecret
	}
	return db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := lockWorkspace(ctx, tx, s.WorkspaceID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO alert_settings (workspace_id, thresholds, webhook_url,
				webhook_secret, updated_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (workspace_id) DO UPDATE SET thresholds = excluded.thresholds,
				webhook_url = excluded.webhook_url, webhook_secret = excluded.webhook_secret,
				updated_at = excluded.updated_at`,
			s.WorkspaceID, strings.Join(parts, ","), s.WebhookURL, secret, now); err != nil {
			return err
		}
		s.UpdatedAt = fromMicros(now)
		return db.appendAudit(ctx, tx, ev)
	})
}

// CreateAlert implements apiwallet.AlertStore with INSERT ... ON CONFLICT
// DO NOTHING on the alert's unique key: the database decides which of any
// number of concurrent inserts (from any instance) goes in.
func (db *DB) CreateAlert(ctx context.Context, a *apiwallet.Alert, ev *apiwallet.AuditEvent) (created bool, err error) {
	defer apiwallet.Wrap(&err, "CreateAlert")
	err = db.quietTx(ctx, func(tx *sql.Tx) error {
		var e error
		created, e = db.createAlert(ctx, tx, a)
		if e != nil || !created {
			return e
		}
		if ev != nil {
			ev.WorkspaceID, ev.TargetType, ev.TargetID = a.WorkspaceID, "alert", a.ID
		}
		return db.appendAudit(ctx, tx, ev)
	})
	return created, err
}

// createAlert inserts a inside tx unless its unique key is taken.
func (db *DB) createAlert(ctx context.Context, tx *sql.Tx, a *apiwallet.Alert) (bool, error) {
	if a.WorkspaceID == "" || a.Kind == "" {
		return false, fmt.Errorf("an alert needs a workspace id and a kind")
	}
	if a.ID == "" {
		a.ID = apiwallet.NewID("alr")
	}
	if a.Details == nil {
		a.Details = map[string]string{}
	}
	if a.Delivery.State == "" {
		a.Delivery.State = apiwallet.DeliveryNone
	}
	now := db.now()
	a.CreatedAt = fromMicros(now)
	details, _ := json.Marshal(a.Details)
	var next int64
	if !a.Delivery.NextAt.IsZero() {
		next = micros(a.Delivery.NextAt)
	}
	var id string
	err := tx.QueryRowContext(ctx, `INSERT INTO alerts (`+alertColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
		ON CONFLICT (workspace_id, kind, subject, period, threshold) DO NOTHING RETURNING id`,
		a.ID, a.WorkspaceID, a.Kind, a.Subject, a.Period, a.Threshold, a.Used, a.Limit, a.Message,
		string(details), now, a.Delivery.State, 0, next, 0, "", nil).Scan(&id)
	if err == sql.ErrNoRows {
		return false, nil
	}
	return err == nil, err
}

// FindAlerts implements apiwallet.AlertStore.
func (db *DB) FindAlerts(ctx context.Context, f apiwallet.AlertFilter) (_ []*apiwallet.Alert, err error) {
	defer apiwallet.Wrap(&err, "FindAlerts")
	if f.WorkspaceID == "" {
		return nil, fmt.Errorf("a workspace id is required")
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	var w filter
	w.where("workspace_id = %s", f.WorkspaceID)
	if f.Kind != "" {
		w.where("kind = %s", f.Kind)
	}
	if f.Before != "" {
		w.where("id < %s", f.Before)
	}
	q := `SELECT ` + alertColumns + ` FROM alerts` + w.clause() + ` ORDER BY id DESC LIMIT ` + w.arg(f.Limit)
	return db.queryAlerts(ctx, q, w.args...)
}

func (db *DB) queryAlerts(ctx context.Context, q string, args ...any) ([]*apiwallet.Alert, error) {
	rows, err := db.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*apiwallet.Alert
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// FindAlertByID implements apiwallet.AlertStore.
func (db *DB) FindAlertByID(ctx context.Context, id string) (*apiwallet.Alert, error) {
	a, err := scanAlert(db.db.QueryRowContext(ctx, `SELECT `+alertColumns+` FROM alerts WHERE id = $1`, id))
	if err != nil {
		return nil, notFound(err, "alert")
	}
	return a, nil
}

// ClaimAlertDelivery implements apiwallet.AlertStore with one conditional
// UPDATE: of concurrent claimants only one matches the row.
func (db *DB) ClaimAlertDelivery(ctx context.Context, id string, now, leaseUntil time.Time, max int) (n int, ok bool, err error) {
	defer apiwallet.Wrap(&err, "ClaimAlertDelivery")
	err = db.db.QueryRowContext(ctx, `UPDATE alerts SET delivery_attempts = delivery_attempts + 1, delivery_next_at = $1
		WHERE id = $2 AND delivery_state = $3 AND delivery_next_at <= $4 AND delivery_attempts < $5
		RETURNING delivery_attempts`, micros(leaseUntil), id, apiwallet.DeliveryPending, micros(now), max).Scan(&n)
	if err == sql.ErrNoRows {
		return 0, false, nil
	}
	return n, err == nil, err
}

// RecordAlertDelivery implements apiwallet.AlertStore.
func (db *DB) RecordAlertDelivery(ctx context.Context, id string, d apiwallet.AlertDelivery) (err error) {
	defer apiwallet.Wrap(&err, "RecordAlertDelivery")
	var next int64
	if !d.NextAt.IsZero() {
		next = micros(d.NextAt)
	}
	if len(d.LastError) > 500 {
		d.LastError = d.LastError[:500]
	}
	_, err = db.db.ExecContext(ctx, `UPDATE alerts SET delivery_state = $1, delivery_next_at = $2,
		delivery_last_status = $3, delivery_last_error = $4, delivered_at = $5 WHERE id = $6`,
		d.State, next, d.LastStatus, d.LastError, nullMicros(d.DeliveredAt), id)
	return err
}

// FindDueAlertDeliveries implements apiwallet.AlertStore.
func (db *DB) FindDueAlertDeliveries(ctx context.Context, now time.Time, limit int) (_ []*apiwallet.Alert, err error) {
	defer apiwallet.Wrap(&err, "FindDueAlertDeliveries")
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	return db.queryAlerts(ctx, `SELECT `+alertColumns+` FROM alerts
		WHERE delivery_state = $1 AND delivery_next_at <= $2 ORDER BY delivery_next_at LIMIT $3`,
		apiwallet.DeliveryPending, micros(now), limit)
}

// WorkspacesWithUsageSince implements apiwallet.AlertStore from the hourly
// rollups.
func (db *DB) WorkspacesWithUsageSince(ctx context.Context, since time.Time) (_ []string, err error) {
	defer apiwallet.Wrap(&err, "WorkspacesWithUsageSince")
	return collectStrings(db.db.QueryContext(ctx, `SELECT DISTINCT workspace_id FROM usage_hourly WHERE hour >= $1
		ORDER BY workspace_id`, floorHour(micros(since))))
}
