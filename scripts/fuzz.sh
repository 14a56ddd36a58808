#!/usr/bin/env bash
# Runs every go test -fuzz target of the module, one after the other, each
# for FUZZTIME (default 10m), and appends one line per run to FUZZLOG
# (default fuzz.log): the date, the target, the time asked and the
# executions go test reported. The targets are found in the *_test.go
# files (func FuzzXxx(f *testing.F)), so a new one is run without being
# listed anywhere. FUZZ=<regexp> runs only the targets it matches.
# A crash fails the run; go test leaves the input that crashed in the
# package's testdata/fuzz/FuzzXxx/, where it becomes a regression test.
# Go 1.26's fuzzing coordinator can end a run at -fuzztime with a bare
# "context deadline exceeded" and no failing input (go.dev/issue/75804);
# such a run is logged as "deadline" and does not fail.
set -uo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10m}
parallel=${FUZZPARALLEL:-1}
log=${FUZZLOG:-fuzz.log}
only=${FUZZ:-.}
status=0
targets=$(grep -rlE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' . |
  while read -r file; do
    dir=$(dirname "$file")
    grep -oE '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' "$file" | sed -E "s#^func (Fuzz[A-Za-z0-9_]+).*#$dir \1#"
  done | sort)
while read -r dir name; do
  [ -n "$name" ] || continue
  echo "$name" | grep -qE -- "$only" || continue
  echo "== $name ($dir, $fuzztime)"
  corpus="$dir/testdata/fuzz/$name"
  before=$(ls "$corpus" 2>/dev/null | sort)
  out=$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -parallel "$parallel" "$dir" 2>&1)
  rc=$?
  execs=$(printf '%s\n' "$out" | grep -oE 'execs: [0-9]+' | tail -1 | awk '{print $2}')
  result=ok
  after=$(ls "$corpus" 2>/dev/null | sort)
  if [ $rc -ne 0 ] && [ "$before" = "$after" ] &&
    printf '%s\n' "$out" | grep -q '^    context deadline exceeded$'; then
    result=deadline
  elif [ $rc -ne 0 ]; then
    result=FAIL
    status=1
    printf '%s\n' "$out" | grep -vE '^fuzz: elapsed' | tail -30
  fi
  line="$(date -u +%Y-%m-%dT%H:%M:%SZ) $name $dir fuzztime=$fuzztime execs=${execs:-0} $result"
  echo "$line"
  echo "$line" >>"$log"
done <<<"$targets"
exit $status
