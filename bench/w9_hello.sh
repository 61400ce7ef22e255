#!/usr/bin/env bash
# W9: a hello-world HTTP server under `wrk -t1 -c64 -d5s --latency`. For
# each server it prints requests/s, the p99 latency and the server's CPU
# time per request: the utime + stime of every process in the server's
# process group (/proc/PID/stat), read before and after the wrk run,
# divided by the requests wrk counted. Medians of 5 runs after 1 warm-up
# round; with several servers the runs are interleaved (A B A B ...).
#
#   bench/w9_hello.sh [-n RUNS] [-w WARMUPS] [-d SECONDS] [-p PORT] [-o FILE] [NAME=COMMAND ...]
#
# The first server is always weft's demos/hello_server from the build in
# WEFT_BUILD_DIR (default build/), run with WEFT_WORKERS=1 unless the
# environment sets it. Each NAME=COMMAND is a peer: a shell command that
# serves GET / on 127.0.0.1:$PORT in the foreground ($PORT is exported
# to it), for example
#
#   bench/w9_hello.sh nginx="nginx -c $PWD/nginx-w9.conf -g 'daemon off;'" go=./hello_go
#
# Each server is started in its own process group, waited for until its
# port accepts connections (at most 5 s), measured, and then killed with
# its whole group. The servers' and wrk's command lines, and a line per
# run ("[k/total] round r/RUNS NAME req/s=..."), go to stderr; the table
# goes to stdout. -o FILE also writes the table, with the min and max
# beside each median, to FILE in the form bench/plot.sh draws, e.g.
# bench/results/w9_hello.txt.
#
# Prerequisites: wrk (Debian: apt-get install wrk), a built weft
# (cmake --build build), and the peers' own programs.
set -euo pipefail

cd "$(dirname "$0")/.."

runs=5
warm=1
secs=5
port=8089
outf=""
usage="usage: $0 [-n RUNS] [-w WARMUPS] [-d SECONDS] [-p PORT] [-o FILE] [NAME=COMMAND ...]"
while getopts n:w:d:p:o: opt; do
  case $opt in
    n) runs=$OPTARG ;;
    w) warm=$OPTARG ;;
    d) secs=$OPTARG ;;
    p) port=$OPTARG ;;
    o) outf=$OPTARG ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ "$runs" -ge 1 ] || { echo "$0: -n $runs: at least 1 run" >&2; exit 2; }
[ -z "$outf" ] || [ -d "$(dirname "$outf")" ] || { echo "$0: -o $outf: no such folder" >&2; exit 2; }

command -v wrk >/dev/null || { echo "$0: needs wrk (Debian: apt-get install wrk)" >&2; exit 2; }
build=${WEFT_BUILD_DIR:-build}
server=$build/demos/hello_server
[ -x "$server" ] || { echo "$0: no $server: build weft first" >&2; exit 2; }

export PORT=$port
names=(weft) cmds=("WEFT_WORKERS=${WEFT_WORKERS:-1} exec $server 127.0.0.1:$port")
for spec in "$@"; do
  case $spec in
    *=*) names+=("${spec%%=*}"); cmds+=("${spec#*=}") ;;
    *) echo "$0: \"$spec\": not NAME=COMMAND" >&2; exit 2 ;;
  esac
done

hz=$(getconf CLK_TCK)
results=$(mktemp)
pid=
cleanup() {
  [ -n "$pid" ] && kill -- "-$pid" 2>/dev/null || true
  rm -f "$results" "$results.table"
}
trap cleanup EXIT

