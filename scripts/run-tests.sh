#!/bin/sh
# Runs every test program (cmocka unit tests, then CLI tests) and prints one closing line
# "N passed, N failed".  Exit status is non-zero when anything failed.
# Usage: scripts/run-tests.sh QFORGE_BINARY TEST_PROGRAM...
set -u
qforge=$1; shift
pass=0; fail=0; failed=""
for t in "$@"; do
    echo "== $t"
    if "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $t"; fi
done
for t in tests/cli/*.sh; do
    [ -f "$t" ] || continue
    echo "== $t"
    if QFORGE=$qforge sh "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $t"; fi
done
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
