#!/bin/sh
# Runs every test program (cmocka unit tests, CLI tests, Python interop checks) and prints
# one closing line "N passed, N failed".  Exit status is non-zero when anything failed.
# Usage: scripts/run-tests.sh QFORGE_BINARY TEST_PROGRAM...
set -u
qforge=$1; shift
pass=0; fail=0; failed=""
run() { # run NAME COMMAND...
    echo "== $1"; shift
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $name"; fi
}
name=check-deps; run "include direction (scripts/check-deps.sh)" scripts/check-deps.sh
for t in "$@"; do name=$t; run "$t" "$t"; done
for t in tests/cli/*.sh; do
    [ "$(basename "$t")" = lib.sh ] && continue
    name=$t; run "$t" env QFORGE="$qforge" sh "$t"
done
if [ -x tests/interop/run.sh ] || [ -f tests/interop/run.sh ]; then
    py=$(scripts/pydeps.sh)
    if [ -n "$py" ]; then
        name=tests/interop; run tests/interop env PYTHON="$py" PATH="$(dirname "$py"):$PATH" sh tests/interop/run.sh "$qforge"
        # transformers + compressed-tensors load every artifact; exit 77 = their packages are missing
        echo "== tests/interop/transformers.sh"
        env PYTHON="$py" sh tests/interop/transformers.sh "$qforge"
        case $? in
        0) pass=$((pass + 1)) ;;
        77) echo "== tests/interop/transformers.sh: SKIP (see the line above)" ;;
        *) fail=$((fail + 1)); failed="$failed tests/interop/transformers.sh" ;;
        esac
    else
        echo "== tests/interop: SKIP (could not install numpy/safetensors/ml_dtypes/gguf into build/pyenv)"
    fi
fi
# llama.cpp itself runs qforge's GGUF: opt-in, because installing it builds llama.cpp from source
if [ "${QF_TEST_LLAMACPP:-0}" = 1 ]; then
    name=tests/interop/llamacpp.sh; run "$name (QF_TEST_LLAMACPP=1)" sh tests/interop/llamacpp.sh "$qforge"
fi
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
