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
out=$(mktemp -d "${TMPDIR:-/tmp}/qf-sanitize-out.XXXXXX") || exit 1
pass=0; fail=0; failed=""; n=0
# UBSan combined with ASan can print a report on stderr whatever log_path says, and a test that
# expects a non-zero exit would swallow it: each command's output is kept and searched too.
run() { # run NAME COMMAND...
    echo "== $1"; name=$1; shift; n=$((n + 1))
    { "$@"; echo $? >"$out/rc"; } 2>&1 | tee "$out/$n.log"
    rc=$(cat "$out/rc")
    if grep -q "runtime error:\|ERROR: AddressSanitizer\|ERROR: LeakSanitizer" "$out/$n.log"; then
        cp "$out/$n.log" "$logs/stderr-report.$n"
    fi
    if [ "$rc" = 0 ]; then pass=$((pass + 1))
    # 77 is a skip (automake convention), not a failure
    elif [ "$rc" = 77 ]; then echo "   (skipped)"
    else fail=$((fail + 1)); failed="$failed $name"; fi
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
for f in "$logs"/*; do [ -e "$f" ] && { echo "== sanitizer report $f"; grep -A30 "runtime error:\|ERROR: \(Address\|Leak\)Sanitizer" "$f" | head -n 60; }; done
echo "sanitize: $pass passed, $fail failed, $reports sanitizer report(s)${failed:+; failed:$failed}"
rm -rf "$logs" "$out"
[ "$fail" = 0 ] && [ "$reports" = 0 ]
