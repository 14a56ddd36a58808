package main

import "testing"

func TestGCPercentFor(t *testing.T) {
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, 2000},
		{1 << 20, 2000},       // 32 MB of growth would be 3,200%: capped
		{3 << 20, 1050},       // 32 MB over 3 MB live
		{16 << 20, 200},       // 32 MB over 16 MB
		{32 << 20, 100},       // doubling is 32 MB already
		{120 << 20, 100},      // large heaps collect as with GOGC=100
		{(32 << 20) / 7, 700}, // 32 MB over ~4.6 MB: 700%
	} {
		if got := gcPercentFor(tc.live); got != tc.want {
			t.Errorf("gcPercentFor(%d) = %d, want %d", tc.live, got, tc.want)
		}
	}
}
