#!/usr/bin/env bash
# W8 http-fetch: the fetch demo's client against a delay server on
# loopback, beside any peer clients, interleaved (A B A B ...), for the
# three cases:
#
#   seed      N=100    C=100  D=50 ms   (ideal 0.050 s)
#   scale     N=10000  C=256  D=50 ms   (ideal 2.00 s)
#   nodelay   N=10000  C=64   D=0
#
#   bench/w8_fetch.sh [-r RUNS] [-o PREFIX] [--fetch PATH] [--server CMD]
#                     [--url50 BASE --url0 BASE] [--ports P50,P0]
#                     [--floor PATH | --no-floor] [--peer NAME=CMD ...]
#                     [CASE ...]
#
# For each case and client it prints the median whole-process wall time,
# the median client CPU per request (user + sys of the client process over
# N) and the median peak RSS, over RUNS runs (default 5) after one warm-up
# round; every run must report bad=0. -o PREFIX also writes each case's
# summary, with the min and max beside each median, to PREFIX_CASE.txt in
# the form bench/plot.sh draws: `-o bench/results/w8` writes
# bench/results/w8_seed.txt, w8_scale.txt and w8_nodelay.txt. The tables
# go to stdout; the servers, the client commands and a line per run
# ("[k/total] CASE round r/RUNS CLIENT wall=...") go to stderr.
#
# The server: by default the fetch demo's own (`fetch --serve`), started
# here on 127.0.0.1 (ports 18091 for D=50, 18092 for D=0) and stopped by
# PID at the end. --server CMD starts another one instead: {addr} and
# {delay} in CMD become 127.0.0.1:PORT and D, e.g.
#   --server 'bin/delay_server -addr {addr} -delay {delay}'
# --url50 and --url0 use servers that are already running.
#
# Clients: weft's is `fetch -n N -c C --url BASE --no-baseline`; a peer is
# NAME=CMD where {n}, {c} and {url} become N, C and BASE, e.g.
#   --peer 'curl-multi=bin/fetch_curl -n {n} -c {c} -url {url}'
# A client prints bad=K (K wrong replies) somewhere in its output.
# `curl-socket` runs too when it is built (build/bench/curl_socket_floor,
# or --floor PATH; --no-floor leaves it out): one thread driving libcurl
# through the socket API that weft uses, with no runtime, the floor of
# that API (bench/curl_socket_floor.c).
#
# Times come from bash's `time` around GNU time (package `time`), which
# reports the peak RSS; both add about a millisecond of their own.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
runs=5
fetch=$here/../build/demos/fetch
floor=$here/../build/bench/curl_socket_floor
server=""
url50="" url0=""
ports=18091,18092
peers=()
cases=()
outp=""
while [ $# -gt 0 ]; do
  case $1 in
    -r) runs=$2; shift 2 ;;
    -o) outp=$2; shift 2 ;;
    --fetch) fetch=$2; shift 2 ;;
    --server) server=$2; shift 2 ;;
    --url50) url50=$2; shift 2 ;;
    --url0) url0=$2; shift 2 ;;
    --ports) ports=$2; shift 2 ;;
    --peer) peers+=("$2"); shift 2 ;;
    --floor) floor=$2; shift 2 ;;
    --no-floor) floor=""; shift ;;
    seed|scale|nodelay) cases+=("$1"); shift ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done
