package sqldb

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/apikeywallet/apiwallet"
)

var _ apiwallet.AnalyticsStore = (*DB)(nil)

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
	upsertAnalyticsTail  = func() string {
		var b strings.Builder
		b.WriteString(" ON CONFLICT (workspace_id, hour, service, key_id, token_id, user_id, endpoint) DO UPDATE SET ")
		for i, c := range figureColumns {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s = usage_rollup.%s + excluded.%s", c, c, c)
		}
		return b.String()
	}()
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

// writeAnalytics upserts rows into usage_rollup, adding to what is there.
func (db *DB) writeAnalytics(ctx context.Context, tx *sql.Tx, keys []analyticsKey, sums map[analyticsKey]*apiwallet.UsageFigures) error {
	var args []any
	for start := 0; start < len(keys); start += analyticsChunk {
		chunk := keys[start:min(start+analyticsChunk, len(keys))]
		var q strings.Builder
		q.WriteString(`INSERT INTO usage_rollup (` + analyticsKeyColumns + `, ` + strings.Join(figureColumns, ", ") + `) VALUES `)
		placeholders(&q, len(chunk), analyticsColumnCount, db.dialect.name == "sqlite")
		q.WriteString(upsertAnalyticsTail)
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

// UsageGroups implements apiwallet.AnalyticsStore: one aggregate query
// over usage_rollup, which its primary key (workspace, hour, ...) or the
// token index narrows to the period.
func (db *DB) UsageGroups(ctx context.Context, q apiwallet.UsageQuery) (_ []apiwallet.UsageGroup, err error) {
	defer apiwallet.Wrap(&err, "UsageGroups")
	if q.WorkspaceID == "" {
		return nil, fmt.Errorf("a workspace id is required")
	}
	col, ok := dimColumns[q.GroupBy]
	if q.GroupBy == apiwallet.DimNone {
		col, ok = "''", true
	}
	if !ok {
		return nil, apiwallet.Errorf(apiwallet.EINVALID, "unknown grouping %q", q.GroupBy)
	}
	where := []string{"workspace_id = $1", "hour >= $2", "hour < $3"}
	args := []any{q.WorkspaceID, floorHour(micros(q.From)), micros(q.To)}
	for _, f := range []struct{ col, v string }{{"service", q.Service}, {"key_id", q.KeyID}, {"token_id", q.TokenID}} {
		if f.v != "" {
			args = append(args, f.v)
			where = append(where, fmt.Sprintf("%s = $%d", f.col, len(args)))
		}
	}
	// The group column is cast to text so that one Scan fits every
	// grouping (hour is a number).
	sel := col
	if q.GroupBy == apiwallet.DimHour {
		sel = "CAST(hour AS TEXT)"
	}
	query := `SELECT ` + sel + `, ` + sumFigures + ` FROM usage_rollup WHERE ` + strings.Join(where, " AND ")
	if q.GroupBy != apiwallet.DimNone {
		query += ` GROUP BY ` + col + ` ORDER BY ` + col
	}
	rows, err := db.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []apiwallet.UsageGroup
	for rows.Next() {
		var (
			g     apiwallet.UsageGroup
			group sql.NullString
		)
		dest := []any{&group}
		for _, p := range figureFields(&g.UsageFigures) {
			dest = append(dest, p)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		if q.GroupBy == apiwallet.DimNone && g.Calls == 0 {
			continue // SUM over no rows
		}
		g.Group = group.String
		if q.GroupBy == apiwallet.DimHour {
			var us int64
			if _, err := fmt.Sscan(g.Group, &us); err != nil {
				return nil, err
			}
			g.Hour, g.Group = fromMicros(us), ""
		}
		out = append(out, g)
	}
	return out, rows.Err()
}
