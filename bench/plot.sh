#!/usr/bin/env bash
# Draws a benchmark summary table as an SVG bar chart: one bar per row at
# its median, a whisker from its min to its max where the table has them,
# weft's own rows (names starting with "weft") in a colour of their own,
# and the median written at the end of each bar. The scale is logarithmic
# when the medians span more than 20x, so that a fast runtime stays
# visible beside a slow one.
#
#   bench/plot.sh [-w WEFT_REGEX] TITLE UNIT < TABLE > CHART.svg
#   bench/plot.sh [-w WEFT_REGEX] -c COLUMN=UNIT [-c COLUMN=UNIT ...] TITLE < TABLE > CHART.svg
#   bench/plot.sh all
#
# The table is the one bench/run.sh prints: a header line starting with
# "name", then a row per command; lines starting with "#" are skipped.
# The first form draws its median column, with min and max as the
# whisker. Each -c draws one panel, stacked in the same SVG with a scale
# of its own, from the column named COLUMN in the header, with
# COLUMN_min and COLUMN_max as the whisker when the header has them:
# the tables that bench/w8_fetch.sh, bench/w9_hello.sh and
# bench/convoy.sh write with -o are of that kind. -w gives the rows drawn
# in weft's colour as an awk regular expression (default ^weft).
#
# Examples:
#   bench/run.sh -n 7 weft=build/bench/w3_skynet tbb=... > w3.txt
#   bench/plot.sh "W3 skynet, 2 workers" "ms (lower is better)" < w3.txt > w3.svg
#   bench/w9_hello.sh -o w9.txt go=...
#   bench/plot.sh -c "req_s=requests/s (higher is better)" -c "p99_ms=p99 ms" "W9" < w9.txt > w9.svg
#
# bench/results/ keeps the tables behind docs/bench.md; `bench/plot.sh all`
# redraws every chart there into docs/plots/, and notes on stderr the
# tables that are not there.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

if [ "${1:-}" = all ]; then
  out=$(cd "$here/.." && pwd)/docs/plots
  mkdir -p "$out"
  # draw NAME ARGS...: bench/results/NAME.txt to docs/plots/NAME.svg.
  draw() {
    local name=$1 table=$here/results/$1.txt svg=$out/$1.svg
    shift
    if [ ! -f "$table" ]; then
      echo "plot.sh: no bench/results/$name.txt, skipped" >&2
      return 0
    fi
    "$0" "$@" <"$table" >"$svg.tmp"
    mv "$svg.tmp" "$svg"
    echo "docs/plots/$name.svg" >&2
  }
  draw w1_switch "W1 switch: 10,000,000 switches between two tasks, 1 worker" "ns per switch (lower is better)"
  draw w2_spawn "W2 spawn: 1,000,000 tasks spawned and joined" "ns per task (lower is better)"
  draw w3_skynet "W3 skynet: 1,111,111 tasks" "ms (lower is better)"
  draw w4_fib "W4 fib(30): 1,346,268 tasks" "ms (lower is better)"
  draw w5_pingpong "W5 pingpong: 1,000,000 round trips over rendezvous channels" \
    "ns per round trip (lower is better)"
  draw w6_timers "W6 timers: 100,000 tasks sleep 10 ms" "ms over the 10 ms ideal (lower is better)"
  draw w7_gil_cpu -w '^(serial|gil|parallel)$' \
    "W7 gil-cpu: 2 x 50,000,000 LCG steps, serial / GIL / parallel" "ms (lower is better)"
  w8=(-c "wall_s=wall s (lower is better)" -c "cpu_us_req=client CPU us a request (lower is better)")
  draw w8_seed "${w8[@]}" "W8 http-fetch, seed: N=100 C=100, server delay 50 ms (ideal 0.050 s)"
  draw w8_scale "${w8[@]}" "W8 http-fetch, scale: N=10,000 C=256, server delay 50 ms (ideal 2.00 s)"
  draw w8_nodelay "${w8[@]}" "W8 http-fetch, no delay: N=10,000 C=64, server delay 0"
  draw w9_hello -c "req_s=requests/s (higher is better)" -c "p99_ms=p99 latency ms (lower is better)" \
    -c "cpu_us_req=server CPU us a request (lower is better)" \
    "W9 hello-world HTTP server under wrk -t1 -c64"
  draw convoy -c "beside_us=us a trip beside the spinner (lower is better)" \
    -c "slowdown=slowdown, beside the spinner / alone, per round (lower is better)" \
    -c "alone_us=us a trip alone" \
    "The GIL convoy: an I/O task's 64-byte round trips beside a CPU-bound one"
  exit 0
fi

usage="usage: $0 [-w WEFT_REGEX] TITLE UNIT < TABLE > CHART.svg
       $0 [-w WEFT_REGEX] -c COLUMN=UNIT [-c COLUMN=UNIT ...] TITLE < TABLE > CHART.svg
       $0 all"
weft='^weft'
cols=() units=()
while getopts w:c: opt; do
  case $opt in
    w) weft=$OPTARG ;;
    c) case $OPTARG in
         *=*) cols+=("${OPTARG%%=*}"); units+=("${OPTARG#*=}") ;;
         *) echo "$0: -c \"$OPTARG\": not COLUMN=UNIT" >&2; exit 2 ;;
       esac ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
