package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/apikeywallet/apiwallet"
)

var _ apiwallet.BillingStore = (*DB)(nil)

const planColumns = `id, name, price_micros, included_calls, hard_stop, rate_per_minute,
	overage_micros_per_call, premium_micros_per_call, analytics_addon_micros, active, created_at, updated_at`

type rowScanner interface {
	Scan(dest ...any) error
}

func scanPlan(row rowScanner) (*apiwallet.Plan, error) {
	var (
		p      apiwallet.Plan
		ca, ua int64
	)
	if err := row.Scan(&p.ID, &p.Name, &p.PriceMicros, &p.IncludedCalls, &p.HardStop, &p.RatePerMinute,
		&p.OverageMicrosPerCall, &p.PremiumMicrosPerCall, &p.AnalyticsAddonMicros, &p.Active, &ca, &ua); err != nil {
		return nil, err
	}
	p.CreatedAt, p.UpdatedAt = fromMicros(ca), fromMicros(ua)
	return &p, nil
}

// FindPlans implements apiwallet.BillingStore.
func (db *DB) FindPlans(ctx context.Context) (_ []*apiwallet.Plan, err error) {
	defer apiwallet.Wrap(&err, "FindPlans")
	rows, err := db.db.QueryContext(ctx, `SELECT `+planColumns+` FROM plans ORDER BY price_micros, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var plans []*apiwallet.Plan
	for rows.Next() {
		p, err := scanPlan(rows)
		if err != nil {
			return nil, err
		}
		plans = append(plans, p)
	}
	return plans, rows.Err()
}

// FindPlanByID implements apiwallet.BillingStore.
func (db *DB) FindPlanByID(ctx context.Context, id string) (_ *apiwallet.Plan, err error) {
	defer apiwallet.Wrap(&err, "FindPlanByID(%s)", id)
	p, err := scanPlan(db.db.QueryRowContext(ctx, `SELECT `+planColumns+` FROM plans WHERE id = $1`, id))
	if err != nil {
		return nil, notFound(err, "plan")
	}
	return p, nil
}

// CreatePlan implements apiwallet.BillingStore.
func (db *DB) CreatePlan(ctx context.Context, p *apiwallet.Plan, ev *apiwallet.AuditEvent) (err error) {
	defer apiwallet.Wrap(&err, "CreatePlan(%s)", p.ID)
	now := db.now()
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO plans (`+planColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			p.ID, p.Name, p.PriceMicros, p.IncludedCalls, p.HardStop, p.RatePerMinute, p.OverageMicrosPerCall,
			p.PremiumMicrosPerCall, p.AnalyticsAddonMicros, p.Active, now, now); err != nil {
			if db.dialect.isUnique(err) {
				return apiwallet.Errorf(apiwallet.ECONFLICT, "a plan with id %q exists already", p.ID)
			}
			return err
		}
		if ev != nil {
			ev.TargetType, ev.TargetID = "plan", p.ID
			ev.Details = planDetails(p)
		}
		return db.appendAudit(ctx, tx, ev)
	})
	if err == nil {
		p.CreatedAt, p.UpdatedAt = fromMicros(now), fromMicros(now)
	}
	return err
}

// planDetails is what the audit log records of a plan: its prices and
// quotas, which are not secret.
func planDetails(p *apiwallet.Plan) map[string]string {
	return map[string]string{
		"name": p.Name, "price_micros": fmt.Sprint(p.PriceMicros), "included_calls": fmt.Sprint(p.IncludedCalls),
		"hard_stop": fmt.Sprint(p.HardStop), "rate_per_minute": fmt.Sprint(p.RatePerMinute),
		"overage_micros_per_call": fmt.Sprint(p.OverageMicrosPerCall),
		"premium_micros_per_call": fmt.Sprint(p.PremiumMicrosPerCall),
		"analytics_addon_micros":  fmt.Sprint(p.AnalyticsAddonMicros), "active": fmt.Sprint(p.Active),
	}
}