[ ${#cases[@]} -gt 0 ] || cases=(seed scale nodelay)
[ "$runs" -ge 1 ] || { echo "w8_fetch: -r $runs: at least 1 run" >&2; exit 2; }
[ -z "$outp" ] || [ -d "$(dirname "$outp")" ] || { echo "w8_fetch: -o $outp: no such folder" >&2; exit 2; }
[ -x "$fetch" ] || { echo "w8_fetch: $fetch: not built (cmake --build build)" >&2; exit 2; }
[ -z "$floor" ] || [ ! -x "$floor" ] || peers=("curl-socket=$floor -n {n} -c {c} -url {url}" "${peers[@]}")
gnutime=()
[ -x /usr/bin/time ] && gnutime=(/usr/bin/time -f %M -o)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/w8.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# start_server DELAY PORT: starts a server and prints its base URL once it
# accepts connections (10 s at most).
start_server() {
  local delay=$1 port=$2 cmd
  if [ -n "$server" ]; then
    cmd=${server//\{addr\}/127.0.0.1:$port}
    cmd=${cmd//\{delay\}/$delay}
  else
    cmd="$fetch --serve 127.0.0.1:$port -d $delay --lifetime 3600"
  fi
  echo "w8_fetch: server: $cmd" >&2
  bash -c "exec $cmd" >"$tmp/server-$port.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1000); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "http://127.0.0.1:$port"
      return
    fi
    sleep 0.01
  done
  cat "$tmp/server-$port.log" >&2
  echo "w8_fetch: the server on port $port did not start" >&2
  exit 1
}

need50=0 need0=0
for c in "${cases[@]}"; do
  case $c in seed|scale) need50=1 ;; nodelay) need0=1 ;; esac
done
[ $need50 = 1 ] && [ -z "$url50" ] && url50=$(start_server 50 "${ports%,*}")
[ $need0 = 1 ] && [ -z "$url0" ] && url0=$(start_server 0 "${ports#*,}")

# run_one CMD: runs CMD once; prints "wall_s cpu_s rss_kib bad".
run_one() {
  local cmd=$1 t rss bad
  TIMEFORMAT='%3R %3U %3S'
  if ! t=$({ time "${gnutime[@]}" ${gnutime:+"$tmp/rss"} bash -c "exec $cmd" \
    >"$tmp/out" 2>&1; } 2>&1); then
    cat "$tmp/out" >&2
    echo "w8_fetch: failed: $cmd" >&2
    exit 1
  fi
  rss=-
  [ ${#gnutime[@]} -gt 0 ] && rss=$(tail -n 1 "$tmp/rss")
  bad=$(grep -o 'bad=[0-9]*' "$tmp/out" | tail -n 1 | cut -d= -f2)
  if [ "${bad:-x}" != 0 ]; then
    cat "$tmp/out" >&2
    echo "w8_fetch: $cmd: bad=${bad:-?} (every reply must be right)" >&2
    exit 1
  fi
  echo "$t $rss" | awk '{ printf "%s %.3f %s 0\n", $1, $2 + $3, $4 }'
}

# One line per run on stderr: "[k/total] CASE round r/RUNS CLIENT wall=..."
total=0
for c in "${cases[@]}"; do total=$((total + (runs + 1) * (1 + ${#peers[@]}))); done
done_n=0

# summary CASE I N: client I's runs of CASE as "name wall_s min max
# cpu_us_req min max rss_MiB", medians, min and max over the runs; CPU a
# request is the client's user + sys over N.
summary() {
  awk -v name="${names[$2]}" -v n="$3" '
    function median(a, k,   j, m, t) {
      for (j = 2; j <= k; j++) { t = a[j]; for (m = j - 1; m >= 1 && a[m] > t; m--) a[m + 1] = a[m]; a[m + 1] = t }
      return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
    }
    { k++; w[k] = $1 + 0; u[k] = $2 * 1e6 / n; m[k] = $3 == "-" ? "-" : $3 + 0
      if (k == 1 || $1 < wmin) wmin = $1; if (k == 1 || $1 > wmax) wmax = $1
      if (k == 1 || u[k] < umin) umin = u[k]; if (k == 1 || u[k] > umax) umax = u[k] }
    END {
      rss = m[1] == "-" ? "-" : sprintf("%.1f", median(m, k) / 1024)
      printf "%-14s %10.4f %10.4f %10.4f %10.1f %10.1f %10.1f %8s\n", name, median(w, k), wmin, wmax,
             median(u, k), umin, umax, rss
    }' "$tmp/$1-$2"
}

for c in "${cases[@]}"; do
  case $c in
    seed) n=100 c_=100 d=50 url=$url50 ;;
    scale) n=10000 c_=256 d=50 url=$url50 ;;
    nodelay) n=10000 c_=64 d=0 url=$url0 ;;
  esac
  names=(weft) cmds=("$fetch -n $n -c $c_ --url $url --no-baseline")
  for p in "${peers[@]}"; do
    names+=("${p%%=*}")
    cmd=${p#*=}
    cmd=${cmd//\{n\}/$n}
    cmd=${cmd//\{c\}/$c_}
    cmds+=("${cmd//\{url\}/$url}")
  done
  about="$c: N=$n C=$c_ D=$d ms, $runs runs after 1 warm-up, interleaved"
  echo "w8_fetch: $about" >&2
  for i in "${!names[@]}"; do echo "w8_fetch:   ${names[$i]}: ${cmds[$i]}" >&2; done
  for r in $(seq 0 "$runs"); do
    label="round $r/$runs"
    [ "$r" = 0 ] && label=warm-up
    for i in "${!names[@]}"; do
      done_n=$((done_n + 1))
      res=$(run_one "${cmds[$i]}")
      [ "$r" -gt 0 ] && echo "$res" >>"$tmp/$c-$i"
      read -r wall cpu rss _ <<<"$res"
      printf '[%d/%d] %-8s %-11s %-14s wall=%s s cpu=%s s rss_kib=%s\n' "$done_n" "$total" \
        "$c" "$label" "${names[$i]}" "$wall" "$cpu" "$rss" >&2
    done
  done
  echo "## $about"
  printf '%-14s %10s %14s %14s\n' client "wall s" "CPU us/req" "peak RSS MiB"
  for i in "${!names[@]}"; do
    summary "$c" "$i" "$n" | awk '{ printf "%-14s %10.4f %14.1f %14s\n", $1, $2, $5, $8 }'
  done
  echo
  if [ -n "$outp" ]; then
    {
      echo "# W8 http-fetch $about; medians, min and max; CPU: client user + sys over N"
      printf '%-14s %10s %10s %10s %10s %10s %10s %8s\n' name wall_s wall_s_min wall_s_max \
        cpu_us_req cpu_us_req_min cpu_us_req_max rss_MiB
      for i in "${!names[@]}"; do summary "$c" "$i" "$n"; done
    } >"$tmp/table"
    mv "$tmp/table" "${outp}_$c.txt"
    echo "w8_fetch: wrote ${outp}_$c.txt" >&2
  fi
done
