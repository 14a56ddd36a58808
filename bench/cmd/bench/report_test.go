package main

import (
	"math"
	"slices"
	"testing"
)

func runs(p99 map[int]float64) []rateRun {
	var out []rateRun
	for round := range 3 {
		if v, ok := p99[round]; ok {
			out = append(out, rateRun{round: round, res: loadResult{P99Ms: v}, otherCPU: float64(round) / 100,
				cpuPerCall: 10 * v})
		}
	}
	return out
}

// Added p99 is the median over rounds of the difference within a round,
// not the difference of two medians taken from different rounds.
func TestPickRateRuns(t *testing.T) {
	direct := &target{name: "direct", rates: runs(map[int]float64{0: 1.0, 1: 3.0, 2: 1.2})}
	wallet := &target{name: "wallet", rates: runs(map[int]float64{0: 2.0, 1: 3.5, 2: 1.5})}
	nginx := &target{name: "nginx", rates: runs(map[int]float64{0: 1.5, 2: 1.6})} // failed in round 1
	alone := &target{name: "floor", rates: runs(map[int]float64{0: 9, 1: 4, 2: 5})}
	pickRateRuns(direct, []*target{direct, nginx, wallet})
	pickRateRuns(nil, []*target{alone})

	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if direct.rate == nil || direct.rate.P99Ms != 1.2 || direct.rateOtherCPU != 0.02 {
		t.Fatalf("direct row = %+v (cpu %v); want its median-p99 round, 1.2 ms in round 2", direct.rate, direct.rateOtherCPU)
	}
	// Within rounds the wallet added 1.0, 0.5 and 0.3 ms: the median is
	// round 1's, although direct's p99 was highest there.
	if !near(wallet.added, 0.5) || wallet.rate.P99Ms != 3.5 || wallet.rateOtherCPU != 0.01 {
		t.Fatalf("wallet added %v, row p99 %v; want +0.5 ms from round 1 (3.5 ms)", wallet.added, wallet.rate.P99Ms)
	}
	want := []float64{1.0, 0.5, 0.3}
	if !slices.EqualFunc(wallet.addedByRound, want, near) {
		t.Fatalf("wallet added by round = %v, want %v", wallet.addedByRound, want)
	}
	// Two rounds: the worse of the two middle values, as for throughput.
	if !near(nginx.added, 0.5) || nginx.rate.P99Ms != 1.5 {
		t.Fatalf("nginx added %v from p99 %v; want +0.5 ms from round 0", nginx.added, nginx.rate.P99Ms)
	}
	// Without direct there is nothing to subtract: the median-p99 round.
	if alone.rate == nil || alone.rate.P99Ms != 5 || alone.addedByRound != nil {
		t.Fatalf("floor without direct: row %+v, added by round %v", alone.rate, alone.addedByRound)
	}
	// CPU per call is its own median over the rounds, whichever round
	// gave the row; rounds that could not tell it are left out.
	for _, c := range []struct {
		t    *target
		want float64
	}{{direct, 12}, {wallet, 20}, {nginx, 15}, {alone, 50}} {
		if !near(c.t.cpuPerCall, c.want) {
			t.Errorf("%s CPU per call = %v, want %v", c.t.name, c.t.cpuPerCall, c.want)
		}
	}
	unknown := &target{name: "wallet", rates: []rateRun{{cpuPerCall: -1}, {round: 1, cpuPerCall: 30}, {round: 2, cpuPerCall: -1}}}
	none := &target{name: "nginx", rates: []rateRun{{cpuPerCall: -1}}}
	pickRateRuns(nil, []*target{unknown, none})
	if unknown.cpuPerCall != 30 || none.cpuPerCall != -1 {
		t.Fatalf("CPU per call with unknown rounds = %v, %v; want 30 and -1 (unknown)", unknown.cpuPerCall, none.cpuPerCall)
	}
}
