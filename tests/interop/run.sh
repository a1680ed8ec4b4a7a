#!/bin/sh
# tests/interop/run.sh - read qforge's artifacts with an independent Python decoder.
#
# Usage: sh tests/interop/run.sh QFORGE_BINARY [TEST_NUMFMT_BINARY]
#   Converts tests/data/tiny-llama into every RTN scheme in a temporary folder and checks
#   each artifact with check_artifact.py (compressed-tensors layout, config for vLLM, scales
#   by the README rules, decoded values within the format bounds, manifest hashes); then, when
#   the test_numfmt program is built (default: tests/test_numfmt next to QFORGE_BINARY's
#   folder, i.e. build/tests/test_numfmt), cross-checks the number-format tables against
#   ml_dtypes with check_numfmt_tables.py, and reads qforge's GGUF output with llama.cpp's
#   gguf-py (check_gguf.py).  Builds nothing itself.
#   Python: $PYTHON or python3, with numpy, safetensors, ml_dtypes and gguf (xxhash optional);
#   scripts/pydeps.sh makes one from tests/interop/requirements.txt.
#   Prints "N passed, N failed" last; exit status 1 when anything failed, else 77 (the
#   automake "skipped" code) when any part could not run, each with a "SKIP part: reason"
#   line, so that a partial run never reads as a pass (scripts/run-tests.sh counts it).
. "$(dirname "$0")/lib.sh"
interop_begin interop $# 1 2 "${1:-}"
numfmt=${2:-$(dirname "$qforge")/tests/test_numfmt}
model=$root/tests/data/tiny-llama

if ! "$py" -c "import numpy, safetensors, ml_dtypes" 2>/dev/null; then
    echo "SKIP tests/interop: $py cannot import numpy, safetensors and ml_dtypes" \
         "(scripts/pydeps.sh makes a venv with them)"
    exit 77
fi
need_qforge

interop_tmp
skip=0

# every scheme as converted by default (RTN searches int4 / nvfp4 clips: the checker then takes
# each group's scale from the rule's candidates), and the searched ones again with the textbook
# rule (--clip-search 0), whose scales must equal the README's exactly
for run in fp8-dynamic w4a16 w4a16-asym nvfp4a16 mxfp4a16 w8a8 w4a16:0 w4a16-asym:0 nvfp4a16:0; do
    scheme=${run%%:*}
    case $run in *:*) set -- --clip-search "${run#*:}" ;; *) set -- ;; esac
    out=$tmp/$scheme
    if ! "$qforge" convert "$model" -o "$out" --scheme "$scheme" "$@" -q >"$tmp/$scheme.convert.log" 2>&1; then
        echo "FAIL $scheme: qforge convert exited non-zero:"
        sed 's/^/    /' "$tmp/$scheme.convert.log"
        fail=$((fail + 1))
        continue
    fi
    pass=$((pass + 1))
    "$py" "$here/check_artifact.py" "$model" "$out" "$scheme" >"$tmp/$scheme.check.log" 2>&1
    grep -v '^[0-9]* passed, [0-9]* failed$' "$tmp/$scheme.check.log"
    echo "== $run: $(tail -n 1 "$tmp/$scheme.check.log")"
    counts_add "$tmp/$scheme.check.log"
    rm -rf "$out"
done

# GGUF: llama.cpp's own Python package reads qforge's files (check_gguf.py)
if "$py" -c "import gguf" 2>/dev/null; then
    # tiny-llama (llama), tiny-tied (qwen3, tied embeddings, q/k norms), tiny-yarn (qwen2: refused
    # for its yarn RoPE, then checked as a copy with default RoPE), tiny-moe (mixtral: llama with
    # stacked experts), tiny-qwen2moe / tiny-qwen3moe (qwen2moe with its shared expert, qwen3moe),
    # tiny-phi3 (phi3: fused attn_qkv / ffn_up, partial rotary)
    "$py" "$here/check_gguf.py" "$qforge" "$model" "$root/tests/data/tiny-tied" "$root/tests/data/tiny-yarn" \
        "$root/tests/data/tiny-moe" "$root/tests/data/tiny-qwen2moe" "$root/tests/data/tiny-qwen3moe" \
        "$root/tests/data/tiny-phi3" >"$tmp/gguf.log" 2>&1
    grep -v '^[0-9]* passed, [0-9]* failed$' "$tmp/gguf.log"
    echo "== gguf vs gguf-py: $(tail -n 1 "$tmp/gguf.log")"
    counts_add "$tmp/gguf.log"
else
    echo "SKIP gguf vs gguf-py: $py cannot import gguf (scripts/pydeps.sh makes a venv with it)"
    skip=$((skip + 1))
fi

if [ -x "$numfmt" ]; then
    mkdir -p "$tmp/tables"
    if "$numfmt" --dump-tables "$tmp/tables"; then
        "$py" "$here/check_numfmt_tables.py" "$tmp/tables" >"$tmp/tables.log" 2>&1
        grep -v '^[0-9]* passed, [0-9]* failed$' "$tmp/tables.log"
        echo "== number formats vs ml_dtypes: $(tail -n 1 "$tmp/tables.log")"
        counts_add "$tmp/tables.log"
    else
        echo "FAIL: $numfmt --dump-tables exited non-zero"
        fail=$((fail + 1))
    fi
else
    echo "SKIP number formats vs ml_dtypes: $numfmt is not built (make $numfmt)"
    skip=$((skip + 1))
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ] || exit 1
[ "$skip" = 0 ] || exit 77
