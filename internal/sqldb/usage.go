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

var _ apiwallet.UsageStore = (*DB)(nil)

const usageColumns = `id, workspace_id, service, key_id, token_id, user_id, method, status, failed,
	attempts, attempted, strategy, premium, latency_micros, overhead_micros, bytes_in, bytes_out,
	cost_micros, saved_micros, created_at, unreached, endpoint`

const usageColumnCount = 22

const hourlyColumns = `workspace_id, service, key_id, hour, calls, failed, premium, cost_micros,
	saved_micros, bytes_in, bytes_out, latency_micros_sum, unreached`

const hourlyColumnCount = 13

// Rows per multi-row statement, whatever the caller's batch size. On
// PostgreSQL 100 rows (2,000 placeholders, well under its 65,535) make a
// batch of 500 five round trips; on SQLite, in process, a shorter statement
// parses faster and round trips cost nothing.
const (
	usagePGChunk     = 100
	usageSQLiteChunk = 50
)

// usageSQLitePause is how long an unhurried SQLite batch steps aside
// between chunks (see apiwallet.Unhurried). SQLite runs in this process,
// so a batch of 500 rows is about 4 ms of CPU taken from the proxy path in
// one piece, and calls that arrive meanwhile wait for it, which shows in
// the proxy's tail latency. Sleeping between chunks cuts it into pieces of
// a few hundred microseconds and gives the core back in between; it costs
// the batch only wall time, and SQLite's write lock held a few
// milliseconds longer.
const usageSQLitePause = 500 * time.Microsecond

// hourMicros is one hour in microseconds, the unit of every time column.
const hourMicros = int64(time.Hour / time.Microsecond)

// floorHour returns the start of the UTC hour holding us (also before
// 1970, where Go's % is negative).
func floorHour(us int64) int64 {
	r := us % hourMicros
	if r < 0 {
		r += hourMicros
	}
	return us - r
}

// ceilHour returns the first hour start at or after us.
func ceilHour(us int64) int64 {
	if f := floorHour(us); f != us {
		return f + hourMicros
	}
	return us
}

// rollupKey names one usage_hourly row.
type rollupKey struct {
	workspaceID, service, keyID string
	hour                        int64
}

// placeholders appends rows of cols placeholders each: "($1, $2), ($3,
// $4)", or with anonymous "(?, ?), (?, ?)" (see insertUsageRecords).
func placeholders(b *strings.Builder, rows, cols int, anonymous bool) {
	n := 1
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := range cols {
			if c > 0 {
				b.WriteString(", ")
			}
			if anonymous {
				b.WriteByte('?')
			} else {
				fmt.Fprintf(b, "$%d", n)
			}
			n++
		}
		b.WriteByte(')')
	}
}

