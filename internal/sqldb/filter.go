package sqldb

import (
	"fmt"
	"strconv"
	"strings"
)

// filter builds the WHERE clause of a list query, every value a $N
// placeholder, so that optional filters never splice input into SQL.
type filter struct {
	conds []string
	args  []any
}

// arg adds v as the next argument and returns its placeholder.
func (f *filter) arg(v any) string {
	f.args = append(f.args, v)
	return "$" + strconv.Itoa(len(f.args))
}

// where adds a condition in which each %s stands for the placeholder of
// the matching value.
func (f *filter) where(cond string, values ...any) {
	ph := make([]any, len(values))
	for i, v := range values {
		ph[i] = f.arg(v)
	}
	f.conds = append(f.conds, fmt.Sprintf(cond, ph...))
}

// clause returns " WHERE a AND b …", or "" when there is no condition.
func (f *filter) clause() string {
	if len(f.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(f.conds, " AND ")
}
