#!/usr/bin/env bash
# WEFT_TRACE on the W7 demo: a complete trace file per run, in the
# trace-event format; under the GIL no two run spans overlap in time across
# all workers (one task executes at a time) and both tasks ran; a path that
# cannot be written fails the run with a message naming WEFT_TRACE;
# tools/weft-trace-svg draws the files.
#   usage: trace.sh GIL_CPU_DEMO TRACE_SVG_TOOL
set -euo pipefail
demo=${1:?usage: trace.sh GIL_CPU_DEMO TRACE_SVG_TOOL}
svg=${2:?usage: trace.sh GIL_CPU_DEMO TRACE_SVG_TOOL}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
WEFT_WORKERS=2 WEFT_MODE=gil WEFT_SWITCH_INTERVAL_US=1000 WEFT_TRACE="$tmp/gil.json" \
  "$demo" 20000000 >/dev/null
WEFT_WORKERS=2 WEFT_TRACE="$tmp/par.json" "$demo" 20000000 >/dev/null
# Joins that run their child inline, on the joiner's stack (one worker, so
# the children are still unstarted when joined): each child has its own
# spans all the same.
WEFT_WORKERS=1 WEFT_TRACE="$tmp/one.json" "$demo" --join 2000000 >/dev/null
for f in gil par one; do
  grep -q '"traceEvents"' "$tmp/$f.json" || { echo "$f.json: no traceEvents"; exit 1; }
  tail -1 "$tmp/$f.json" | grep -q '^\],"otherData":{"events_dropped":0}}$' ||
    { echo "$f.json: does not end as a complete trace"; exit 1; }
done
# Run spans, sorted by start: under the GIL each starts after the last ended.
overlaps=$(grep '"cat":"run"' "$tmp/gil.json" |
  sed -E 's/.*"ts":([0-9.]+),"dur":([0-9.]+).*/\1 \2/' | sort -n |
  awk '{ if (NR > 1 && $1 < end - 0.001) bad++; e = $1 + $2; if (e > end) end = e }
       END { print bad + 0 }')
[ "$overlaps" -eq 0 ] || { echo "gil.json: $overlaps run spans overlap another"; exit 1; }
# Both LCG tasks ran, each at least once (which workers took them, and
# whether the token changed hands, depends on how the machine schedules
# threads; so do their ids, which workers hand out in blocks).
for f in gil par one; do
  ran=$(grep '"cat":"run"' "$tmp/$f.json" | { grep -v '"name":"main"' || true; } |
    sed -E 's/.*"args":\{"task":([0-9]+)\}.*/\1/' | sort -u | wc -l)
  [ "$ran" -eq 2 ] || { echo "$f.json: $ran tasks besides main ran, not 2"; exit 1; }
done
# A path that cannot be written.
if out=$(WEFT_TRACE="$tmp/no/such/dir/t.json" "$demo" 1000 2>&1); then
  echo "a run with an unwritable WEFT_TRACE succeeded"; exit 1
fi
grep -q 'WEFT_TRACE="'"$tmp"'/no/such/dir/t.json": cannot write it' <<<"$out" ||
  { echo "no message naming WEFT_TRACE: $out"; exit 1; }
# The drawing.
"$svg" "$tmp/gil.json" "$tmp/par.json" >"$tmp/t.svg"
rects=$(grep -c '<rect' "$tmp/t.svg")
[ "$rects" -gt 10 ] || { echo "weft-trace-svg drew $rects rectangles"; exit 1; }
echo "traces: complete, no overlap under the GIL, drawn"
