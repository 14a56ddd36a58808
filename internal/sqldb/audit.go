package sqldb

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/apikeywallet/apiwallet"
)

var _ apiwallet.AuditStore = (*DB)(nil)

// chainRecord is what an event's hash covers: every column but the hash
// itself, in a fixed order (encoding/json writes struct fields in order and
// map keys sorted), prefixed by the previous event's hash.
type chainRecord struct {
	Seq         int64             `json:"seq"`
	ID          string            `json:"id"`
	WorkspaceID string            `json:"ws"`
	ActorType   string            `json:"at"`
	ActorID     string            `json:"a"`
	Action      string            `json:"act"`
	TargetType  string            `json:"tt"`
	TargetID    string            `json:"t"`
	Outcome     string            `json:"o"`
	ClientIP    string            `json:"ip"`
	RequestID   string            `json:"rid"`
	Details     map[string]string `json:"d"`
	CreatedAt   int64             `json:"ts"`
}

func chainHash(prev string, ev *apiwallet.AuditEvent) string {
	b, _ := json.Marshal(chainRecord{ev.Seq, ev.ID, ev.WorkspaceID, ev.ActorType, ev.ActorID, ev.Action,
		ev.TargetType, ev.TargetID, ev.Outcome, ev.ClientIP, ev.RequestID, ev.Details, micros(ev.CreatedAt)})
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write([]byte{'\n'})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// appendAudit appends ev to the chain inside tx. Every mutating store method
// calls it in the same transaction as its change, so an action and its
// event commit or fail together.
func (db *DB) appendAudit(ctx context.Context, tx *sql.Tx, ev *apiwallet.AuditEvent) error {
	if ev == nil {
		return nil
	}
	var prev string
	if err := tx.QueryRowContext(ctx, `UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash`).
		Scan(&ev.Seq, &prev); err != nil {
		return fmt.Errorf("advance audit head: %w", err)
	}
	if ev.ID == "" {
		ev.ID = apiwallet.NewID("evt")
	}
	if ev.Outcome == "" {
		ev.Outcome = apiwallet.OutcomeSuccess
	}
	if ev.Details == nil {
		ev.Details = map[string]string{}
	}
	ev.CreatedAt = fromMicros(db.now())
	ev.PrevHash = prev
	ev.Hash = chainHash(prev, ev)
	details, _ := json.Marshal(ev.Details)
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_events (seq, id, workspace_id, actor_type, actor_id,
			action, target_type, target_id, outcome, client_ip, request_id, details, created_at, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		ev.Seq, ev.ID, ev.WorkspaceID, ev.ActorType, ev.ActorID, ev.Action, ev.TargetType, ev.TargetID,
		ev.Outcome, ev.ClientIP, ev.RequestID, string(details), micros(ev.CreatedAt), ev.PrevHash, ev.Hash); err != nil {
		return fmt.Errorf("insert audit event: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE audit_head SET hash = $1 WHERE id = 1`, ev.Hash); err != nil {
		return err
	}
	if !quietActions[ev.Action] {
		db.markChanged(tx)
	}
	return nil
}

// AppendAudit implements apiwallet.AuditStore.
func (db *DB) AppendAudit(ctx context.Context, ev *apiwallet.AuditEvent) (err error) {
	defer apiwallet.Wrap(&err, "AppendAudit")
	return db.tx(ctx, func(tx *sql.Tx) error { return db.appendAudit(ctx, tx, ev) })
}

const auditColumns = `seq, id, workspace_id, actor_type, actor_id, action, target_type, target_id,
	outcome, client_ip, request_id, details, created_at, prev_hash, hash`

func scanAudit(s scanner) (*apiwallet.AuditEvent, error) {
	var (
		ev      apiwallet.AuditEvent
		details string
		at      int64
	)
	if err := s.Scan(&ev.Seq, &ev.ID, &ev.WorkspaceID, &ev.ActorType, &ev.ActorID, &ev.Action, &ev.TargetType,
		&ev.TargetID, &ev.Outcome, &ev.ClientIP, &ev.RequestID, &details, &at, &ev.PrevHash, &ev.Hash); err != nil {
		return nil, err
	}
	ev.CreatedAt = fromMicros(at)
	if err := json.Unmarshal([]byte(details), &ev.Details); err != nil {
		// Kept as a raw value so verification still sees (and flags) it.
		ev.Details = map[string]string{"_raw": details}
	}
	return &ev, nil
}

// FindAuditEvents implements apiwallet.AuditStore.
func (db *DB) FindAuditEvents(ctx context.Context, f apiwallet.AuditFilter) (_ []*apiwallet.AuditEvent, err error) {
	defer apiwallet.Wrap(&err, "FindAuditEvents")
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	var w filter
	switch {
	case f.WorkspaceID != "" && f.ActorID != "":
		w.where("(workspace_id = %s OR actor_id = %s)", f.WorkspaceID, f.ActorID)
	case f.WorkspaceID != "":
		w.where("workspace_id = %s", f.WorkspaceID)
	case f.ActorID != "":
		w.where("actor_id = %s", f.ActorID)
	}
	if f.UserID != "" {
		w.where("actor_id = %s", f.UserID)
	}
	if prefix, ok := strings.CutSuffix(f.Action, "."); ok {
		w.where(`action LIKE %s ESCAPE '\'`, strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(prefix)+".%")
	} else if f.Action != "" {
		w.where("action = %s", f.Action)
	}
	if !f.Since.IsZero() {
		w.where("created_at >= %s", micros(f.Since))
	}
	if !f.Until.IsZero() {
		w.where("created_at < %s", micros(f.Until))
	}
	if f.Before > 0 {
		w.where("seq < %s", f.Before)
	}
	q := `SELECT ` + auditColumns + ` FROM audit_events` + w.clause() + ` ORDER BY seq DESC LIMIT ` + w.arg(f.Limit)
	args := w.args
	rows, err := db.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var evs []*apiwallet.AuditEvent
	for rows.Next() {
		ev, err := scanAudit(rows)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	return evs, rows.Err()
}

// VerifyAudit implements apiwallet.AuditStore.
func (db *DB) VerifyAudit(ctx context.Context) (n int64, err error) {
	rows, err := db.db.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit_events ORDER BY seq`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	prev := ""
	for rows.Next() {
		ev, err := scanAudit(rows)
		if err != nil {
			return n, err
		}
		n++
		switch {
		case ev.Seq != n:
			return n, fmt.Errorf("audit chain broken at event #%d (%s): expected sequence %d; an event before it was deleted or the rows were reordered", ev.Seq, ev.ID, n)
		case ev.PrevHash != prev:
			return n, fmt.Errorf("audit chain broken at event #%d (%s): its previous-hash does not match event #%d", ev.Seq, ev.ID, n-1)
		case chainHash(prev, ev) != ev.Hash:
			return n, fmt.Errorf("audit chain broken at event #%d (%s): its content was edited", ev.Seq, ev.ID)
		}
		prev = ev.Hash
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	var headSeq int64
	var headHash string
	if err := db.db.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&headSeq, &headHash); err != nil {
		return n, err
	}
	if headSeq != n || headHash != prev {
		return n, fmt.Errorf("audit chain broken at the end: the head records %d events but %d remain; the newest were deleted", headSeq, n)
	}
	return n, nil
}
