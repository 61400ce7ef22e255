#!/usr/bin/env bash
# The GIL convoy (docs/bench.md): demos/gil_convoy under the GIL at 5 ms
# and 0.5 ms and in parallel mode, and optionally CPython's own convoy
# script beside it, interleaved over ROUNDS rounds; prints every run's
# line and then, per setting, the median per-trip time alone and beside
# the spinner and the median wait0/wait1/wait2plus counts.
#
#   bench/convoy.sh [-n ROUNDS] [-p CPYTHON_CONVOY_SCRIPT]
#
# The CPython script (gil_convoy.py of the peer set) needs its echo server
# listening on 127.0.0.1:18071 (TCP); run it first.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=5 peer=""
while getopts n:p: opt; do
  case $opt in
    n) rounds=$OPTARG ;;
    p) peer=$OPTARG ;;
    *) echo "usage: $0 [-n ROUNDS] [-p CPYTHON_CONVOY_SCRIPT]" >&2; exit 2 ;;
  esac
done
demo=${WEFT_BUILD_DIR:-build}/demos/gil_convoy
[ -x "$demo" ] || { echo "$0: $demo not built (cmake --build build)" >&2; exit 1; }
PY=${PY:-/usr/bin/python3}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq "$rounds"); do
  echo "[round $r/$rounds]" >&2
  WEFT_WORKERS=2 WEFT_MODE=gil "$demo" -n 200 | sed 's/^/weft-gil-5ms /' | tee -a "$out"
  WEFT_WORKERS=2 WEFT_MODE=gil WEFT_SWITCH_INTERVAL_US=500 "$demo" -n 1000 | sed 's/^/weft-gil-0.5ms /' | tee -a "$out"
  WEFT_WORKERS=2 "$demo" -n 1000 | sed 's/^/weft-parallel /' | tee -a "$out"
  if [ -n "$peer" ]; then
    for spin in 0 1; do
      "$PY" "$peer" --proto tcp --n 200 --spin $spin --switch 0.005 | sed 's/^/cpython-5ms /' | tee -a "$out"
      "$PY" "$peer" --proto tcp --n 1000 --spin $spin --switch 0.0005 | sed 's/^/cpython-0.5ms /' | tee -a "$out"
    done
  fi
done
echo
printf '%-16s %-6s %12s %10s %10s %10s\n' setting spin us_a_trip wait0 wait1 wait2plus
awk '
  function med(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  /per_trip_us=/ {
    key = $1; spin = 0
    for (i = 2; i <= NF; i++) {
      split($i, kv, "=")
      v[kv[1]] = kv[2]
    }
    key = key " " v["spin"]
    keys[key] = 1
    trip[key] = trip[key] " " v["per_trip_us"]; w0[key] = w0[key] " " v["wait0"]
    w1[key] = w1[key] " " v["wait1"]; w2[key] = w2[key] " " v["wait2plus"]
  }
  END { for (k in keys) { split(k, p, " "); printf "%-16s %-6s %12.1f %10.0f %10.0f %10.0f\n", p[1], p[2], med(trip[k]), med(w0[k]), med(w1[k]), med(w2[k]) } }
' "$out" | sort
