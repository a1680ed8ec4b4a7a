#!/bin/sh
# Runs every test suite (cmocka unit tests, CLI tests, Python interop checks, the CUDA emulator)
# and closes with one line, alone: "N passed, N failed, N skipped".  A green line with fewer
# suites must not hide a suite that could not run, so skips are counted and each is printed
# with its reason.
#
# A suite skips by exiting 77 (the automake convention) after printing "SKIP <suite>: <reason>".
# With CI=true (how CI runs .ci/run) a skipped REQUIRED suite counts as failed and is named in
# the closing output: on CI the Python interop checks (artifacts, gguf-py, ml_dtypes tables,
# transformers + compressed-tensors, llm-compressor configs, model-signing), the .bin / hostile-pickle suite, the fuzz
# harnesses under ASan + UBSan and, where nvcc exists,
# the CUDA emulator must have run.  Exit status is non-zero when anything failed.
# Usage: scripts/run-tests.sh QFORGE_BINARY TEST_PROGRAM...
set -u
qforge=$1; shift
case ${CI:-} in true | TRUE | True | 1 | yes) ci=1 ;; *) ci=0 ;; esac
tmp=$(mktemp -d "${TMPDIR:-/tmp}/qf-run-tests.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
pass=0; fail=0; skip=0
: >"$tmp/failed"; : >"$tmp/skipped"; : >"$tmp/notes"

# skipped NAME REQUIRED REASON: count one skip (a failure in CI mode when REQUIRED is 1)
skipped() {
    if [ "$2" = 1 ] && [ "$ci" = 1 ]; then
        fail=$((fail + 1))
        echo "$1: required suite skipped under CI=true: $3" >>"$tmp/failed"
    else
        skip=$((skip + 1))
        if [ "$2" = 1 ]; then echo "$1: $3 (required: fails under CI=true)"; else echo "$1: $3"; fi >>"$tmp/skipped"
    fi
}

# suite NAME REQUIRED COMMAND...: run one suite, its output shown as it comes and kept for the
# SKIP reason; exit 0 passes, 77 skips, anything else fails
suite() {
    name=$1; req=$2; shift 2
    echo "== $name"
    { "$@"; echo $? >"$tmp/rc"; } 2>&1 | tee "$tmp/log"
    rc=$(cat "$tmp/rc")
    # check-level skips inside a passing suite (a tmpfs that cannot be mounted, say) are not
    # suite skips, but they are shown in the summary so that nothing is left out silently
    grep -i '^skip - ' "$tmp/log" | sed "s|^|$name: |" >>"$tmp/notes"
    case $rc in
    0) pass=$((pass + 1)) ;;
    77)
        why=$(sed -n 's/^SKIP [^:]*: //p' "$tmp/log" | paste -sd ';' - | sed 's/;/; /g')
        skipped "$name" "$req" "${why:-exit 77 without a SKIP line}" ;;
    *) fail=$((fail + 1)); echo "$name: exit $rc" >>"$tmp/failed" ;;
    esac
}

suite "include direction (make check-deps)" 0 make -s --no-print-directory check-deps
emulator=0
for t in "$@"; do
    case $t in */emulate_wq) emulator=1; suite "$t" 1 "$t" ;; *) suite "$t" 0 "$t" ;; esac
done
# where nvcc exists the kernels' GPU-free emulator is required (the Makefile builds it then)
if [ "$emulator" = 0 ] && { command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; }; then
    echo "== build/emulate_wq"; echo "SKIP build/emulate_wq: nvcc exists but the emulator was not built or passed"
    skipped build/emulate_wq 1 "nvcc exists but the emulator was not built or passed"
fi
for t in tests/cli/*.sh; do
    [ -f "$t" ] && [ "$(basename "$t")" != lib.sh ] || continue
    case $t in */bin_checkpoint.sh) req=1 ;; *) req=0 ;; esac
    suite "$t" $req env QFORGE="$qforge" sh "$t"
done

# the parsers' libFuzzer harnesses under ASan + UBSan for a fixed, seeded budget (clang is one of
# scripts/deps.sh's packages, so on CI this cannot skip)
suite "tests/fuzz/run.sh (make fuzz)" 1 sh tests/fuzz/run.sh

# the Python suites share one pinned, hash-checked venv (scripts/pydeps.sh)
py=$(scripts/pydeps.sh 2>"$tmp/pydeps.err")
cat "$tmp/pydeps.err" >&2
nopy=$(tail -n 1 "$tmp/pydeps.err")
for s in tests/interop/run.sh tests/interop/transformers.sh tests/interop/llmc.sh tests/interop/signing.sh \
         tests/interop/families.sh tests/interop/quant_sources.sh tests/interop/mixed.sh; do
    [ -f "$s" ] || continue
    if [ -n "$py" ]; then
        suite "$s" 1 env PYTHON="$py" PATH="$(dirname "$py"):$PATH" sh "$s" "$qforge"
    else
        echo "== $s"; echo "SKIP $s: ${nopy:-scripts/pydeps.sh gave no python}"
        skipped "$s" 1 "${nopy:-scripts/pydeps.sh gave no python}"
    fi
done

# llama.cpp itself runs qforge's GGUF: opt-in, because installing it builds llama.cpp from source
if [ "${QF_TEST_LLAMACPP:-0}" = 1 ]; then
    suite "tests/interop/llamacpp.sh (QF_TEST_LLAMACPP=1)" 1 sh tests/interop/llamacpp.sh "$qforge"
fi

if [ -s "$tmp/notes" ]; then echo "checks not run inside passing suites:"; sed 's/^/  /' "$tmp/notes"; fi
if [ -s "$tmp/skipped" ]; then echo "skipped:"; sed 's/^/  /' "$tmp/skipped"; fi
if [ -s "$tmp/failed" ]; then echo "failed:"; sed 's/^/  /' "$tmp/failed"; fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
