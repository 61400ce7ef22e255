#!/usr/bin/env bash
# The README's main demo, small: lesson --quick on 2 workers runs its seven
# runs (and ignores the WEFT_* variables it sets itself), checks every LCG
# result, prints the table with both jobs and three columns and a
# conclusion for each, draws the CPU job's timeline (a row per worker in
# each panel, both tasks' letters), writes the SVG picture, and leaves no
# temporary file. Timings are never asserted: they depend on the machine.
#   usage: demos_lesson.sh LESSON
set -euo pipefail
lesson=${1:?usage: demos_lesson.sh LESSON}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/t"
fail() { echo "lesson: $1"; echo "--- output:"; cat "$tmp/out" "$tmp/err"; exit 1; }

TMPDIR="$tmp/t" WEFT_MODE=gil WEFT_WORKERS=1 \
  "$lesson" --quick -w 2 --svg "$tmp/t.svg" >"$tmp/out" 2>"$tmp/err" ||
  fail "exit status $?"
out=$(cat "$tmp/out")
has() { grep -qE "$1" <<<"$out" || fail "no line matching: $1"; }

has '^LCG results checked: ([0-9]+) of \1 right\.$'
has '^  job +one at a time +under the GIL +in parallel$'
num='[0-9]+\.[0-9]{3} s'
has "^  I/O: 10 tasks .* +$num +$num +x[0-9.]+ +$num +x[0-9.]+$"
has "^  CPU: 2 tasks .* +$num +$num +x[0-9.]+ +$num +x[0-9.]+$"
for job in I/O CPU; do
  n=$(grep -cE "^  $job: (concurrency is enough|it needs parallelism|concurrency helps|no speedup either way)" <<<"$out" || true)
  [ "$n" -eq 1 ] || fail "$n conclusions for the $job job, not 1"
done
# The timeline: two panels of two rows, 60 columns of A, B or '.'.
has '^The CPU job.s first .* \(A, B: the tasks'
has '^  under the GIL:$'
has '^  in parallel:$'
rows=$(grep -E '^    worker [01]  [.AB]{60}$' <<<"$out" || true)
for w in 0 1; do
  n=$(grep -c "worker $w " <<<"$rows" || true)
  [ "$n" -eq 2 ] || fail "$n timeline rows for worker $w, not 2 (one under the GIL, one in parallel)"
done
for t in A B; do
  grep -q "$t" <<<"$rows" || fail "task $t is nowhere in the timeline"
done
has '^At most [0-9]+ tasks? ran at once under the GIL'
# The variables the lesson sets itself are ignored, with a note.
grep -q '^lesson: WEFT_MODE=gil ignored' "$tmp/err" || fail "no note that WEFT_MODE is ignored"
grep -q '^lesson: WEFT_WORKERS=1 ignored' "$tmp/err" || fail "no note that WEFT_WORKERS is ignored"
# The picture, and no trace left behind.
n=$(grep -c '<rect' "$tmp/t.svg" || true)
[ "$n" -gt 4 ] || fail "the SVG has $n rectangles"
[ -z "$(ls -A "$tmp/t")" ] || fail "temporary files left: $(ls -A "$tmp/t")"

# Bad options: status 2 and a message.
for args in "-w 1" "-w x" "--svg" "--bogus"; do
  # shellcheck disable=SC2086
  if "$lesson" $args >/dev/null 2>"$tmp/err"; then fail "accepted $args"; else st=$?; fi
  [ "$st" -eq 2 ] || fail "$args: exit status $st, not 2"
  grep -q '^lesson: ' "$tmp/err" || fail "$args: no message"
done
echo "lesson: table, conclusions, timeline and picture as expected"
