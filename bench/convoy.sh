#!/usr/bin/env bash
# The GIL convoy (docs/bench.md): demos/gil_convoy under the GIL at 50 ms,
# 5 ms and 0.5 ms and in parallel mode, and optionally CPython's own convoy
# script beside it, interleaved over ROUNDS rounds (default 5); prints,
# per setting, the median per-trip time alone and beside the spinner and
# the median wait0/wait1/wait2plus counts.
#
#   bench/convoy.sh [-n ROUNDS] [-t TRIPS] [-p CPYTHON_CONVOY_SCRIPT] [-o FILE]
#
# Example:
#   PEERS/io/bin/echo_server -lifetime 900 &
#   bench/convoy.sh -n 5 -p PEERS/io/gil_convoy.py -o bench/results/convoy.txt
#
# TRIPS (default 200) is the number of round trips at the 5 ms interval;
# the 0.5 ms and parallel runs make five times as many, the 50 ms runs a
# fifth as many. The CPython script
# (gil_convoy.py of the peer set) needs its echo server listening on
# 127.0.0.1:18071 (TCP); run it first. The command lines, and every run's
# own line with its place ("[k/total] round r/ROUNDS SETTING: ..."), go
# to stderr; the table goes to stdout. -o FILE also writes, per setting,
# the us a trip alone and beside the spinner and the slowdown (beside /
# alone, from the same round), each as median, min and max over the
# rounds, with the median trip and wait counts beside the spinner, to
# FILE in the form bench/plot.sh draws.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=5 trips=200 peer="" outf=""
usage="usage: $0 [-n ROUNDS] [-t TRIPS] [-p CPYTHON_CONVOY_SCRIPT] [-o FILE]"
while getopts n:t:p:o: opt; do
  case $opt in
    n) rounds=$OPTARG ;;
    t) trips=$OPTARG ;;
    p) peer=$OPTARG ;;
    o) outf=$OPTARG ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
[ "$rounds" -ge 1 ] || { echo "$0: -n $rounds: at least 1 round" >&2; exit 2; }
[ -z "$outf" ] || [ -d "$(dirname "$outf")" ] || { echo "$0: -o $outf: no such folder" >&2; exit 2; }
demo=${WEFT_BUILD_DIR:-build}/demos/gil_convoy
[ -x "$demo" ] || { echo "$0: $demo not built (cmake --build build)" >&2; exit 1; }
PY=${PY:-/usr/bin/python3}
many=$((trips * 5))
few=$(( trips / 5 > 0 ? trips / 5 : 1 ))

# A round: each weft run prints its alone and its beside-the-spinner line;
# each CPython run prints one of them.
names=(weft-gil-50ms weft-gil-5ms weft-gil-0.5ms weft-parallel)
cmds=("env WEFT_WORKERS=2 WEFT_MODE=gil WEFT_SWITCH_INTERVAL_US=50000 $demo -n $few"
  "env WEFT_WORKERS=2 WEFT_MODE=gil $demo -n $trips"
  "env WEFT_WORKERS=2 WEFT_MODE=gil WEFT_SWITCH_INTERVAL_US=500 $demo -n $many"
  "env WEFT_WORKERS=2 $demo -n $many")
if [ -n "$peer" ]; then
  for spin in 0 1; do
    names+=(cpython-50ms cpython-5ms cpython-0.5ms)
    cmds+=("$PY $peer --proto tcp --n $few --spin $spin --switch 0.05"
      "$PY $peer --proto tcp --n $trips --spin $spin --switch 0.005"
      "$PY $peer --proto tcp --n $many --spin $spin --switch 0.0005")
  done
fi
echo "convoy: $rounds rounds, interleaved, each:" >&2
for i in "${!cmds[@]}"; do echo "convoy:   ${names[$i]}: ${cmds[$i]}" >&2; done