// InsertUsage implements apiwallet.UsageStore. Records go in with
// multi-row INSERT ... ON CONFLICT (id) DO NOTHING RETURNING id, so the
// database itself says which rows are new; only those are summed into the
// hourly rollups, which are upserted in a fixed order (so that concurrent
// batches from several instances lock rollup rows in the same order and
// cannot deadlock), all in one transaction.
func (db *DB) InsertUsage(ctx context.Context, batch []apiwallet.Usage) (err error) {
	defer apiwallet.Wrap(&err, "InsertUsage(%d records)", len(batch))
	if len(batch) == 0 {
		return nil
	}
	for i := range batch {
		if batch[i].ID == "" || batch[i].WorkspaceID == "" {
			return apiwallet.Errorf(apiwallet.EINVALID, "usage record %d has no id or no workspace id", i)
		}
	}
	now := db.now()
	created := func(u *apiwallet.Usage) int64 {
		if u.CreatedAt.IsZero() {
			return now
		}
		return micros(u.CreatedAt)
	}
	return db.tx(ctx, func(tx *sql.Tx) error {
		inserted, err := db.insertUsageRecords(ctx, tx, batch, created)
		if err != nil {
			return err
		}
		if len(inserted) == 0 {
			return nil // a retry of a batch already written
		}

		sums := make(map[rollupKey]*apiwallet.UsageTotals)
		done := make([]bool, len(batch))
		for i := range batch {
			u := &batch[i]
			if !inserted[u.ID] {
				continue
			}
			// A record that appears twice in one batch was inserted once.
			delete(inserted, u.ID)
			done[i] = true
			k := rollupKey{u.WorkspaceID, u.Service, u.KeyID, floorHour(created(u))}
			t := sums[k]
			if t == nil {
				t = &apiwallet.UsageTotals{}
				sums[k] = t
			}
			t.Add(usageTotals(u))
		}
		keys := make([]rollupKey, 0, len(sums))
		for k := range sums {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b rollupKey) int {
			return cmp.Or(cmp.Compare(a.workspaceID, b.workspaceID), cmp.Compare(a.service, b.service),
				cmp.Compare(a.keyID, b.keyID), cmp.Compare(a.hour, b.hour))
		})
		if err := db.upsertRollups(ctx, tx, keys, sums); err != nil {
			return err
		}
		return db.upsertAnalytics(ctx, tx, batch, done, created)
	})
}

// insertUsageRecords inserts batch, skipping records already stored, and
// returns the IDs it inserted, as the database reports them with
// INSERT ... ON CONFLICT (id) DO NOTHING RETURNING id, several rows to a
// statement.
//
// PostgreSQL gets $N placeholders, usagePGChunk rows a statement (one
// round trip each; pgx caches the prepared statement per connection).
// SQLite gets anonymous ? placeholders instead, because it looks $N up by
// name with a linear search, which makes a statement of thousands of them
// quadratic; and since parsing a long VALUES list is most of its cost,
// the full-chunk statement is prepared once per batch.
func (db *DB) insertUsageRecords(ctx context.Context, tx *sql.Tx, batch []apiwallet.Usage,
	created func(*apiwallet.Usage) int64) (map[string]bool, error) {
	sqlite := db.dialect.name == "sqlite"
	size := usagePGChunk
	if sqlite {
		size = usageSQLiteChunk
	}
	inserted := make(map[string]bool, len(batch))
	args := make([]any, 0, min(len(batch), size)*usageColumnCount)
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	for start := 0; start < len(batch); start += size {
		if sqlite && start > 0 && apiwallet.IsUnhurried(ctx) {
			if err := pause(ctx, usageSQLitePause); err != nil {
				return nil, err
			}
		}
		chunk := batch[start:min(start+size, len(batch))]
		args = args[:0]
		for i := range chunk {
			u := &chunk[i]
			args = append(args, u.ID, u.WorkspaceID, u.Service, u.KeyID, u.TokenID, u.UserID,
				u.Method, u.Status, u.Failed, u.Attempts, u.Attempted, u.Strategy, u.Premium,
				u.LatencyMicros, u.OverheadMicros, u.BytesIn, u.BytesOut, u.CostMicros,
				u.SavedMicros, created(u), u.Unreached, u.Endpoint)
		}
		if sqlite {
			// A batch written for the first time inserts every row, and
			// the row count says so without the ids coming back, which
			// costs SQLite as much as the insert. A retried batch, whose
			// rows may already be there, is written again the long way.
			all, err := db.insertAllOrNothing(ctx, tx, chunk, args, size, &full)
			if err != nil {
				return nil, err
			}
			if all {
				for i := range chunk {
					inserted[chunk[i].ID] = true
				}
				continue
			}
		}
		rows, err := tx.QueryContext(ctx, insertUsageSQL(len(chunk), sqlite, true), args...)
		if err := collectIDs(rows, err, inserted); err != nil {
			return nil, err
		}
	}
	return inserted, nil
}

