#!/usr/bin/env bash
# Shows that check_api_docs.sh can fail: on a copy of the tree where one
# public function lost its comment block, one lost its "suspend" sentence
# and one is missing from docs/api.md, it must exit 1 and name all three.
#   usage: check_api_docs_selftest.sh SOURCE_DIR
set -euo pipefail
src=${1:?usage: check_api_docs_selftest.sh SOURCE_DIR}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/include" "$tmp/docs"
# weft_detach: drop the line that ends the comment block above it, and the
# block's text, by replacing the whole block with a plain line.
awk '
/^\/\* Releases the handle without waiting/ { skipping = 1 }
skipping { if ($0 ~ /\*\//) { skipping = 0; print "int unrelated_line;" } ; next }
{ print }' "$src/include/weft.h" |
  sed 's/^ \* Never suspends\. \*\/$/ * (no word on it) *\//' > "$tmp/include/weft.h"
grep -v 'weft_task_id' "$src/docs/api.md" > "$tmp/docs/api.md"
if out=$(bash "$here/check_api_docs.sh" "$tmp" 2>&1); then
  echo "check_api_docs.sh passed a tree with gaps:"; echo "$out"; exit 1
fi
for want in "weft_detach: no comment block" "weft_task_id: not in docs/api.md" \
            "its block does not say whether it suspends"; do
  if ! grep -qF "$want" <<<"$out"; then
    echo "check_api_docs.sh did not report: $want"; echo "$out"; exit 1
  fi
done
echo "check_api_docs.sh reports a missing block, a missing sentence and a missing index entry"
