#!/usr/bin/env bash
# Checks that the reference documentation cannot drift from the header:
#  - every WEFT_API function in include/weft.h (and include/weft/*.h) has a
#    comment block right above it (a block may cover a run of adjacent
#    declarations, as weft_chan_send and weft_chan_send_until share one);
#  - that block says whether the call may suspend and where it may be
#    called from (task context, any thread, ...);
#  - every such function is named in docs/api.md, the index.
# Prints each problem and exits 1 if there is any.
#   usage: check_api_docs.sh SOURCE_DIR
set -euo pipefail
src=${1:?usage: check_api_docs.sh SOURCE_DIR}
headers=("$src/include/weft.h")
for h in "$src"/include/weft/*.h; do [ -e "$h" ] && headers+=("$h"); done

awk -v api="$src/docs/api.md" '
function flush_problem(msg) { print msg; bad = 1 }
BEGIN {
    while ((getline line < api) > 0) doc = doc "\n" line
    close(api)
}
FNR == 1 { block = ""; inblock = 0; last = "none" }
{
    line = $0
    if (inblock) {
        block = block "\n" line
        if (line ~ /\*\//) { inblock = 0; last = "comment" }
        next
    }
    if (line ~ /^[ \t]*\/\*/) {
        block = line; inblock = (line !~ /\*\//); if (!inblock) last = "comment"
        next
    }
    if (line ~ /^WEFT_API/) {
        decl = line
        while (decl !~ /;/ && (getline more) > 0) decl = decl " " more
        name = decl
        sub(/\(.*/, "", name); sub(/.*[ *]/, "", name)
        n++
        if (last != "comment" && last != "decl")
            flush_problem(FILENAME ": " name ": no comment block right above it")
        else {
            b = tolower(block)
            gsub(/\n[ \t]*\*?[ \t]*/, " ", b)
            if (b !~ /suspend/ && b !~ /blocks/)
                flush_problem(FILENAME ": " name ": its block does not say whether it suspends")
            if (b !~ /task context/ && b !~ /any thread/ && b !~ /thread/ && b !~ /body of/)
                flush_problem(FILENAME ": " name ": its block does not say where it may be called")
        }
        if (index(doc, name) == 0)
            flush_problem(FILENAME ": " name ": not in docs/api.md")
        last = "decl"
        next
    }
    if (line ~ /^[ \t]*$/) next
    last = "other"
}
END {
    if (n < 50) { print "only " n " WEFT_API functions found: is the header parsed?"; bad = 1 }
    if (!bad) print n " public functions, each documented in the header and named in docs/api.md"
    exit bad
}' "${headers[@]}"
