#!/usr/bin/env bash
# Draws the summary table that bench/run.sh prints as an SVG bar chart: one
# bar per command at its median, a whisker from its min to its max, weft's
# own commands (names starting with "weft") in a colour of their own, and
# the median written at the end of each bar. The scale is logarithmic when
# the medians span more than 20x, so that a fast runtime stays visible
# beside a slow one.
#
#   bench/plot.sh TITLE UNIT < TABLE > CHART.svg
#
# Example:
#   bench/run.sh -n 7 weft=build/bench/w3_skynet tbb=... > w3.txt
#   bench/plot.sh "W3 skynet, 2 workers" "ms (lower is better)" < w3.txt > w3.svg
#
# bench/results/ keeps the tables behind docs/bench.md; `bench/plot.sh all`
# redraws every chart there into docs/plots/.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

if [ "${1:-}" = all ]; then
  out="$here/../docs/plots"
  mkdir -p "$out"
  while IFS='|' read -r file title unit; do
    "$0" "$title" "$unit" <"$here/results/$file.txt" >"$out/$file.svg"
    echo "$out/$file.svg" >&2
  done <<'EOF'
w2_spawn|W2 spawn: 1,000,000 tasks spawned and joined|ns per task (lower is better)
w3_skynet|W3 skynet: 1,111,111 tasks|ms (lower is better)
w4_fib|W4 fib(30): 1,346,268 tasks|ms (lower is better)
w5_pingpong|W5 pingpong: 1,000,000 round trips over rendezvous channels|ns per round trip (lower is better)
w6_timers|W6 timers: 100,000 tasks sleep 10 ms|ms over the 10 ms ideal (lower is better)
w7_gil_cpu|W7 gil-cpu: 2 x 50,000,000 LCG steps, serial / GIL / parallel|ms (lower is better)
EOF
  exit 0
fi

[ $# -eq 2 ] || { echo "usage: $0 TITLE UNIT < TABLE > CHART.svg  |  $0 all" >&2; exit 2; }

awk -v title="$1" -v unit="$2" '
function esc(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); gsub(/>/, "\\&gt;", s); return s }
function lg(x) { return log(x) / log(10) }
function xpos(v) {
    if (logscale) return left + (lg(v) - lo) / (hi - lo) * width
    return left + v / hi * width
}
$1 == "name" { next }
NF >= 4 && $2 ~ /^[0-9.]+$/ {
    n++; name[n] = $1; med[n] = $2 + 0; mn[n] = $3 + 0; mx[n] = $4 + 0
    if (n == 1 || med[n] < small) small = med[n]
    if (n == 1 || mx[n] > big) big = mx[n]
}
END {
    if (n == 0) { print "plot.sh: no rows in the table" > "/dev/stderr"; exit 1 }
    left = 110; width = 520; bar = 22; gap = 10; top = 50
    height = top + n * (bar + gap) + 50
    logscale = small > 0 && big / small > 20
    if (logscale) {
        lo = int(lg(small)); if (lg(small) < lo) lo--
        hi = int(lg(big)); if (hi < lg(big)) hi++
        if (hi == lo) hi = lo + 1
    } else {
        step = 10 ^ int(lg(big)); hi = step * (int(big / step) + 1)
    }
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", left + width + 90, height
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">%s</text>\n", esc(title)
    printf "<text x=\"10\" y=\"38\" fill=\"#555\">%s%s; bar: median, whisker: min-max</text>\n", esc(unit), logscale ? ", log scale" : ""
    axis = top + n * (bar + gap)
    # Grid and tick labels.
    if (logscale) {
        for (e = lo; e <= hi; e++) for (m = 1; m <= 5; m += (m == 1 ? 1 : 3)) {
            v = m * 10 ^ e; if (lg(v) > hi + 1e-9) continue
            x = xpos(v)
            printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n", x, top - 5, x, axis
            printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%g</text>\n", x, axis + 15, v
        }
    } else {
        for (i = 0; i <= 5; i++) {
            v = hi * i / 5; x = xpos(v)
            printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n", x, top - 5, x, axis
            printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%g</text>\n", x, axis + 15, v
        }
    }
    base = logscale ? xpos(10 ^ lo) : left
    for (i = 1; i <= n; i++) {
        y = top + (i - 1) * (bar + gap)
        colour = name[i] ~ /^weft/ ? "#d95f02" : "#7570b3"
        printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", left - 8, y + bar / 2 + 4, esc(name[i])
        printf "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n", base, y, xpos(med[i]) - base, bar, colour
        if (mx[i] > mn[i]) {
            printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"black\"/>\n", xpos(mn[i]), y + bar / 2, xpos(mx[i]), y + bar / 2
            printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"black\"/>\n", xpos(mn[i]), y + 6, xpos(mn[i]), y + bar - 6
            printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"black\"/>\n", xpos(mx[i]), y + 6, xpos(mx[i]), y + bar - 6
        }
        printf "<text x=\"%.1f\" y=\"%d\">%g</text>\n", (xpos(mx[i]) > xpos(med[i]) ? xpos(mx[i]) : xpos(med[i])) + 5, y + bar / 2 + 4, med[i]
    }
    printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"black\"/>\n", base, axis, left + width, axis
    print "</svg>"
}'
