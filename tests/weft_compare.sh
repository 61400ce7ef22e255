#!/usr/bin/env bash
# weft-compare runs a program in the three modes and prints its table; it
# reports a program that fails, naming the mode, and exits 1.
#   usage: weft_compare.sh WEFT_COMPARE GIL_CPU_DEMO
set -euo pipefail
cmp=${1:?usage: weft_compare.sh WEFT_COMPARE GIL_CPU_DEMO}
demo=${2:?usage: weft_compare.sh WEFT_COMPARE GIL_CPU_DEMO}
out=$("$cmp" -n 1 -w 2 -i 1000 "$demo" 20000000 2>/dev/null)
echo "$out"
for want in "^serial " "^gil " "^parallel " "Karp-Flatt serial fraction"; do
  grep -qE "$want" <<<"$out" || { echo "weft-compare: no line matching $want"; exit 1; }
done
# Every row has its numbers (whether the GIL row shows a token wait depends
# on how the machine schedules the two workers' threads).
rows=$(awk '$1 ~ /^(serial|gil|parallel)$/ && NF == 10' <<<"$out" | wc -l)
[ "$rows" -eq 3 ] || { echo "weft-compare: $rows complete rows, not 3"; exit 1; }
# A failing program: exit 1, and the mode named.
if err=$("$cmp" -n 1 -w 2 false 2>&1); then
  echo "weft-compare succeeded on a failing program"; exit 1
fi
grep -q "failed in serial mode" <<<"$err" || { echo "no failure report: $err"; exit 1; }
echo "weft-compare: table and failure report as expected"