// pause sleeps for d unless ctx ends first.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// insertAllOrNothing inserts chunk on SQLite inside a savepoint and keeps
// the rows only if every one was new. full is the prepared statement for
// chunks of size rows, prepared on first use.
func (db *DB) insertAllOrNothing(ctx context.Context, tx *sql.Tx, chunk []apiwallet.Usage, args []any,
	size int, full **sql.Stmt) (bool, error) {
	if _, err := tx.ExecContext(ctx, `SAVEPOINT usage_chunk`); err != nil {
		return false, err
	}
	var (
		res sql.Result
		err error
	)
	if len(chunk) == size {
		if *full == nil {
			if *full, err = tx.PrepareContext(ctx, insertUsageSQL(size, true, false)); err != nil {
				return false, err
			}
		}
		res, err = (*full).ExecContext(ctx, args...)
	} else {
		res, err = tx.ExecContext(ctx, insertUsageSQL(len(chunk), true, false), args...)
	}
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	all := n == int64(len(chunk))
	if !all {
		if _, err := tx.ExecContext(ctx, `ROLLBACK TO usage_chunk`); err != nil {
			return false, err
		}
	}
	if _, err := tx.ExecContext(ctx, `RELEASE usage_chunk`); err != nil {
		return false, err
	}
	return all, nil
}

// insertUsageSQL is the statement inserting rows records, returning the
// ids it inserted when returning is set.
func insertUsageSQL(rows int, anonymous, returning bool) string {
	var q strings.Builder
	q.WriteString(`INSERT INTO usage_records (` + usageColumns + `) VALUES `)
	placeholders(&q, rows, usageColumnCount, anonymous)
	q.WriteString(` ON CONFLICT (id) DO NOTHING`)
	if returning {
		q.WriteString(` RETURNING id`)
	}
	return q.String()
}

const upsertHourly = ` ON CONFLICT (workspace_id, service, key_id, hour) DO UPDATE SET
	calls = usage_hourly.calls + excluded.calls,
	failed = usage_hourly.failed + excluded.failed,
	premium = usage_hourly.premium + excluded.premium,
	cost_micros = usage_hourly.cost_micros + excluded.cost_micros,
	saved_micros = usage_hourly.saved_micros + excluded.saved_micros,
	bytes_in = usage_hourly.bytes_in + excluded.bytes_in,
	bytes_out = usage_hourly.bytes_out + excluded.bytes_out,
	latency_micros_sum = usage_hourly.latency_micros_sum + excluded.latency_micros_sum,
	unreached = usage_hourly.unreached + excluded.unreached`

