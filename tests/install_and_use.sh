#!/bin/sh
# install_and_use: installs the build ctest runs in into a temporary prefix
# and builds tests/install/app.c against that install, outside weft's
# tree, three ways, running each program:
#
#   pkg-config   cc app.c $(pkg-config --cflags --libs weft), run with
#                LD_LIBRARY_PATH
#   static       the same with pkg-config --static and libweft.a
#                (-l:libweft.a), run as it is
#   find_package a CMake project (tests/install/CMakeLists.txt) linking
#                weft::weft and weft::weft_static, run as built
#
# and checks the layout (soname and its links, weft.pc, the CMake package,
# an installed demo that runs through its RUNPATH). Any failing step prints
# which and exits 1; the prefix is removed either way.
#
# The settings come from tests/CMakeLists.txt in the environment: WEFT_CMAKE,
# WEFT_BUILD_DIR, WEFT_APP_DIR, WEFT_CC, WEFT_PKG_CONFIG, WEFT_READELF,
# WEFT_GENERATOR, WEFT_VERSION, WEFT_LIBDIR, WEFT_INCLUDEDIR,
# WEFT_LIBEXECDIR, WEFT_DEMOS, WEFT_SANITIZE.
set -u

fail() {
    echo "install_and_use: FAILED: $*" >&2
    exit 1
}
say() {
    echo "--- $*"
}

if [ -n "$WEFT_SANITIZE" ]; then
    echo "install_and_use: skipped: WEFT_SANITIZE=$WEFT_SANITIZE: the installed" \
        "library needs the sanitizer runtime, which a program built out of tree" \
        "does not link; the release build runs this test"
    exit 77
