#!/bin/sh
# Runs the cmocka unit tests, the CLI tests (tests/cli/*.sh) and the Python interop suites
# (tests/interop/*.sh, in the pinned venv of scripts/pydeps.sh) against an ASan+UBSan build
# (`make sanitize` builds it in build-asan/).  SANITIZE_SUITES (default "unit cli interop")
# picks a subset.  Every sanitizer report goes to a log file under
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
suites=${SANITIZE_SUITES:-unit cli interop}
case " $suites " in *" unit "*) for t in "$@"; do run "$t" "$t"; done ;; esac
case " $suites " in *" cli "*) for t in tests/cli/*.sh; do run "$t" env QFORGE="$qforge" sh "$t"; done ;; esac
case " $suites " in *" interop "*)
    # the same suites and venv as scripts/run-tests.sh; without the venv they are failures here,
    # since a sanitizer pass that silently left them out would claim more than it ran
    py=$(scripts/pydeps.sh 2>/dev/null) || py=
    for s in tests/interop/run.sh tests/interop/transformers.sh tests/interop/llmc.sh tests/interop/signing.sh \
             tests/interop/families.sh tests/interop/quant_sources.sh tests/interop/mixed.sh; do
        [ -f "$s" ] || continue
        if [ -n "$py" ]; then run "$s" env PYTHON="$py" PATH="$(dirname "$py"):$PATH" sh "$s" "$qforge"
        else echo "== $s: no Python venv (scripts/pydeps.sh)"; fail=$((fail + 1)); failed="$failed $s"; fi
    done ;;
esac
reports=$(ls "$logs" | wc -l)
for f in "$logs"/*; do [ -e "$f" ] && { echo "== sanitizer report $f"; cat "$f"; }; done
echo "sanitize: $pass passed, $fail failed, $reports sanitizer report(s)${failed:+; failed:$failed}"
rm -rf "$logs"
[ "$fail" = 0 ] && [ "$reports" = 0 ]
