#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for weft and then does one job:
#
#   scripts/setup.sh demo    install what is missing, build, run the main demo
#                            (demos/lesson: the same jobs one task at a
#                            time, under the GIL and in parallel)
#   scripts/setup.sh test    install what is missing, build, run every test:
#                            the release build (link-time optimized, as
#                            shipped); a release build with 4-slot
#                            rings (overflow and injection paths all the
#                            time: the task and stress tests); a build
#                            with widened race windows (runtime/race.h);
#                            the AddressSanitizer + UndefinedBehaviorSanitizer
#                            build; the ThreadSanitizer build (the stress,
#                            ring, scheduler, waiting-object, I/O, HTTP,
#                            curl, blocking-pool and shared-stack tests); a one-minute
#                            libFuzzer run on the HTTP server's request
#                            path (clang), seeded with tests/http_corpus
#
# Packages come from apt-get (through sudo when not root). Builds go to
# build/, build-ring4/, build-race/, build-asan/, build-tsan/ and
# build-fuzz/. WEFT_JOBS
# sets the build parallelism.
set -euo pipefail

cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake pkg-config     # compiler and build
  libhwloc-dev libjemalloc-dev         # topology; the runtime's allocator
  libudev-dev                          # hwloc.pc's Libs.private: pkg-config --static weft
  check libsubunit-dev                 # the unit-test framework
  libcurl4-openssl-dev libhttp-parser-dev  # HTTP client and server
  openssl                              # test_https: a certificate and a TLS server
  valgrind                             # valgrind.h client requests
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user  # the arm64 switch test
  hyperfine time                       # bench/: timing, peak RSS
  clang libclang-rt-dev                # the HTTP fuzzer: clang's libFuzzer
)

say() { printf '==> %s\n' "$*"; }

install_missing() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "system packages: all present"
    return
  fi
  say "installing: ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: not root and no sudo: install ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

jobs=${WEFT_JOBS:-$(nproc)}

build() { # build DIR [cmake args...]
  local dir=$1; shift
  say "building $dir $*"
  cmake -S . -B "$dir" -DWEFT_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j "$jobs" >/dev/null
}

# fuzz_http SECONDS: builds the HTTP request-path fuzzer with clang
# (libFuzzer, ASan, UBSan) in build-fuzz/ and runs it, seeded with
# tests/http_corpus; any crash fails (its input is left in build-fuzz/).
fuzz_http() {
  say "building build-fuzz (clang, libFuzzer + ASan + UBSan): tests/fuzz_http.c"
  cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DWEFT_FUZZ=ON -DWEFT_WERROR=ON -DWEFT_BUILD_BENCH=OFF -DWEFT_BUILD_DEMOS=OFF >/dev/null
  cmake --build build-fuzz -j "$jobs" --target fuzz_http >/dev/null
  say "fuzzing the HTTP request path for $1 s"
  local found
  found=$(mktemp -d)
  if ! ./build-fuzz/tests/fuzz_http -max_total_time="$1" -print_final_stats=1 \
      -artifact_prefix=build-fuzz/ "$found" tests/http_corpus >build-fuzz/fuzz_http.log 2>&1; then
    tail -n 40 build-fuzz/fuzz_http.log
    rm -rf "$found"
    echo "setup: fuzz_http failed: the input is build-fuzz/crash-* (log: build-fuzz/fuzz_http.log)" >&2
    exit 1
  fi
  rm -rf "$found"
  grep -E '^(Done|stat::number_of_executed_units)' build-fuzz/fuzz_http.log
}

case "${1:-}" in
  demo)
    install_missing
    build build -DCMAKE_BUILD_TYPE=Release
    say "running demos/lesson: concurrency or parallelism"
    ./build/demos/lesson
    ;;
  test)
    install_missing
    build build -DCMAKE_BUILD_TYPE=Release
    build build-ring4 -DCMAKE_BUILD_TYPE=Release -DWEFT_RING_SLOTS=4 -DWEFT_LTO=OFF -DWEFT_BUILD_BENCH=OFF -DWEFT_BUILD_DEMOS=OFF
    build build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_SANITIZE=address,undefined -DWEFT_BUILD_BENCH=OFF
    build build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_SANITIZE=thread -DWEFT_BUILD_BENCH=OFF -DWEFT_BUILD_DEMOS=OFF
    build build-race -DCMAKE_BUILD_TYPE=Release -DWEFT_RACE_HOOKS=ON -DWEFT_LTO=OFF -DWEFT_BUILD_BENCH=OFF -DWEFT_BUILD_DEMOS=OFF
    say "release build: tests"
    ctest --test-dir build --output-on-failure -j "$jobs"
    say "release build, 4-slot rings: task, scheduler and stress tests"
    ctest --test-dir build-ring4 --output-on-failure -j "$jobs" -R 'test_task|test_sched|test_shared_stack|stress_tasks|stress_cancel'
    say "race-window build: interleavings forced through widened windows"
    ctest --test-dir build-race --output-on-failure -j "$jobs" -R 'race_windows'
    say "AddressSanitizer + UndefinedBehaviorSanitizer build: tests"
    ctest --test-dir build-asan --output-on-failure -j "$jobs"
    fuzz_http 60
    # Last, so that the output ends with ctest's summary.
    say "ThreadSanitizer build: stress, ring, scheduler, cancellation, future, channel, sync, generator, I/O, HTTP, curl, blocking-pool and shared-stack tests"
    ctest --test-dir build-tsan --output-on-failure -j "$jobs" -R 'stress|test_sched|test_cancel|test_future|test_chan|test_sync|test_gen|test_gil|test_io|test_http|test_curl|test_blocking|test_shared_stack|test_api_errors'

    ;;
  *)
    echo "usage: $0 demo|test" >&2
    exit 2
    ;;
esac
