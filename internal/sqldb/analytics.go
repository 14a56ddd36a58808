package sqldb

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apikeywallet/apiwallet"
)

var (
	_ apiwallet.AnalyticsStore = (*DB)(nil)
	_ apiwallet.FleetStore     = (*DB)(nil)
)

// analyticsKey names one usage_rollup row.
type analyticsKey struct {
	workspaceID, service, keyID, tokenID, userID, endpoint string
	hour                                                   int64
}

func compareAnalyticsKeys(a, b analyticsKey) int {
	return cmp.Or(cmp.Compare(a.workspaceID, b.workspaceID), cmp.Compare(a.hour, b.hour),
		cmp.Compare(a.service, b.service), cmp.Compare(a.keyID, b.keyID), cmp.Compare(a.tokenID, b.tokenID),
		cmp.Compare(a.userID, b.userID), cmp.Compare(a.endpoint, b.endpoint))
}

// figureColumns are usage_rollup's counters, in the order of
// figureFields.
var figureColumns = func() []string {
	cols := []string{"calls", "successes", "client_errors", "server_errors", "network_errors", "refused",
		"rate_limited", "unreached", "cost_micros", "saved_micros", "bytes_in", "bytes_out",
		"latency_micros_sum", "overhead_micros_sum"}
	for _, p := range []string{"lat", "ovh"} {
		for i := range apiwallet.LatencyBuckets {
			cols = append(cols, fmt.Sprintf("%s_%02d", p, i))
		}
	}
	return cols
}()

// figureFields returns pointers to f's counters in figureColumns order,
// for Scan and for building arguments.
func figureFields(f *apiwallet.UsageFigures) []*int64 {
	out := []*int64{&f.Calls, &f.Successes, &f.ClientErrors, &f.ServerErrors, &f.NetworkErrors, &f.Refused,
		&f.RateLimited, &f.Unreached, &f.CostMicros, &f.SavedMicros, &f.BytesIn, &f.BytesOut,
		&f.LatencyMicrosSum, &f.OverheadMicrosSum}
	for i := range f.Latency {
		out = append(out, &f.Latency[i])
	}
	for i := range f.Overhead {
		out = append(out, &f.Overhead[i])
	}
	return out
}

const analyticsKeyColumns = "workspace_id, service, key_id, token_id, user_id, endpoint, hour"

var (
	analyticsColumnCount = 7 + len(figureColumns)
	upsertAnalyticsTail  = func(table string) string {
		var b strings.Builder
		b.WriteString(" ON CONFLICT (workspace_id, hour, service, key_id, token_id, user_id, endpoint) DO UPDATE SET ")
		for i, c := range figureColumns {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s = %s.%s + excluded.%s", c, table, c, c)
		}
		return b.String()
	}
	// sumFigures is the SELECT list summing every counter.
	sumFigures = func() string {
		parts := make([]string, len(figureColumns))
		for i, c := range figureColumns {
			parts[i] = "CAST(COALESCE(SUM(" + c + "), 0) AS BIGINT)"
		}
		return strings.Join(parts, ", ")
	}()
)

// analyticsChunk keeps a multi-row upsert of usage_rollup under SQLite's
// default limit of 32,766 host parameters and PostgreSQL's 65,535.
const analyticsChunk = 100

// upsertAnalytics adds the records of batch marked done to usage_rollup,
// in a fixed order of rows (see InsertUsage).
func (db *DB) upsertAnalytics(ctx context.Context, tx *sql.Tx, batch []apiwallet.Usage, done []bool,
	created func(*apiwallet.Usage) int64) error {
	sums := map[analyticsKey]*apiwallet.UsageFigures{}
	for i := range batch {
		if !done[i] {
			continue
		}
		u := &batch[i]
		k := analyticsKey{u.WorkspaceID, u.Service, u.KeyID, u.TokenID, u.UserID, u.Endpoint, floorHour(created(u))}
		f := sums[k]
		if f == nil {
			f = &apiwallet.UsageFigures{}
			sums[k] = f
		}
		f.AddRecord(u)
	}
	keys := make([]analyticsKey, 0, len(sums))
	for k := range sums {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareAnalyticsKeys)
	return db.writeAnalytics(ctx, tx, keys, sums)
}

// The three analytics rollups: by hour with every dimension, the same by
// UTC day, and by hour with service and key only.
const (
	rollupHourly = "usage_rollup"
	rollupDaily  = "usage_rollup_daily"
	rollupKeys   = "usage_rollup_keys"
)

const dayMicros = 24 * hourMicros

