package gcfloor

import "testing"

func TestGCPercentFor(t *testing.T) {
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, 2000},
		{512 << 10, 2000},     // 16 MB of growth would be 3,200%: capped
		{3 << 20, 500},        // 16 MB over 3 MB live: 533%, in steps of 50
		{8 << 20, 200},        // 16 MB over 8 MB
		{16 << 20, 100},       // doubling is 16 MB already
		{120 << 20, 100},      // large heaps collect as with GOGC=100
		{(16 << 20) / 7, 700}, // 16 MB over ~2.3 MB: 700%
	} {
		if got := gcPercentFor(tc.live); got != tc.want {
			t.Errorf("gcPercentFor(%d) = %d, want %d", tc.live, got, tc.want)
		}
	}
}