// upsertRollups adds sums to the hourly rollups in the order of keys, the
// same way insertUsageRecords writes records on each backend.
func (db *DB) upsertRollups(ctx context.Context, tx *sql.Tx, keys []rollupKey, sums map[rollupKey]*apiwallet.UsageTotals) error {
	var args []any
	for start := 0; start < len(keys); start += usagePGChunk {
		chunk := keys[start:min(start+usagePGChunk, len(keys))]
		var q strings.Builder
		q.WriteString(`INSERT INTO usage_hourly (` + hourlyColumns + `) VALUES `)
		placeholders(&q, len(chunk), hourlyColumnCount, db.dialect.name == "sqlite")
		q.WriteString(upsertHourly)
		args = args[:0]
		for _, k := range chunk {
			t := sums[k]
			args = append(args, k.workspaceID, k.service, k.keyID, k.hour, t.Calls, t.Failed,
				t.Premium, t.CostMicros, t.SavedMicros, t.BytesIn, t.BytesOut, t.LatencyMicros, t.Unreached)
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// collectStrings returns the one text column of a query's rows.
func collectStrings(rows *sql.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// collectIDs adds each id an INSERT ... RETURNING id returned to ids.
func collectIDs(rows *sql.Rows, err error, ids map[string]bool) error {
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		ids[id] = true
	}
	return rows.Err()
}

// usageTotals is one record as totals.
func usageTotals(u *apiwallet.Usage) apiwallet.UsageTotals {
	t := apiwallet.UsageTotals{
		Calls: 1, CostMicros: u.CostMicros, SavedMicros: u.SavedMicros,
		BytesIn: u.BytesIn, BytesOut: u.BytesOut, LatencyMicros: u.LatencyMicros,
	}
	if u.Failed {
		t.Failed = 1
	}
	if u.Premium {
		t.Premium = 1
	}
	if u.Unreached {
		t.Unreached = 1
	}
	return t
}

// KeyUsageSince implements apiwallet.UsageStore. The whole hours from
// since on come from the rollups; only the part of since's own hour after
// since (at most one hour of one workspace) is counted from the records.
// The two ranges are disjoint, so nothing is counted twice.
func (db *DB) KeyUsageSince(ctx context.Context, workspaceID, service string, since time.Time) (_ map[string]int64, err error) {
	defer apiwallet.Wrap(&err, "KeyUsageSince")
	if workspaceID == "" {
		return nil, fmt.Errorf("a workspace id is required")
	}
	from := micros(since)
	whole := ceilHour(from)
	counts := map[string]int64{}
	add := func(q string, args ...any) error {
		rows, err := db.db.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				key string
				n   int64
			)
			if err := rows.Scan(&key, &n); err != nil {
				return err
			}
			counts[key] += n
		}
		return rows.Err()
	}
	if err := add(`SELECT key_id, CAST(SUM(calls) AS BIGINT) FROM usage_hourly
		WHERE workspace_id = $1 AND service = $2 AND hour >= $3 AND key_id <> ''
		GROUP BY key_id`, workspaceID, service, whole); err != nil {
		return nil, err
	}
	if whole > from {
		if err := add(`SELECT key_id, COUNT(*) FROM usage_records
			WHERE workspace_id = $1 AND created_at >= $2 AND created_at < $3 AND service = $4 AND key_id <> ''
			GROUP BY key_id`, workspaceID, from, whole, service); err != nil {
			return nil, err
		}
	}
	return counts, nil
}

// WorkspaceUsage implements apiwallet.UsageStore, from the rollups only.
func (db *DB) WorkspaceUsage(ctx context.Context, workspaceID string, from, to time.Time) (s apiwallet.UsageSummary, err error) {
	defer apiwallet.Wrap(&err, "WorkspaceUsage")
	if workspaceID == "" {
		return s, fmt.Errorf("a workspace id is required")
	}
	rows, err := db.db.QueryContext(ctx, `SELECT service, CAST(SUM(calls) AS BIGINT), CAST(SUM(failed) AS BIGINT),
			CAST(SUM(premium) AS BIGINT), CAST(SUM(cost_micros) AS BIGINT), CAST(SUM(saved_micros) AS BIGINT),
			CAST(SUM(bytes_in) AS BIGINT), CAST(SUM(bytes_out) AS BIGINT), CAST(SUM(latency_micros_sum) AS BIGINT),
			CAST(SUM(unreached) AS BIGINT)
		FROM usage_hourly WHERE workspace_id = $1 AND hour >= $2 AND hour < $3
		GROUP BY service ORDER BY service`, workspaceID, floorHour(micros(from)), micros(to))
	if err != nil {
		return s, err
	}
	defer rows.Close()
	for rows.Next() {
		var su apiwallet.ServiceUsage
		t := &su.UsageTotals
		if err := rows.Scan(&su.Service, &t.Calls, &t.Failed, &t.Premium, &t.CostMicros, &t.SavedMicros,
			&t.BytesIn, &t.BytesOut, &t.LatencyMicros, &t.Unreached); err != nil {
			return s, err
		}
		s.Services = append(s.Services, su)
		s.UsageTotals.Add(su.UsageTotals)
	}
	return s, rows.Err()
}
