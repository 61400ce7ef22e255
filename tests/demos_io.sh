#!/usr/bin/env bash
# The I/O demos run and say what they should: fetch (its own local server,
# every reply checked, both times printed) and gil_convoy (alone and beside
# a spinner, in parallel and GIL mode; clusters of waits printed).
#   usage: demos_io.sh FETCH GIL_CONVOY
set -euo pipefail
fetch=${1:?usage: demos_io.sh FETCH GIL_CONVOY}
convoy=${2:?usage: demos_io.sh FETCH GIL_CONVOY}
out=$("$fetch" -n 20 -c 10 -d 5 --max-seconds 60)
grep -q '^fetch n=20 c=10 bad=0 fetch_s=[0-9.]* seq_s=[0-9.]*$' <<<"$out" ||
  { echo "fetch: unexpected output:"; echo "$out"; exit 1; }
for mode in parallel gil; do
  out=$(WEFT_WORKERS=2 WEFT_MODE=$mode WEFT_SWITCH_INTERVAL_US=500 "$convoy" -n 50)
  for want in "^gil_convoy alone mode=$mode .* trips=50 " "^gil_convoy spinning mode=$mode .* trips=50 .*wait0=" \
              "^gil_convoy figure=" "^gil_convoy slowdown=x"; do
    grep -qE "$want" <<<"$out" || { echo "gil_convoy ($mode): no line matching $want:"; echo "$out"; exit 1; }
  done
done
if "$convoy" -n 0 2>/dev/null; then echo "gil_convoy accepted -n 0"; exit 1; fi
echo "demos: fetch and gil_convoy ran as expected"
