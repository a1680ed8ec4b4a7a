#!/bin/sh
# tests/interop/llmc.sh - qforge's quantization_config and tensor list against llm-compressor's.
#
# Usage: sh tests/interop/llmc.sh QFORGE_BINARY
#   For every expected file tests/data/llmc/<fixture>.<scheme>.json (made once by
#   tests/tools/make_llmc_expected.py with llm-compressor from PyPI), converts
#   tests/data/<fixture> with qforge in that scheme (round to nearest; fp8 and nvfp4 calibrate
#   their activation scales on a few windows of tests/data/calib.txt) in a temporary folder
#   and compares the artifact key by key with check_llmc.py (standard library only).
#   Python: $PYTHON or python3.  When it cannot run, prints "SKIP llmc: <reason>" and exits 77.
#   Prints "N passed, N failed" last (one count per (fixture, scheme)); exit 1 on any failure.
#   LLMC_VERBOSE=1 also prints each checker's passing summary line.  LLMC_FIXTURES=DIR: a
#   folder searched for a fixture that tests/data lacks (one still on another branch); a
#   fixture found nowhere is a failure.
. "$(dirname "$0")/lib.sh"
interop_begin llmc $# 1 1 "${1:-}"

if ! "$py" -c "import json, struct, sys; sys.exit(sys.version_info < (3, 8))" 2>/dev/null; then
    echo "SKIP llmc: $py cannot run (Python 3.8 or later needed)"
    exit 77
fi
need_qforge
set -- "$root"/tests/data/llmc/*.json
if [ ! -f "$1" ]; then
    echo "llmc: no expected files in tests/data/llmc (make them with tests/tools/make_llmc_expected.py)"
    echo "0 passed, 1 failed"
    exit 1
fi

interop_tmp

for expected in "$@"; do
    base=$(basename "$expected" .json)
    fixture=${base%%.*}
    scheme=${base#*.}
    model=$root/tests/data/$fixture
    [ -f "$model/config.json" ] || model=${LLMC_FIXTURES:-/nonexistent}/$fixture
    out=$tmp/$base
    if [ ! -f "$model/config.json" ]; then
        echo "FAIL $base: fixture tests/data/$fixture is missing (LLMC_FIXTURES=DIR to read it elsewhere)"
        fail=$((fail + 1))
        continue
    fi
    case $scheme in
    fp8 | nvfp4) calib="--calib $root/tests/data/calib.txt --calib-samples 8 --calib-seqlen 128" ;;
    *) calib= ;;
    esac
    # shellcheck disable=SC2086  # $calib is a list of words
    if ! "$qforge" convert "$model" -o "$out" --scheme "$scheme" $calib -q >"$tmp/$base.convert.log" 2>&1; then
        echo "FAIL $base: qforge convert exited non-zero:"
        sed 's/^/    /' "$tmp/$base.convert.log"
        fail=$((fail + 1))
        continue
    fi
    if "$py" "$here/check_llmc.py" "$out" "$expected" >"$tmp/$base.check.log" 2>&1; then
        pass=$((pass + 1))
        [ "${LLMC_VERBOSE:-0}" = 1 ] && echo "ok   $base: $(tail -n 1 "$tmp/$base.check.log")"
    else
        grep -v '^[0-9]* passed, [0-9]* failed$' "$tmp/$base.check.log"
        echo "== $base: $(tail -n 1 "$tmp/$base.check.log")"
        fail=$((fail + 1))
    fi
    rm -rf "$out"
done

interop_end