# group_ticks PGID: utime + stime, in clock ticks, of every process in
# the group.
group_ticks() {
  local f line sum=0 v
  for f in /proc/[0-9]*/stat; do
    line=$(cat "$f" 2>/dev/null) || continue
    # After the command name (which may hold spaces): v[0] is field 3, the
    # state; v[2] field 5, the process group; v[11], v[12] utime, stime.
    line=${line##*) }
    read -r -a v <<<"$line"
    [ "${v[2]}" = "$1" ] && sum=$((sum + v[11] + v[12]))
  done
  echo "$sum"
}

# wait_port: until 127.0.0.1:$port accepts a connection (5 s at most).
wait_port() {
  for _ in $(seq 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# run_one I: starts server I, runs wrk, prints "req_per_s p99_ms cpu_us_per_req".
run_one() {
  setsid bash -c "${cmds[$1]}" >/dev/null 2>&1 &
  pid=$!
  if ! wait_port; then
    echo "$0: ${names[$1]} did not listen on port $port" >&2
    exit 1
  fi
  local t0 t1 out
  t0=$(group_ticks "$pid")
  out=$("${wrk_args[@]}")
  t1=$(group_ticks "$pid")
  kill -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
  printf '%s\n' "$out" | awk -v ticks=$((t1 - t0)) -v hz="$hz" '
    function ms(v) {
      if (v ~ /us$/) return v / 1000
      if (v ~ /ms$/) return v + 0
      if (v ~ /s$/) return v * 1000
      return v + 0
    }
    /requests in/ { reqs = $1 }
    /^Requests\/sec:/ { rps = $2 }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx or 3xx/ { bad = $NF }
    END {
      if (bad > 0 || reqs == 0) { print "bad " bad " " reqs; exit }
      printf "%.0f %.3f %.2f\n", rps, p99, ticks / hz * 1e6 / reqs
    }'
}

wrk_args=(wrk -t1 -c64 "-d${secs}s" --latency "http://127.0.0.1:$port/")
wrk_cmd=${wrk_args[*]}
echo "w9_hello: $runs runs after $warm warm-up rounds, interleaved, each: $wrk_cmd" >&2
for i in "${!cmds[@]}"; do echo "w9_hello:   ${names[$i]}: ${cmds[$i]}" >&2; done

total=$(( (warm + runs) * ${#cmds[@]} ))
done_n=0
for ((r = -warm + 1; r <= runs; r++)); do
  for i in "${!cmds[@]}"; do
    done_n=$((done_n + 1))
    line=$(run_one "$i")
    case $line in bad*) echo "$0: ${names[$i]}: failed requests ($line)" >&2; exit 1 ;; esac
    label=warm-up
    if [ "$r" -ge 1 ]; then
      echo "$i $line" >>"$results"
      label="round $r/$runs"
    fi
    printf '[%d/%d] %-12s %-10s req/s=%s p99_ms=%s cpu_us_per_req=%s\n' "$done_n" "$total" \
      "$label" "${names[$i]}" $line >&2
  done
done

# summary: per server "name req_s min max p99_ms min max cpu_us_req min
# max", medians, min and max over the runs.
summary() {
  for i in "${!cmds[@]}"; do
    awk -v i="$i" -v name="${names[$i]}" '
      function median(a, n,   j, k, t) {
        for (j = 2; j <= n; j++) { t = a[j]; for (k = j - 1; k >= 1 && a[k] > t; k--) a[k + 1] = a[k]; a[k + 1] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
      }
      function range(a, n,   j, lo, hi) {
        lo = hi = a[1]
        for (j = 2; j <= n; j++) { if (a[j] < lo) lo = a[j]; if (a[j] > hi) hi = a[j] }
        return lo " " hi
      }
      $1 == i { n++; rps[n] = $2 + 0; p99[n] = $3 + 0; cpu[n] = $4 + 0 }
      END {
        split(range(rps, n), r); split(range(p99, n), p); split(range(cpu, n), c)
        printf "%-12s %10.0f %10.0f %10.0f %10.3f %10.3f %10.3f %10.2f %10.2f %10.2f\n", name,
               median(rps, n), r[1], r[2], median(p99, n), p[1], p[2], median(cpu, n), c[1], c[2]
      }' "$results"
  done
}

printf '%-12s %12s %10s %16s   (medians of %d runs, wrk -t1 -c64 -d%ss)\n' \
  server req/s p99_ms cpu_us/request "$runs" "$secs"
summary | awk '{ printf "%-12s %12.0f %10.3f %16.2f\n", $1, $2, $5, $8 }'
if [ -n "$outf" ]; then
  {
    echo "# W9 hello: $wrk_cmd; medians, min and max of $runs runs after $warm warm-up rounds, interleaved"
    printf '%-12s %10s %10s %10s %10s %10s %10s %10s %10s %10s\n' name req_s req_s_min req_s_max \
      p99_ms p99_ms_min p99_ms_max cpu_us_req cpu_us_req_min cpu_us_req_max
    summary
  } >"$results.table"
  mv "$results.table" "$outf"
  echo "w9_hello: wrote $outf" >&2
fi
