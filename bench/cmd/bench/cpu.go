package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Other work on the machine skews a benchmark that already shares few cores
// with its load generator. cpuWatch measures how much CPU went to processes
// that are not the benchmark's during a run, so a skewed row can be seen.

// clockTicks is USER_HZ, the unit of /proc CPU times (100 on Linux).
const clockTicks = 100

type cpuSnap struct {
	at       time.Time
	busy     int64            // machine: user+nice+system+steal ticks
	ours     int64            // the runner and its children
	procs    map[string]int64 // ticks of each started process group, by name
	readable bool
}

// cpuSnapshot reads the machine's busy ticks and those of the runner (with
// its waited-for children, such as wrk) and of the process groups it
// started (stub, nginx with its workers, floor, wallet).
func (r *runner) cpuSnapshot() cpuSnap {
	s := cpuSnap{at: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return s
	}
	for _, i := range []int{1, 2, 3, 8} { // user nice system steal
		n, _ := strconv.ParseInt(f[i], 10, 64)
		s.busy += n
	}
	self, _, _ := procTicks("/proc/self/stat", true)
	s.ours = self
	groups := map[int]string{}
	for _, p := range r.procs {
		if !p.exited() {
			groups[p.cmd.Process.Pid] = p.name
		}
	}
	s.procs = map[string]int64{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		if t, pgrp, ok := procTicks(path, false); ok {
			if name, ours := groups[pgrp]; ours {
				s.ours += t
				s.procs[name] += t
			}
		}
	}
	s.readable = true
	return s
}

// procTicks returns a process's CPU ticks (utime+stime, plus its waited-for
// children's with children) and its process group.
func procTicks(path string, children bool) (ticks int64, pgrp int, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false
	}
	// The command name may hold spaces; fields start after its ")".
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): pgrp is field 5, utime..cstime 14..17.
	if len(f) < 15 {
		return 0, 0, false
	}
	pgrp, _ = strconv.Atoi(f[2])
	last := 13
	if children {
		last = 15
	}
	for _, s := range f[11 : last+1] {
		n, _ := strconv.ParseInt(s, 10, 64)
		ticks += n
	}
	return ticks, pgrp, true
}

// otherCPU is the share of the whole machine (0..1) that went to other
// processes between two snapshots, or -1 when it cannot be told.
func otherCPU(a, b cpuSnap) float64 {
	if !a.readable || !b.readable {
		return -1
	}
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 {
		return -1
	}
	other := float64((b.busy-a.busy)-(b.ours-a.ours)) / clockTicks
	return max(0, other/(secs*float64(runtime.NumCPU())))
}

// cpuPerCall is the CPU time, in microseconds, that the process group
// named name (nginx with its workers, the wallet, ...) used per call
// between two snapshots, or -1 when it cannot be told. A process that
// exits between them is not counted.
func cpuPerCall(a, b cpuSnap, name string, calls int) float64 {
	if !a.readable || !b.readable || calls <= 0 {
		return -1
	}
	t0, ok0 := a.procs[name]
	t1, ok1 := b.procs[name]
	if !ok0 || !ok1 || t1 < t0 {
		return -1
	}
	return float64(t1-t0) / clockTicks * 1e6 / float64(calls)
}
