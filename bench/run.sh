#!/usr/bin/env bash
# Runs benchmark commands interleaved (A B A B ...) and prints, for each,
# the median, min and max of its figure, its median wall time and peak RSS,
# and the median of its per-round ratio to the first command (the
# baseline).
#
#   bench/run.sh [-n RUNS] [-w WARMUPS] NAME=COMMAND [NAME=COMMAND ...]
#
# The figure is the first key=value in the program's output among
# figure=, ns_per_switch=, ns_per_task=, ns_per_rt=, over_ms=, wall_ms=
# (weft's benchmarks print figure=; the peer programs print the others);
# without any, the whole-process wall time in ms. Peak RSS comes from GNU
# time (package `time`) when present, else from the program's maxrss_kib=.
# Runs: 5 by default, after 1 warm-up round. The commands, and a line per
# run ("[k/total] round r/RUNS NAME figure=..."), go to stderr; the table
# goes to stdout, e.g. into bench/results/ for bench/plot.sh.
#
# Example (weft against a Go build of the same workload):
#   bench/run.sh -n 7 weft=build/bench/w1_switch go="env GOMAXPROCS=1 ./w1"
set -euo pipefail

runs=5
warm=1
while getopts n:w: opt; do
  case $opt in
    n) runs=$OPTARG ;;
    w) warm=$OPTARG ;;
    *) echo "usage: $0 [-n RUNS] [-w WARMUPS] NAME=COMMAND ..." >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "usage: $0 [-n RUNS] [-w WARMUPS] NAME=COMMAND ..." >&2; exit 2; }
[ "$runs" -ge 1 ] || { echo "$0: -n $runs: at least 1 run" >&2; exit 2; }

names=() cmds=()
for spec in "$@"; do
  case $spec in
    *=*) names+=("${spec%%=*}"); cmds+=("${spec#*=}") ;;
    *) echo "$0: \"$spec\": not NAME=COMMAND" >&2; exit 2 ;;
  esac
done

timer=()
[ -x /usr/bin/time ] && timer=(/usr/bin/time -f 'gnu_time_maxrss_kib=%M')
results=$(mktemp)
trap 'rm -f "$results"' EXIT

# run_one I: runs command I once; prints "figure wall_ms rss_kib".
run_one() {
  local t0 t1 out
  t0=$(date +%s%N)
  if ! out=$("${timer[@]}" bash -c "${cmds[$1]}" 2>&1); then
    printf '%s\n' "$out" >&2
    echo "$0: ${names[$1]} failed" >&2
    exit 1
  fi
  t1=$(date +%s%N)
  printf '%s\n' "$out" | awk -v wall="$(( (t1 - t0) / 1000 ))" '
    { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
    END {
      n = split("figure ns_per_switch ns_per_task ns_per_rt over_ms wall_ms", keys, " ")
      fig = ""
      for (k = 1; k <= n && fig == ""; k++) if (keys[k] in v) fig = v[keys[k]]
      if (fig == "") fig = wall / 1000
      rss = ("gnu_time_maxrss_kib" in v) ? v["gnu_time_maxrss_kib"] : \
            (("maxrss_kib" in v) ? v["maxrss_kib"] : 0)
      printf "%s %.3f %s\n", fig, wall / 1000, rss
    }'
}

echo "run.sh: $runs runs after $warm warm-up rounds, interleaved:" >&2
for i in "${!cmds[@]}"; do echo "run.sh:   ${names[$i]}: ${cmds[$i]}" >&2; done

total=$(( (warm + runs) * ${#cmds[@]} ))
done_n=0
for ((r = -warm + 1; r <= runs; r++)); do
  for i in "${!cmds[@]}"; do
    done_n=$((done_n + 1))
    line=$(run_one "$i")
    if [ "$r" -ge 1 ]; then
      echo "$i $r $line" >>"$results"
      label="round $r/$runs"
    else
      label="warm-up"
    fi
    printf '[%d/%d] %-8s %-12s figure=%s\n' "$done_n" "$total" "$label" "${names[$i]}" "${line%% *}" >&2
  done
done

printf '%-14s %12s %12s %12s %12s %12s %10s\n' name median min max wall_ms rss_MiB ratio
for i in "${!cmds[@]}"; do
  awk -v i="$i" -v name="${names[$i]}" '
    function median(a, n,   j, k, t) {
      for (j = 2; j <= n; j++) { t = a[j]; for (k = j - 1; k >= 1 && a[k] > t; k--) a[k + 1] = a[k]; a[k + 1] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { fig[$1, $2] = $3; wall[$1, $2] = $4; rss[$1, $2] = $5; if ($2 > rounds) rounds = $2 }
    END {
      n = 0
      for (r = 1; r <= rounds; r++) {
        n++; f[n] = fig[i, r]; w[n] = wall[i, r]; m[n] = rss[i, r]
        q[n] = fig[0, r] > 0 ? fig[i, r] / fig[0, r] : 0
      }
      min = f[1]; max = f[1]
      for (j = 1; j <= n; j++) { if (f[j] < min) min = f[j]; if (f[j] > max) max = f[j] }
      printf "%-14s %12.2f %12.2f %12.2f %12.1f %12.1f %10.3f\n", name, median(f, n), min, max,
             median(w, n), median(m, n) / 1024, median(q, n)
    }' "$results"
done