fi
case $WEFT_LIBDIR$WEFT_INCLUDEDIR in
/*)
    echo "install_and_use: skipped: an absolute CMAKE_INSTALL_LIBDIR or" \
        "_INCLUDEDIR would install outside the temporary prefix"
    exit 77
    ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-install.XXXXXX") || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
libdir=$prefix/$WEFT_LIBDIR
major=${WEFT_VERSION%%.*}

say "cmake --install $WEFT_BUILD_DIR --prefix $prefix"
"$WEFT_CMAKE" --install "$WEFT_BUILD_DIR" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; fail "cmake --install"; }

say "the installed layout"
for f in "$WEFT_INCLUDEDIR/weft.h" "$WEFT_INCLUDEDIR/weft/curl.h" \
    "$WEFT_LIBDIR/libweft.so.$WEFT_VERSION" \
    "$WEFT_LIBDIR/libweft.a" "$WEFT_LIBDIR/pkgconfig/weft.pc" \
    "$WEFT_LIBDIR/cmake/weft/weftConfig.cmake" \
    "$WEFT_LIBDIR/cmake/weft/weftConfigVersion.cmake" \
    "$WEFT_LIBDIR/cmake/weft/weftTargets.cmake"; do
    [ -f "$prefix/$f" ] || fail "$f is not installed"
done
[ "$(readlink "$libdir/libweft.so.$major")" = "libweft.so.$WEFT_VERSION" ] ||
    fail "libweft.so.$major does not link to libweft.so.$WEFT_VERSION"
[ "$(readlink "$libdir/libweft.so")" = "libweft.so.$major" ] ||
    fail "libweft.so does not link to libweft.so.$major"
"$WEFT_READELF" -d "$libdir/libweft.so.$WEFT_VERSION" | grep -q "SONAME.*\[libweft\.so\.$major\]" ||
    fail "the soname of libweft.so.$WEFT_VERSION is not libweft.so.$major"

if [ "$WEFT_DEMOS" = ON ]; then
    say "an installed demo runs through its RUNPATH"
    demo=$prefix/$WEFT_LIBEXECDIR/weft/hello_twice
    [ -x "$demo" ] || fail "$WEFT_LIBEXECDIR/weft/hello_twice is not installed"
    env -u LD_LIBRARY_PATH "$demo" >"$tmp/demo.out" 2>&1 ||
        { cat "$tmp/demo.out" >&2; fail "$demo"; }
    grep -q StopIteration "$tmp/demo.out" || fail "$demo printed something else"
fi

PKG_CONFIG_PATH=$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export PKG_CONFIG_PATH
# The header must compile cleanly as a user compiles it.
warn="-std=c11 -Wall -Wextra -Wpedantic -Werror"

# run NAME PROGRAM [ENV...]: runs PROGRAM and checks what it printed.
run() {
    name=$1
    shift
    env "$@" >"$tmp/$name.out" 2>&1 || { cat "$tmp/$name.out" >&2; fail "running the $name build"; }
    grep -q "got 42" "$tmp/$name.out" || fail "the $name build printed something else"
    cat "$tmp/$name.out"
}

say "pkg-config: cc app.c \$(pkg-config --cflags --libs weft)"
version=$("$WEFT_PKG_CONFIG" --modversion weft) || fail "pkg-config --modversion weft"
[ "$version" = "$WEFT_VERSION" ] || fail "pkg-config says weft $version, not $WEFT_VERSION"
flags=$("$WEFT_PKG_CONFIG" --cflags --libs weft) || fail "pkg-config --cflags --libs weft"
# shellcheck disable=SC2086 # the flags are words
"$WEFT_CC" $warn "$WEFT_APP_DIR/app.c" -o "$tmp/app_pc" $flags || fail "cc with pkg-config's flags"
run pkg-config -u LD_LIBRARY_PATH LD_LIBRARY_PATH="$libdir" "$tmp/app_pc"

say "static: cc app.c \$(pkg-config --static --cflags --libs weft) with -l:libweft.a"
flags=$("$WEFT_PKG_CONFIG" --static --cflags --libs weft) || fail "pkg-config --static --cflags --libs weft"
flags=$(echo "$flags" | sed 's/-lweft\( \|$\)/-l:libweft.a\1/')
# shellcheck disable=SC2086
"$WEFT_CC" $warn "$WEFT_APP_DIR/app.c" -o "$tmp/app_pc_static" $flags ||
    fail "cc with pkg-config --static's flags"
if "$WEFT_READELF" -d "$tmp/app_pc_static" | grep -q 'NEEDED.*libweft'; then
    fail "the static build still needs libweft.so"
fi
run static -u LD_LIBRARY_PATH "$tmp/app_pc_static"

say "find_package(weft CONFIG) with CMAKE_PREFIX_PATH=$prefix"
"$WEFT_CMAKE" -S "$WEFT_APP_DIR" -B "$tmp/cmake-build" -G "$WEFT_GENERATOR" \
    -DCMAKE_C_COMPILER="$WEFT_CC" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_FLAGS="$warn" -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON \
    -DWEFT_EXPECT_VERSION="$WEFT_VERSION" >"$tmp/cmake.log" 2>&1 ||
    { cat "$tmp/cmake.log" >&2; fail "configuring the find_package project"; }
grep -q -F -x "weft_DIR:PATH=$libdir/cmake/weft" "$tmp/cmake-build/CMakeCache.txt" ||
    fail "find_package found a weft other than the one just installed"
"$WEFT_CMAKE" --build "$tmp/cmake-build" >"$tmp/build.log" 2>&1 ||
    { cat "$tmp/build.log" >&2; fail "building the find_package project"; }
# weft::weft brings libweft.so alone: hwloc and jemalloc are its own.
needed=$("$WEFT_READELF" -d "$tmp/cmake-build/app_shared")
echo "$needed" | grep -q "NEEDED.*\[libweft\.so\.$major\]" ||
    fail "the weft::weft build does not need libweft.so.$major"
if echo "$needed" | grep -q 'NEEDED.*\(hwloc\|jemalloc\)'; then
    fail "the weft::weft build links weft's private dependencies"
fi
run find_package -u LD_LIBRARY_PATH "$tmp/cmake-build/app_shared"
run find_package-static -u LD_LIBRARY_PATH "$tmp/cmake-build/app_static"

echo "install_and_use: all steps passed"