if [ ${#cols[@]} -eq 0 ]; then
  [ $# -eq 2 ] || { echo "$usage" >&2; exit 2; }
  cols=(median) units=("$2")
else
  [ $# -eq 1 ] || { echo "$usage" >&2; exit 2; }
fi

# The panels reach awk through the environment, one field per panel
# separated by \037, so that no backslash in them is taken for an escape.
sep=$'\037'
PLOT_TITLE=$1 PLOT_WEFT=$weft \
PLOT_COLS=$(IFS=$sep; echo "${cols[*]}") PLOT_UNITS=$(IFS=$sep; echo "${units[*]}") \
awk '
function esc(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); gsub(/>/, "\\&gt;", s); return s }
function lg(x) { return log(x) / log(10) }
function num(s) { return s ~ /^-?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$/ }
function fmt(v) { return v >= 100000 ? sprintf("%.0f", v) : sprintf("%g", v) }
function xpos(v) {
    if (logscale) {
        if (v < 10 ^ lo) v = 10 ^ lo
        return left + (lg(v) - lo) / (hi - lo) * width
    }
    return left + v / hi * width
}
function line(x1, y1, x2, y2, colour) {
    printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\"/>\n", x1, y1, x2, y2, colour
}
/^[ \t]*(#|$)/ { next }
$1 == "name" && !header { header = 1; n = 0; for (i = 1; i <= NF; i++) col[$i] = i; next }
header || NF >= 4 { n++; name[n] = $1; for (i = 1; i <= NF; i++) cell[n, i] = $i }
END {
    if (n == 0) { print "plot.sh: no rows in the table" > "/dev/stderr"; exit 1 }
    if (!header) { col["median"] = 2; col["min"] = 3; col["max"] = 4 }
    panels = split(ENVIRON["PLOT_COLS"], pcol, "\037")
    split(ENVIRON["PLOT_UNITS"], punit, "\037")
    for (p = 1; p <= panels; p++)
        if (!(pcol[p] in col)) { print "plot.sh: no column " pcol[p] " in the table" > "/dev/stderr"; exit 1 }
    left = 110; width = 520; bar = 22; gap = 10
    height = 20 + panels * (30 + n * (bar + gap) + 30) + 20
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", left + width + 90, height
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">%s</text>\n", esc(ENVIRON["PLOT_TITLE"])
    y0 = 20
    for (p = 1; p <= panels; p++) {
        c = pcol[p]
        if (c == "median") { cmin = "min"; cmax = "max" } else { cmin = c "_min"; cmax = c "_max" }
        whiskers = (cmin in col) && (cmax in col)
        small = 0; big = 0; smallmed = 0; first = 1
        for (i = 1; i <= n; i++) {
            has[i] = num(cell[i, col[c]])
            if (!has[i]) continue
            med[i] = cell[i, col[c]] + 0; mn[i] = med[i]; mx[i] = med[i]
            if (whiskers && num(cell[i, col[cmin]]) && num(cell[i, col[cmax]])) {
                mn[i] = cell[i, col[cmin]] + 0; mx[i] = cell[i, col[cmax]] + 0
            }
            if (first || med[i] < small) small = med[i]
            if (first || mx[i] > big) big = mx[i]
            if (first || med[i] < smallmed) smallmed = med[i]
            first = 0
        }
        for (i = 1; i <= n; i++) if (has[i] && mn[i] > 0 && mn[i] < small) small = mn[i]
        if (big <= 0) big = 1
        logscale = smallmed > 0 && big / smallmed > 20
        if (logscale) {
            lo = int(lg(small)); if (lg(small) < lo) lo--
            hi = int(lg(big)); if (hi < lg(big)) hi++
            if (hi == lo) hi = lo + 1
        } else {
            e = int(lg(big)); if (lg(big) < e) e--
            step = 10 ^ e; hi = step * (int(big / step) + 1)
        }
        top = y0 + 30
        axis = top + n * (bar + gap)
        printf "<text x=\"10\" y=\"%d\" fill=\"#555\">%s%s; bar: median%s</text>\n", y0 + 18, esc(punit[p]),
               logscale ? ", log scale" : "", whiskers ? ", whisker: min-max" : ""
        # Grid and tick labels.
        if (logscale) {
            for (e = lo; e <= hi; e++) for (m = 1; m <= 5; m += (m == 1 ? 1 : 3)) {
                v = m * 10 ^ e; if (lg(v) > hi + 1e-9) continue
                x = xpos(v)
                line(x, top - 5, x, axis, "#ddd")
                printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%g</text>\n", x, axis + 15, v
            }
        } else {
            for (i = 0; i <= 5; i++) {
                v = hi * i / 5; x = xpos(v)
                line(x, top - 5, x, axis, "#ddd")
                printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%g</text>\n", x, axis + 15, v
            }
        }
        base = logscale ? xpos(10 ^ lo) : left
        for (i = 1; i <= n; i++) {
            y = top + (i - 1) * (bar + gap)
            colour = name[i] ~ ENVIRON["PLOT_WEFT"] ? "#d95f02" : "#7570b3"
            printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", left - 8, y + bar / 2 + 4, esc(name[i])
            if (!has[i]) {
                printf "<text x=\"%.1f\" y=\"%d\" fill=\"#555\">no figure</text>\n", base + 5, y + bar / 2 + 4
                continue
            }
            printf "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n", base, y, xpos(med[i]) - base, bar, colour
            if (mx[i] > mn[i]) {
                line(xpos(mn[i]), y + bar / 2, xpos(mx[i]), y + bar / 2, "black")
                line(xpos(mn[i]), y + 6, xpos(mn[i]), y + bar - 6, "black")
                line(xpos(mx[i]), y + 6, xpos(mx[i]), y + bar - 6, "black")
            }
            printf "<text x=\"%.1f\" y=\"%d\">%s</text>\n", (xpos(mx[i]) > xpos(med[i]) ? xpos(mx[i]) : xpos(med[i])) + 5, y + bar / 2 + 4, fmt(med[i])
        }
        line(base, axis, left + width, axis, "black")
        y0 = axis + 30
    }
    print "</svg>"
}'
