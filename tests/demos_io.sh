#!/usr/bin/env bash
# The I/O demos run and say what they should: fetch (its own local server,
# every reply checked, both times printed), gil_convoy (alone and beside
# a spinner, in parallel and GIL mode; clusters of waits printed) and
# hello_server (on a free loopback port: GET / answers exactly
# "Hello, World!"; with SECONDS given it stops by itself and exits 0).
#   usage: demos_io.sh FETCH GIL_CONVOY HELLO_SERVER
set -euo pipefail
usage="usage: demos_io.sh FETCH GIL_CONVOY HELLO_SERVER"
fetch=${1:?$usage}
convoy=${2:?$usage}
hello=${3:?$usage}
out=$("$fetch" -n 20 -c 10 -d 5 --max-seconds 60)
grep -q '^fetch n=20 c=10 bad=0 fetch_s=[0-9.]* seq_s=[0-9.]*$' <<<"$out" ||
  { echo "fetch: unexpected output:"; echo "$out"; exit 1; }
for mode in parallel gil; do
  out=$(WEFT_WORKERS=2 WEFT_MODE=$mode WEFT_SWITCH_INTERVAL_US=500 "$convoy" -n 50)
  for want in "^gil_convoy alone mode=$mode .* trips=50 " "^gil_convoy spinning mode=$mode .* trips=50 .*wait0=" \
              "^gil_convoy figure=" "^gil_convoy slowdown=x"; do
    grep -qE "$want" <<<"$out" || { echo "gil_convoy ($mode): no line matching $want:"; echo "$out"; exit 1; }
  done
done
if "$convoy" -n 0 2>/dev/null; then echo "gil_convoy accepted -n 0"; exit 1; fi

# hello_server on port 0 (it prints the port it got), bounded to 60 s of
# its own in case this script dies before it stops it. The request goes
# through bash's /dev/tcp (scripts/setup.sh installs libcurl, not the curl
# tool), with Connection: close so that the reply ends with the connection.
log=$(mktemp)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -f "$log"; }
trap cleanup EXIT
"$hello" 127.0.0.1:0 60 >"$log" 2>&1 &
server=$!
port=
for _ in $(seq 100); do # 10 s at most
  port=$(sed -n 's/^hello_server: listening on port \([0-9][0-9]*\)$/\1/p' "$log")
  [ -n "$port" ] || ! kill -0 "$server" 2>/dev/null && break
  sleep 0.1
done
[ -n "$port" ] || { echo "hello_server: no port printed:"; cat "$log"; exit 1; }
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n' >&3
reply=$(timeout 10 cat <&3) || { echo "hello_server: no complete reply in 10 s"; exit 1; }
exec 3<&-
status=${reply%%$'\r'*}
body=${reply#*$'\r\n\r\n'}
[ "$status" = "HTTP/1.1 200 OK" ] || { echo "hello_server: status line \"$status\""; exit 1; }
[ "$body" = "Hello, World!" ] || { echo "hello_server: body \"$body\", not \"Hello, World!\""; exit 1; }
kill "$server"
wait "$server" 2>/dev/null || true
server=
# With SECONDS, it stops itself: its timer cancels the serving task, and
# it exits 0 once every connection is closed.
out=$(timeout 30 "$hello" 127.0.0.1:0 0.2) || { echo "hello_server 127.0.0.1:0 0.2: exit $?:"; echo "$out"; exit 1; }
grep -q '^hello_server: listening on port [0-9][0-9]*$' <<<"$out" ||
  { echo "hello_server 127.0.0.1:0 0.2: unexpected output:"; echo "$out"; exit 1; }
echo "demos: fetch, gil_convoy and hello_server ran as expected"