// writeAnalytics adds the hourly sums to the three rollups.
func (db *DB) writeAnalytics(ctx context.Context, tx *sql.Tx, keys []analyticsKey, sums map[analyticsKey]*apiwallet.UsageFigures) error {
	if err := db.writeRollup(ctx, tx, rollupHourly, keys, sums); err != nil {
		return err
	}
	for _, table := range []string{rollupDaily, rollupKeys} {
		coarse := map[analyticsKey]*apiwallet.UsageFigures{}
		var ck []analyticsKey
		for _, k := range keys {
			c := k
			if table == rollupDaily {
				c.hour = k.hour - ((k.hour%dayMicros)+dayMicros)%dayMicros
			} else {
				c.tokenID, c.userID, c.endpoint = "", "", ""
			}
			f := coarse[c]
			if f == nil {
				f = &apiwallet.UsageFigures{}
				coarse[c] = f
				ck = append(ck, c)
			}
			f.Add(sums[k])
		}
		slices.SortFunc(ck, compareAnalyticsKeys)
		if err := db.writeRollup(ctx, tx, table, ck, coarse); err != nil {
			return err
		}
	}
	return nil
}

// writeRollup upserts rows into one rollup table, adding to what is there.
func (db *DB) writeRollup(ctx context.Context, tx *sql.Tx, table string, keys []analyticsKey, sums map[analyticsKey]*apiwallet.UsageFigures) error {
	tail := upsertAnalyticsTail(table)
	var args []any
	for start := 0; start < len(keys); start += analyticsChunk {
		chunk := keys[start:min(start+analyticsChunk, len(keys))]
		var q strings.Builder
		q.WriteString(`INSERT INTO ` + table + ` (` + analyticsKeyColumns + `, ` + strings.Join(figureColumns, ", ") + `) VALUES `)
		placeholders(&q, len(chunk), analyticsColumnCount, db.dialect.name == "sqlite")
		q.WriteString(tail)
		args = args[:0]
		for _, k := range chunk {
			args = append(args, k.workspaceID, k.service, k.keyID, k.tokenID, k.userID, k.endpoint, k.hour)
			for _, p := range figureFields(sums[k]) {
				args = append(args, *p)
			}
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// AnalyticsRow is one usage_rollup row, for tools that write the rollup
// directly (the analytics benchmark's data generator).
type AnalyticsRow struct {
	WorkspaceID, Service, KeyID, TokenID, UserID, Endpoint string
	Hour                                                   int64 // microseconds at the start of the UTC hour
	apiwallet.UsageFigures
}

// InsertAnalyticsRows adds rows to usage_rollup in one transaction. It
// bypasses usage_records and usage_hourly: it is for generating benchmark
// data, never for recording calls.
func (db *DB) InsertAnalyticsRows(ctx context.Context, rows []AnalyticsRow) error {
	sums := make(map[analyticsKey]*apiwallet.UsageFigures, len(rows))
	keys := make([]analyticsKey, 0, len(rows))
	for i := range rows {
		r := &rows[i]
		k := analyticsKey{r.WorkspaceID, r.Service, r.KeyID, r.TokenID, r.UserID, r.Endpoint, floorHour(r.Hour)}
		if f := sums[k]; f != nil {
			f.Add(&r.UsageFigures)
			continue
		}
		f := r.UsageFigures
		sums[k] = &f
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareAnalyticsKeys)
	return db.tx(ctx, func(tx *sql.Tx) error { return db.writeAnalytics(ctx, tx, keys, sums) })
}

var dimColumns = map[string]string{
	apiwallet.DimService: "service", apiwallet.DimKey: "key_id", apiwallet.DimToken: "token_id",
	apiwallet.DimUser: "user_id", apiwallet.DimEndpoint: "endpoint", apiwallet.DimHour: "hour",
}

// UsageGroups implements apiwallet.AnalyticsStore. It reads the
// smallest rollup that holds what q needs: usage_rollup_keys (service
// and key by hour) when q needs no token, user or endpoint; otherwise
// whole UTC days from usage_rollup_daily and only the part-days at the
// ends from usage_rollup. Every read is a range of the table's primary
// key (workspace, hour, ...), or of its token index.
func (db *DB) UsageGroups(ctx context.Context, q apiwallet.UsageQuery) (_ []apiwallet.UsageGroup, err error) {
	defer apiwallet.Wrap(&err, "UsageGroups")
	if q.WorkspaceID == "" {
		return nil, fmt.Errorf("a workspace id is required")
	}
	col, ok := dimColumns[q.GroupBy]
	if q.GroupBy == apiwallet.DimNone {
		col, ok = "", true
	}
	if !ok {
		return nil, apiwallet.Errorf(apiwallet.EINVALID, "unknown grouping %q", q.GroupBy)
	}
	a, b := floorHour(micros(q.From)), ceilHour(micros(q.To))
	if b <= a {
		return nil, nil
	}
	needsDetail := q.TokenID != "" || q.GroupBy == apiwallet.DimToken || q.GroupBy == apiwallet.DimUser ||
		q.GroupBy == apiwallet.DimEndpoint
	type part struct {
		table    string
		from, to int64
	}
	var parts []part
	d0 := a + ((dayMicros-a%dayMicros)%dayMicros+dayMicros)%dayMicros
	d1 := b - ((b%dayMicros)+dayMicros)%dayMicros
	switch {
	case !needsDetail:
		parts = []part{{rollupKeys, a, b}}
	case q.GroupBy == apiwallet.DimHour || d0 >= d1:
		parts = []part{{rollupHourly, a, b}}
	default:
		parts = []part{{rollupDaily, d0, d1}, {rollupHourly, a, d0}, {rollupHourly, d1, b}}
	}
	merged := map[string]*apiwallet.UsageGroup{}
	var order []string
	for _, p := range parts {
		if p.to <= p.from {
			continue
		}
		if err := db.sumRollup(ctx, p.table, col, q, p.from, p.to, func(group string, f *apiwallet.UsageFigures) {
			g := merged[group]
			if g == nil {
				g = &apiwallet.UsageGroup{Group: group}
				merged[group] = g
				order = append(order, group)
			}
			g.Add(f)
		}); err != nil {
			return nil, err
		}
	}
	slices.Sort(order)
	out := make([]apiwallet.UsageGroup, 0, len(order))
	for _, group := range order {
		g := merged[group]
		if g.Calls == 0 && q.GroupBy == apiwallet.DimNone {
			continue
		}
		if q.GroupBy == apiwallet.DimHour {
			var us int64
			if _, err := fmt.Sscan(group, &us); err != nil {
				return nil, err
			}
			g.Hour, g.Group = fromMicros(us), ""
		}
		out = append(out, *g)
	}
	if q.GroupBy == apiwallet.DimHour {
		slices.SortFunc(out, func(x, y apiwallet.UsageGroup) int { return x.Hour.Compare(y.Hour) })
	}
	return out, nil
}

// sumRollup sums one rollup table's rows of [from, to) that q's filters
// select, grouped by col ("" for one group), calling add for each.
func (db *DB) sumRollup(ctx context.Context, table, col string, q apiwallet.UsageQuery, from, to int64,
	add func(string, *apiwallet.UsageFigures)) error {
	where := []string{"workspace_id = $1", "hour >= $2", "hour < $3"}
	args := []any{q.WorkspaceID, from, to}
	for _, f := range []struct{ col, v string }{{"service", q.Service}, {"key_id", q.KeyID}, {"token_id", q.TokenID}} {
		if f.v != "" {
			args = append(args, f.v)
			where = append(where, fmt.Sprintf("%s = $%d", f.col, len(args)))
		}
	}
	// The group is read as text so that one Scan fits every grouping.
	sel, group := "''", ""
	if col != "" {
		sel, group = "CAST("+col+" AS TEXT)", " GROUP BY "+col
	}
	rows, err := db.db.QueryContext(ctx, `SELECT `+sel+`, `+sumFigures+` FROM `+table+
		` WHERE `+strings.Join(where, " AND ")+group, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			f apiwallet.UsageFigures
			g string
		)
		dest := []any{&g}
		for _, p := range figureFields(&f) {
			dest = append(dest, p)
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		add(g, &f)
	}
	return rows.Err()
}

// FleetUsage implements apiwallet.FleetStore, across every workspace:
// for the operator's business report only.
func (db *DB) FleetUsage(ctx context.Context, from, to time.Time) (f apiwallet.FleetUsage, err error) {
	defer apiwallet.Wrap(&err, "FleetUsage")
	err = db.db.QueryRowContext(ctx, `SELECT CAST(COALESCE(SUM(calls), 0) AS BIGINT), CAST(COALESCE(SUM(successes), 0) AS BIGINT),
			CAST(COALESCE(SUM(latency_micros_sum), 0) AS BIGINT)
		FROM usage_rollup_keys WHERE hour >= $1 AND hour < $2`, floorHour(micros(from)), ceilHour(micros(to))).
		Scan(&f.Calls, &f.Successes, &f.LatencyMicrosSum)
	if err != nil {
		return f, err
	}
	err = db.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT DISTINCT r.workspace_id, r.key_id FROM usage_rollup_keys r
			JOIN api_keys k ON k.id = r.key_id AND k.workspace_id = r.workspace_id
		WHERE r.hour >= $1 AND r.hour < $2 AND r.calls > 0) used`, floorHour(micros(from)), ceilHour(micros(to))).Scan(&f.ActiveKeys)
	if err != nil {
		return f, err
	}
	err = db.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_keys`).Scan(&f.RegisteredKeys)
	return f, err
}