out=$(mktemp)
trap 'rm -f "$out" "$out.table"' EXIT
total=$((rounds * ${#cmds[@]}))
done_n=0
for r in $(seq "$rounds"); do
  for i in "${!cmds[@]}"; do
    done_n=$((done_n + 1))
    bash -c "exec ${cmds[$i]}" | grep 'per_trip_us=' | sed "s/^/${names[$i]} $r /" | tee -a "$out" |
      sed "s|^[^ ]* [^ ]* |[$done_n/$total] round $r/$rounds ${names[$i]}: |" >&2
  done
done

# Each line of $out: SETTING ROUND gil_convoy ... spin=S ... per_trip_us=...
printf '%-16s %-6s %12s %10s %10s %10s\n' setting spin us_a_trip wait0 wait1 wait2plus
awk '
  function med(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  {
    delete v
    for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    key = $1 " " v["spin"]
    keys[key] = 1
    trip[key] = trip[key] " " v["per_trip_us"]; w0[key] = w0[key] " " v["wait0"]
    w1[key] = w1[key] " " v["wait1"]; w2[key] = w2[key] " " v["wait2plus"]
  }
  END { for (k in keys) { split(k, p, " "); printf "%-16s %-6s %12.1f %10.0f %10.0f %10.0f\n", p[1], p[2], med(trip[k]), med(w0[k]), med(w1[k]), med(w2[k]) } }
' "$out" | sort

[ -n "$outf" ] || exit 0
{
  echo "# The GIL convoy, $rounds rounds interleaved, $few trips at 50 ms, $trips at 5 ms and $many at 0.5 ms and in parallel;" \
    "us a trip alone and beside the spinner, slowdown = beside / alone in the same round: medians, min and max;" \
    "median trip and wait counts beside the spinner: medians"
  printf '%-16s %9s %9s %9s %9s %9s %9s %9s %9s %9s %14s %6s %6s %9s\n' name \
    alone_us alone_us_min alone_us_max beside_us beside_us_min beside_us_max \
    slowdown slowdown_min slowdown_max median_trip_us wait0 wait1 wait2plus
  awk '
    function med(list,   n, a, i, j, t) {
      n = split(list, a, " ")
      for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function lo(list,   n, a, i, m) { n = split(list, a, " "); m = a[1] + 0; for (i = 2; i <= n; i++) if (a[i] + 0 < m) m = a[i] + 0; return m }
    function hi(list,   n, a, i, m) { n = split(list, a, " "); m = a[1] + 0; for (i = 2; i <= n; i++) if (a[i] + 0 > m) m = a[i] + 0; return m }
    {
      delete v
      for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      s = $1; seen[s] = 1
      if (v["spin"] + 0 == 0) { alone[s] = alone[s] " " v["per_trip_us"]; a1[s, $2] = v["per_trip_us"] }
      else {
        beside[s] = beside[s] " " v["per_trip_us"]; b1[s, $2] = v["per_trip_us"]
        mt[s] = mt[s] " " v["median_us"]; w0[s] = w0[s] " " v["wait0"]
        w1[s] = w1[s] " " v["wait1"]; w2[s] = w2[s] " " v["wait2plus"]
      }
      if ($2 > rounds) rounds = $2
    }
    END {
      n = split("weft-gil-50ms cpython-50ms weft-gil-5ms cpython-5ms weft-gil-0.5ms cpython-0.5ms weft-parallel", order, " ")
      for (o = 1; o <= n; o++) {
        s = order[o]; if (!(s in seen)) continue
        slow = ""
        for (r = 1; r <= rounds; r++)
          if (((s, r) in a1) && ((s, r) in b1) && a1[s, r] > 0) slow = slow " " b1[s, r] / a1[s, r]
        printf "%-16s %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.2f %9.2f %9.2f %14.1f %6.0f %6.0f %9.0f\n", s,
               med(alone[s]), lo(alone[s]), hi(alone[s]), med(beside[s]), lo(beside[s]), hi(beside[s]),
               med(slow), lo(slow), hi(slow), med(mt[s]), med(w0[s]), med(w1[s]), med(w2[s])
      }
    }' "$out"
} >"$out.table"
mv "$out.table" "$outf"
echo "convoy: wrote $outf" >&2
