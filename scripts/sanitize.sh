#!/bin/sh
# Runs the cmocka unit tests and the CLI tests (tests/cli/*.sh) against an ASan+UBSan build
# (`make sanitize` builds it in build-asan/).  Every sanitizer report goes to a log file under
# a temporary folder (log_path), so a report fails the run even inside a test that expected a
# non-zero exit.  Exit status: non-zero when a test failed or any report was written.
# Usage: scripts/sanitize.sh QFORGE_BINARY TEST_PROGRAM...
set -u
qforge=$1; shift
logs=$(mktemp -d "${TMPDIR:-/tmp}/qf-sanitize.XXXXXX") || exit 1
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:log_path=$logs/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
pass=0; fail=0; failed=""
run() { # run NAME COMMAND...
    echo "== $1"; name=$1; shift
    if "$@"; then pass=$((pass + 1)); else rc=$?
        # 77 is a skip (automake convention), not a failure
        if [ "$rc" = 77 ]; then echo "   (skipped)"; else fail=$((fail + 1)); failed="$failed $name"; fi
    fi
}
for t in "$@"; do run "$t" "$t"; done
for t in tests/cli/*.sh; do run "$t" env QFORGE="$qforge" sh "$t"; done
reports=$(ls "$logs" | wc -l)
for f in "$logs"/*; do [ -e "$f" ] && { echo "== sanitizer report $f"; cat "$f"; }; done
echo "sanitize: $pass passed, $fail failed, $reports sanitizer report(s)${failed:+; failed:$failed}"
rm -rf "$logs"
[ "$fail" = 0 ] && [ "$reports" = 0 ]