// UpdatePlan implements apiwallet.BillingStore. The row is read and
// written in one transaction, locked by a no-op update first, so that two
// administrators editing different fields at once both keep their change.
func (db *DB) UpdatePlan(ctx context.Context, id string, upd apiwallet.PlanUpdate, ev *apiwallet.AuditEvent) (p *apiwallet.Plan, err error) {
	defer apiwallet.Wrap(&err, "UpdatePlan(%s)", id)
	err = db.tx(ctx, func(tx *sql.Tx) error {
		p, err = scanPlan(tx.QueryRowContext(ctx, `UPDATE plans SET id = id WHERE id = $1 RETURNING `+planColumns, id))
		if err != nil {
			return notFound(err, "plan")
		}
		upd.Apply(p)
		now := db.now()
		if _, err := tx.ExecContext(ctx, `UPDATE plans SET name = $1, price_micros = $2, included_calls = $3,
				hard_stop = $4, rate_per_minute = $5, overage_micros_per_call = $6, premium_micros_per_call = $7,
				analytics_addon_micros = $8, active = $9, updated_at = $10 WHERE id = $11`,
			p.Name, p.PriceMicros, p.IncludedCalls, p.HardStop, p.RatePerMinute, p.OverageMicrosPerCall,
			p.PremiumMicrosPerCall, p.AnalyticsAddonMicros, p.Active, now, id); err != nil {
			return err
		}
		p.UpdatedAt = fromMicros(now)
		if ev != nil {
			ev.TargetType, ev.TargetID = "plan", id
			ev.Details = planDetails(p)
		}
		return db.appendAudit(ctx, tx, ev)
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

const workspaceBillingColumns = `id, name, personal, plan, created_at, analytics_addon, premium_routing, timezone`

func scanWorkspaceBilling(row rowScanner) (*apiwallet.WorkspaceBilling, error) {
	var (
		w  apiwallet.Workspace
		b  = apiwallet.WorkspaceBilling{Workspace: &w}
		at int64
	)
	if err := row.Scan(&w.ID, &w.Name, &w.Personal, &w.Plan, &at, &b.Settings.AnalyticsAddon,
		&b.Settings.PremiumRouting, &b.Settings.Timezone); err != nil {
		return nil, err
	}
	w.CreatedAt = fromMicros(at)
	return &b, nil
}

// FindWorkspaceBilling implements apiwallet.BillingStore.
func (db *DB) FindWorkspaceBilling(ctx context.Context, workspaceID string) (_ *apiwallet.WorkspaceBilling, err error) {
	defer apiwallet.Wrap(&err, "FindWorkspaceBilling")
	b, err := scanWorkspaceBilling(db.db.QueryRowContext(ctx,
		`SELECT `+workspaceBillingColumns+` FROM workspaces WHERE id = $1`, workspaceID))
	if err != nil {
		return nil, notFound(err, "workspace")
	}
	return b, nil
}

// UpdateBillingSettings implements apiwallet.BillingStore.
func (db *DB) UpdateBillingSettings(ctx context.Context, workspaceID string, upd apiwallet.BillingSettingsUpdate,
	ev *apiwallet.AuditEvent) (b *apiwallet.WorkspaceBilling, err error) {
	defer apiwallet.Wrap(&err, "UpdateBillingSettings")
	err = db.tx(ctx, func(tx *sql.Tx) error {
		b, err = scanWorkspaceBilling(tx.QueryRowContext(ctx, `UPDATE workspaces SET
				analytics_addon = COALESCE($1, analytics_addon), premium_routing = COALESCE($2, premium_routing),
				timezone = COALESCE($4, timezone)
			WHERE id = $3 RETURNING `+workspaceBillingColumns, nullBool(upd.AnalyticsAddon), nullBool(upd.PremiumRouting), workspaceID,
			nullString(upd.Timezone)))
		if err != nil {
			return notFound(err, "workspace")
		}
		if ev != nil {
			ev.WorkspaceID, ev.TargetType, ev.TargetID = workspaceID, "workspace", workspaceID
			ev.Details = map[string]string{
				"analytics_addon": fmt.Sprint(b.Settings.AnalyticsAddon),
				"premium_routing": fmt.Sprint(b.Settings.PremiumRouting),
				"timezone":        b.Settings.Timezone,
			}
		}
		return db.appendAudit(ctx, tx, ev)
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

func nullString(s *string) sql.NullString {
	if s == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: *s, Valid: true}
}

func nullBool(b *bool) sql.NullBool {
	if b == nil {
		return sql.NullBool{}
	}
	return sql.NullBool{Bool: *b, Valid: true}
}

// ChangeWorkspacePlan implements apiwallet.BillingStore. The workspace row
// is locked first, so two changes of one workspace (an administrator and
// a webhook at once) are recorded in the order they were made, each with
// the plan the other left.
func (db *DB) ChangeWorkspacePlan(ctx context.Context, workspaceID, plan, source string, ev *apiwallet.AuditEvent) (w *apiwallet.Workspace, err error) {
	defer apiwallet.Wrap(&err, "ChangeWorkspacePlan(%s)", workspaceID)
	if source == "" {
		return nil, fmt.Errorf("a plan change needs a source")
	}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if w, err = lockWorkspace(ctx, tx, workspaceID); err != nil {
			return err
		}
		if w.Plan == plan {
			return nil
		}
		from := w.Plan
		actor := ""
		if ev != nil {
			actor = ev.ActorID
		}
		if err := db.setWorkspacePlan(ctx, tx, w, plan, source, actor); err != nil {
			return err
		}
		if ev != nil {
			ev.WorkspaceID, ev.TargetType, ev.TargetID = workspaceID, "workspace", workspaceID
			ev.Details = map[string]string{"from": from, "to": plan, "source": source}
		}
		return db.appendAudit(ctx, tx, ev)
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// setWorkspacePlan moves the locked workspace w to plan, which must be an
// active plan, and records the change, in tx. Every path that changes a
// workspace's plan goes through it.
func (db *DB) setWorkspacePlan(ctx context.Context, tx *sql.Tx, w *apiwallet.Workspace, plan, source, actorID string) error {
	if w.Plan == plan {
		return nil
	}
	var active bool
	err := tx.QueryRowContext(ctx, `SELECT active FROM plans WHERE id = $1`, plan).Scan(&active)
	if errors.Is(err, sql.ErrNoRows) {
		return &apiwallet.Error{Code: apiwallet.EINVALID, Message: "the request has invalid fields",
			Fields: []apiwallet.FieldError{{Field: "plan", Detail: fmt.Sprintf("no plan has the id %q", plan)}}}
	} else if err != nil {
		return err
	}
	if !active {
		return &apiwallet.Error{Code: apiwallet.EINVALID, Message: "the request has invalid fields",
			Fields: []apiwallet.FieldError{{Field: "plan", Detail: fmt.Sprintf("plan %q is retired and takes no new workspaces", plan)}}}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE workspaces SET plan = $1 WHERE id = $2`, plan, w.ID); err != nil {
		return err
	}
	// The plan gives the workspace's rate, which the proxy caches. The
	// caller's event may be missing: the admin service leaves it out
	// when its earlier read showed the plan already set.
	db.markChanged(tx)
	if err := db.recordPlanChange(ctx, tx, w.ID, w.Plan, plan, source, actorID); err != nil {
		return err
	}
	w.Plan = plan
	return nil
}

// recordPlanChange appends one row to plan_changes in tx. Every path that
// changes workspaces.plan should call it in the same transaction, so that
// the business report's churn sees the change.
func (db *DB) recordPlanChange(ctx context.Context, tx *sql.Tx, workspaceID, from, to, source, actorID string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO plan_changes (workspace_id, from_plan, to_plan, source, actor_id, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, workspaceID, from, to, source, actorID, db.now())
	return err
}

// FindPlanChanges implements apiwallet.BillingStore.
func (db *DB) FindPlanChanges(ctx context.Context, workspaceID string, since time.Time) (_ []*apiwallet.PlanChange, err error) {
	defer apiwallet.Wrap(&err, "FindPlanChanges")
	rows, err := db.db.QueryContext(ctx, `SELECT id, workspace_id, from_plan, to_plan, source, actor_id, created_at
		FROM plan_changes WHERE workspace_id = $1 AND created_at >= $2 ORDER BY id`, workspaceID, micros(since))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*apiwallet.PlanChange
	for rows.Next() {
		var (
			c  apiwallet.PlanChange
			at int64
		)
		if err := rows.Scan(&c.ID, &c.WorkspaceID, &c.FromPlan, &c.ToPlan, &c.Source, &c.ActorID, &at); err != nil {
			return nil, err
		}
		c.CreatedAt = fromMicros(at)
		out = append(out, &c)
	}
	return out, rows.Err()
}

// BillingSnapshot implements apiwallet.BillingStore. It aggregates in SQL
// and reads individual rows only for the workspaces whose plan changed
// since from, which are few: the plan at from of every other workspace is
// its plan now. The reads are not one transaction, so a change made while
// they run may show in one count and not another; the report is a
// snapshot for people, not for billing.
func (db *DB) BillingSnapshot(ctx context.Context, from, to time.Time) (s *apiwallet.BillingSnapshot, err error) {
	defer apiwallet.Wrap(&err, "BillingSnapshot")
	s = &apiwallet.BillingSnapshot{From: from.UTC(), To: to.UTC()}
	f := micros(from)

	rows, err := db.db.QueryContext(ctx, `SELECT plan, COUNT(*),
			CAST(SUM(CASE WHEN analytics_addon THEN 1 ELSE 0 END) AS BIGINT)
		FROM workspaces GROUP BY plan ORDER BY plan`)
	if err != nil {
		return nil, err
	}
	err = scanRows(rows, func() error {
		var c apiwallet.PlanCount
		if err := rows.Scan(&c.Plan, &c.Workspaces, &c.AnalyticsAddon); err != nil {
			return err
		}
		s.Plans = append(s.Plans, c)
		return nil
	})
	if err != nil {
		return nil, err
	}

	// The workspaces that existed at from, by their plan now.
	start := map[string]int64{}
	rows, err = db.db.QueryContext(ctx, `SELECT plan, COUNT(*) FROM workspaces WHERE created_at < $1 GROUP BY plan`, f)
	if err != nil {
		return nil, err
	}
	err = scanRows(rows, func() error {
		var (
			plan string
			n    int64
		)
		if err := rows.Scan(&plan, &n); err != nil {
			return err
		}
		start[plan] = n
		return nil
	})
	if err != nil {
		return nil, err
	}

	// Those of them whose plan changed since from: their plan at from is
	// the from_plan of their first change since.
	rows, err = db.db.QueryContext(ctx, `SELECT c.workspace_id, c.from_plan, w.plan
		FROM plan_changes c JOIN workspaces w ON w.id = c.workspace_id
		WHERE c.created_at >= $1 AND w.created_at < $1 ORDER BY c.id`, f)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	err = scanRows(rows, func() error {
		var m apiwallet.PlanMove
		if err := rows.Scan(&m.WorkspaceID, &m.From, &m.To); err != nil {
			return err
		}
		if seen[m.WorkspaceID] {
			return nil
		}
		seen[m.WorkspaceID] = true
		start[m.To]--
		start[m.From]++
		if m.From != m.To {
			s.Moves = append(s.Moves, m)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for plan, n := range start {
		if n != 0 {
			s.StartPlans = append(s.StartPlans, apiwallet.PlanCount{Plan: plan, Workspaces: n})
		}
	}
	sort.Slice(s.StartPlans, func(i, j int) bool { return s.StartPlans[i].Plan < s.StartPlans[j].Plan })
	sort.Slice(s.Moves, func(i, j int) bool { return s.Moves[i].WorkspaceID < s.Moves[j].WorkspaceID })

	// Active: any call in the period. Usage of an erased workspace is
	// erased with it, so every id counted here still exists.
	if err := db.db.QueryRowContext(ctx, `SELECT COUNT(DISTINCT workspace_id) FROM usage_hourly
		WHERE hour >= $1 AND hour < $2 AND calls > 0`, floorHour(f), micros(to)).Scan(&s.ActiveWorkspaces); err != nil {
		return nil, err
	}
	return s, nil
}

// scanRows calls scan for each row and closes rows.
func scanRows(rows *sql.Rows, scan func() error) error {
	defer rows.Close()
	for rows.Next() {
		if err := scan(); err != nil {
			return err
		}
	}
	return rows.Err()
}
