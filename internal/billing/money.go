package billing

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// MicrosPerDollar is how many micro-dollars make a dollar.
const MicrosPerDollar = 1_000_000

// Dollars formats an amount of micro-dollars as a decimal dollar string
// with at least two and at most six decimals, exactly and without
// floating point: 37_345_600 is "37.3456", 29_000_000 is "29.00", 1 is
// "0.000001", -250_000 is "-0.25".
func Dollars(micros int64) string {
	sign := ""
	u := uint64(micros)
	if micros < 0 {
		sign = "-"
		u = uint64(-(micros + 1)) + 1 // no overflow at math.MinInt64
	}
	frac := fmt.Sprintf("%06d", u%MicrosPerDollar)
	frac = strings.TrimRight(frac, "0")
	for len(frac) < 2 {
		frac += "0"
	}
	return sign + strconv.FormatUint(u/MicrosPerDollar, 10) + "." + frac
}

// errOverflow is returned when an amount does not fit in int64 micros
// (over $9.2 trillion): a sign of corrupt data, not of a real bill.
var errOverflow = fmt.Errorf("billing: amount overflows int64 micro-dollars")

// mul returns a*b for non-negative a and b, or errOverflow.
func mul(a, b int64) (int64, error) {
	if a < 0 || b < 0 {
		return 0, fmt.Errorf("billing: negative quantity or price (%d x %d)", a, b)
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, errOverflow
	}
	return int64(lo), nil
}

// add returns the sum of amounts, or errOverflow.
func add(amounts ...int64) (int64, error) {
	var sum int64
	for _, a := range amounts {
		if (a > 0 && sum > math.MaxInt64-a) || (a < 0 && sum < math.MinInt64-a) {
			return 0, errOverflow
		}
		sum += a
	}
	return sum, nil
}

// mulDiv returns floor(a*b/c) for non-negative a, b and positive c, with a
// 128-bit intermediate product, or errOverflow if the result does not fit.
func mulDiv(a, b, c int64) (int64, error) {
	if a < 0 || b < 0 || c <= 0 {
		return 0, fmt.Errorf("billing: mulDiv(%d, %d, %d) out of domain", a, b, c)
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi >= uint64(c) {
		return 0, errOverflow
	}
	q, _ := bits.Div64(hi, lo, uint64(c))
	if q > math.MaxInt64 {
		return 0, errOverflow
	}
	return int64(q), nil
}
