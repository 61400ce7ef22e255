#!/bin/sh
# exported_symbols NM LIBWEFT_SO HEADER...: libweft.so exports weft's API
# and nothing else.
#
#  - Every defined dynamic symbol is weft_<name>: the objects are built with
#    -fvisibility=hidden and only WEFT_API declarations are default. The
#    internal weft__<module>_<verb> functions must stay hidden too, so they
#    fail the check as well.
#  - Allowed besides: _init, _fini, _edata, _end and __bss_start. The linker
#    defines these in every shared object (the entry and exit sections and
#    the data segment bounds), and older binutils put the last three in the
#    dynamic symbol table; none is weft's.
#  - Every function a header declares WEFT_API is exported, and every
#    exported symbol is declared so: a WEFT_API left off makes a function
#    that users cannot link, a stray one an API nobody documented.
#  - At least 50 weft_ symbols, so that a library that exports nothing, or an
#    nm that prints nothing, cannot pass.
set -eu
nm=$1
lib=$2
shift 2

fail() {
    echo "exported_symbols: FAILED: $*" >&2
    exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-syms.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

"$nm" -D --defined-only "$lib" >"$tmp/nm" || fail "$nm -D --defined-only $lib"
# "ADDRESS TYPE NAME[@VERSION]"; drop a symbol version if there is one.
awk 'NF >= 3 { sub(/@.*/, "", $3); print $3 }' "$tmp/nm" | sort -u >"$tmp/exported"

grep -v -x -e '_init' -e '_fini' -e '_edata' -e '_end' -e '__bss_start' \
    "$tmp/exported" >"$tmp/own" || true
if grep -v '^weft_' "$tmp/own" >"$tmp/foreign" || grep '^weft__' "$tmp/own" >>"$tmp/foreign"; then
    sed 's/^/  /' "$tmp/foreign" >&2
    fail "$lib exports symbols that are not weft's API (above)"
fi

count=$(wc -l <"$tmp/own")
[ "$count" -ge 50 ] || fail "$lib exports only $count weft_ symbols (expected at least 50)"

# The first weft_name( on each line that declares something WEFT_API.
grep -h 'WEFT_API' "$@" | grep -v '#define' |
    sed -n 's/[^(]*\<\(weft_[A-Za-z0-9_]*\)(.*/\1/p' | sort -u >"$tmp/declared"
if ! cmp -s "$tmp/declared" "$tmp/own"; then
    echo "declared WEFT_API but not exported (<), exported but not declared (>):" >&2
    diff "$tmp/declared" "$tmp/own" | grep '^[<>]' | sed 's/^/  /' >&2
    fail "the headers' WEFT_API functions and $lib's exports differ"
fi

echo "exported_symbols: $lib exports $count symbols, all weft_, each declared WEFT_API"
