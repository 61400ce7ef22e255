#!/usr/bin/env bash
# The post's examples, run: each demo of docs/tutorial.md sections 1-8 must
# exit 0 (the demos check their own results, and those that sleep check
# that their sleeps overlapped, against generous bounds) and print the
# lines the tutorial shows. Timestamps ("1.003 s  ") are taken off first;
# where tasks start on different workers, their start lines are compared
# as a set, since which of them prints first is not fixed.
#   usage: demos_post.sh DEMO_DIR
set -euo pipefail
dir=${1:?usage: demos_post.sh DEMO_DIR}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run NAME: runs the demo into $tmp/NAME, timestamps removed and the
# elapsed times of "took N s" lines written as "took T".
run() {
  local name=$1
  if ! "$dir/$name" >"$tmp/$name.raw" 2>"$tmp/$name.err"; then
    echo "$name: exit status $?"
    cat "$tmp/$name.raw" "$tmp/$name.err"
    exit 1
  fi
  sed -E 's/^ *[0-9]+\.[0-9]{3} s  //; s/^took [0-9.]+ s/took T/' "$tmp/$name.raw" >"$tmp/$name"
}

# expect NAME: the output must be exactly the lines on stdin.
expect() {
  local name=$1
  if ! diff -u - "$tmp/$name" >"$tmp/$name.diff"; then
    echo "$name: output differs from the tutorial's (- expected, + got):"
    cat "$tmp/$name.diff"
    exit 1
  fi
}

run hello_twice
expect hello_twice <<'OUT'
Gonna say hello
Hello
Gonna say hello again
Hello again!
StopIteration
OUT

run echo_me
expect echo_me <<'OUT'
Ready to echo
Hello
There!
OUT

run inner_outer
expect inner_outer <<'OUT'
Get ready for ...
INNER GENERATOR YEAH!
inner returned: inner done
StopIteration
OUT

# Both greetings before either sleep ends: the first two lines are the two
# names in either order, then the two names again.
run echo_twice
head -n 2 "$tmp/echo_twice" | sort >"$tmp/first"
sed -n 3,4p "$tmp/echo_twice" | sort >"$tmp/second"
printf 'Hello\nThere\n' >"$tmp/names"
for part in first second; do
  cmp -s "$tmp/names" "$tmp/$part" || {
    echo "echo_twice: the $part pair of lines is not Hello and There:"
    cat "$tmp/echo_twice.raw"
    exit 1
  }
done
grep -qE '^two tasks slept 1 s each; the program took [0-9.]+ s \(sequential would take 2 s\)$' \
  "$tmp/echo_twice" || { echo "echo_twice: no summary line"; cat "$tmp/echo_twice.raw"; exit 1; }

run call_vs_task
expect call_vs_task <<'OUT'
called one after the other (await coro()):
hello from first
hello from second
took T

as two tasks (create_task, then await each):
hello from first
hello from second
took T
OUT

# Three starts in any order, then the ends in the order of their sleeps,
# then the results in the order given to gather.
run whoami_gather
head -n 3 "$tmp/whoami_gather" | sort >"$tmp/starts"
sort >"$tmp/want" <<'OUT'
I am A and gonna sleep for 1 seconds.
I am B and gonna sleep for 2 seconds.
I am C and gonna sleep for 3 seconds.
OUT
cmp -s "$tmp/want" "$tmp/starts" || {
  echo "whoami_gather: the three start lines are wrong:"
  cat "$tmp/whoami_gather.raw"
  exit 1
}
tail -n +4 "$tmp/whoami_gather" >"$tmp/rest"
mv "$tmp/rest" "$tmp/whoami_gather"
expect whoami_gather <<'OUT'
I am A. I slept for 1 seconds.
I am B. I slept for 2 seconds.
I am C. I slept for 3 seconds.
[('result', 'A', 1), ('result', 'B', 2), ('result', 'C', 3)]
took T (the sleeps add up to 6 s)
OUT

run wait_for
expect wait_for <<'OUT'
wait_for(job(3), timeout=1):
job: sleeping 3 s
job: sleep returned -ECANCELED
timed out: -ETIMEDOUT (the deadline passed)

wait_for(job(1), timeout=2):
job: sleeping 1 s
job done
OUT

# Two waiters in either order, one resolve, a second refused, both woken.
run future_demo
mv "$tmp/future_demo" "$tmp/fd"
{ sed -n 1,2p "$tmp/fd" | sort; sed -n 3,4p "$tmp/fd"; sed -n 5,6p "$tmp/fd" | sort; sed -n '7,$p' "$tmp/fd"; } \
  >"$tmp/future_demo"
expect future_demo <<'OUT'
A: waiting
B: waiting
setter: resolve(42)
setter: resolve(7) again: -EALREADY (settled already)
A: got 42
B: got 42
took T
OUT

run task_group
expect task_group <<'OUT'
quick: done
broken: failing with -EIO
slow: cancelled (sleep returned -ECANCELED)
group failed: -EIO (Input/output error)
OUT

echo "the post's demos: hello_twice echo_me inner_outer echo_twice call_vs_task whoami_gather wait_for future_demo task_group: all as the tutorial shows"
